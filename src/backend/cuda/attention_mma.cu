// Prompt rows of attention on tensor cores (flash-style): an F16 cache with head_dim 64.
//
// A CTA of 4 warps takes 64 query rows that share one KV head: 64 / group consecutive tokens x
// the group's heads (row r = token r / group, head r % group); warp w holds rows 16w..16w+15.
// The keys are walked in chunks of 64 at absolute positions (chunk c = keys [64c, 64c + 64)),
// K and V of the next chunk copied into shared memory while this one is computed. Per chunk:
// S = Q·Kᵀ (mma.sync m16n8k16, f16 in, fp32 accumulators: q as hi + lo f16 after scaling its row
// by a power of two, keys exact in f16; per 8 keys the 4 k-steps' hi and lo MMAs chained into one
// fresh accumulator), the scale and the row's mask (keys j0 <= j <= pos), the online softmax
// (the row's running max m, each thread's partial sum l over its own keys), then O = O·α + P·V
// with P as hi + lo f16 (exactly as many bits as the weight carries) and per 8 output columns
// the 4 k-steps chained into one fresh accumulator, added with one FMA. At the end the 4 partial
// sums of a row are added in a fixed tree, the sink joins the denominator and O is divided.
//
// Batch invariance: a row's chunks, the keys each thread holds and every rounding depend only on
// the row's own positions; a chunk (or a pass, below) where all of the row's keys are masked
// leaves its state untouched (α = 1, P = 0, O kept). Tokens of one tile may belong to different
// slots: the CTA runs one pass per distinct slot, each over the union of its tokens' key spans
// with the other rows inactive. (A masked key's value still enters as 0·v: a NaN or inf value in
// the cache, which only a model that already produced one can hold, spreads to the pass's rows.)
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/check.h"
#include "backend/cuda/tmm.cuh"
#include "backend/cuda/tmv.cuh"

namespace wo::cuda {
namespace {

constexpr int kFaHd = 64;             // head_dim
constexpr int kFaRows = 64;           // query rows per CTA: 4 warps x 16
constexpr int kFaKeys = 64;           // keys per chunk
constexpr int kFaStride = kFaHd + 8;  // shared row stride in halves: 144 bytes, conflict-free ldmatrix
constexpr int kFaThreads = 128;

struct FaSmem {
    __half k[2][kFaKeys][kFaStride];
    __half v[2][kFaKeys][kFaStride];
    int32_t pos[kFaRows], slot[kFaRows], j0[kFaRows];  // per token of the tile
};

__device__ __forceinline__ uint32_t h2_bits(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }

// (a, b) as hi + lo f16 pairs: hi = f16(x), lo = f16(x - hi).
__device__ __forceinline__ void split2(float a, float b, uint32_t& hi, uint32_t& lo) {
    const __half2 h = __floats2half2_rn(a, b);
    const float2 f = __half22float2(h);
    hi = h2_bits(h);
    lo = h2_bits(__floats2half2_rn(__fsub_rn(a, f.x), __fsub_rn(b, f.y)));
}

template <bool TRANS>
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const __half* p) {
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
    if constexpr (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
}

__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, 2));
}

// Row i (0: row g, 1: row g + 8 of the warp's 16) of q (64 floats; null: zeros), scaled by 2^e
// into [2^14, 2^15) (f16 cannot overflow) and split into the A fragments' hi and lo: row g fills
// a0 (cols 2t, 2t + 1) and a2 (cols 8 + 2t, ..), row g + 8 a1 and a3. Returns scale * 2^-e.
// Every lane of the warp must call it.
__device__ __forceinline__ float fa_load_q(const float* q, int i, float scale, uint32_t (&qa)[4][4][2]) {
    const int t = threadIdx.x & 3;
    float v[4][4] = {};
    if (q)
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            const float2 x0 = *reinterpret_cast<const float2*>(q + 16 * kk + 2 * t);
            const float2 x1 = *reinterpret_cast<const float2*>(q + 16 * kk + 8 + 2 * t);
            v[kk][0] = x0.x, v[kk][1] = x0.y, v[kk][2] = x1.x, v[kk][3] = x1.y;
        }
    float mx = 0.0f;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
#pragma unroll
        for (int e = 0; e < 4; ++e) mx = fmaxf(mx, fabsf(v[kk][e]));
    const int ex = tmv_exponent(quad_max(mx));
    const float up = pow2f(ex);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        split2(__fmul_rn(v[kk][0], up), __fmul_rn(v[kk][1], up), qa[kk][i][0], qa[kk][i][1]);
        split2(__fmul_rn(v[kk][2], up), __fmul_rn(v[kk][3], up), qa[kk][2 + i][0], qa[kk][2 + i][1]);
    }
    return __fmul_rn(scale, pow2f(-ex));
}

// The running state of a warp's two rows per thread: O[n][c] (output columns 8n + 2t + (c & 1)
// of row c >> 1), the running max m and this thread's partial sum l of each row.
struct FaState {
    float O[8][4], m[2], l[2];
    __device__ __forceinline__ void reset() {  // no keys seen: O = 0, m = -inf, l = 0
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int c = 0; c < 4; ++c) O[n][c] = 0.0f;
        m[0] = m[1] = -INFINITY, l[0] = l[1] = 0.0f;
    }
};

// One warp's step over a chunk of 64 keys jb + [0, 64) whose K and V rows are in shared memory:
// S = Q·Kᵀ, the scale and each row's mask (active rows, keys j0 <= j <= pos), the online softmax,
// then O = O·α + P·V (see the top of the file).
__device__ __forceinline__ void fa_chunk(const __half (*K)[kFaStride], const __half (*V)[kFaStride],
                                         int32_t jb, const uint32_t (&qa)[4][4][2], const float (&qscale)[2],
                                         const bool (&act)[2], const int32_t (&rj0)[2],
                                         const int32_t (&rp)[2], FaState& st) {
    const int lane = threadIdx.x & 31, t = lane & 3;
    // S = Q·Kᵀ for the chunk's 8 tiles of 8 keys.
    float S[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) {
        uint32_t kb[2][4];  // [k-step pair][b0, b1 of step 2p, b0, b1 of step 2p + 1]
#pragma unroll
        for (int kp = 0; kp < 2; ++kp)
            ldsm_x4<false>(kb[kp], &K[8 * n + (lane & 7)][32 * kp + 8 * (lane >> 3)]);
#pragma unroll
        for (int e = 0; e < 4; ++e) S[n][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            const uint32_t b0 = kb[kk >> 1][2 * (kk & 1)], b1 = kb[kk >> 1][2 * (kk & 1) + 1];
#pragma unroll
            for (int h = 0; h < 2; ++h)
                mma_f16_acc(S[n], qa[kk][0][h], qa[kk][1][h], qa[kk][2][h], qa[kk][3][h], b0, b1);
        }
    }
    // Scale, mask, online softmax; S becomes P.
    float alpha[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        float mx = -INFINITY;
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int32_t j = jb + 8 * n + 2 * t + e;
                const bool ok = act[i] && j >= rj0[i] && j <= rp[i];
                const float v = ok ? __fmul_rn(S[n][2 * i + e], qscale[i]) : -INFINITY;
                S[n][2 * i + e] = v;
                mx = fmaxf(mx, v);
            }
        const float mn = fmaxf(st.m[i], quad_max(mx));
        alpha[i] = mn == st.m[i] ? 1.0f : expf(st.m[i] - mn);  // m = -inf (first keys): 0
        float sum = 0.0f;
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const float v = S[n][2 * i + e];
                const float p = v == -INFINITY ? 0.0f : expf(v - mn);
                S[n][2 * i + e] = p;
                sum = __fadd_rn(sum, p);
            }
        st.l[i] = __fmaf_rn(st.l[i], alpha[i], sum);
        st.m[i] = mn;
    }
    // P as A fragments: k-step kk = key tiles 2kk (a0, a1) and 2kk + 1 (a2, a3).
    uint32_t pa[4][4][2];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
#pragma unroll
        for (int q = 0; q < 4; ++q)
            split2(S[2 * kk + (q >> 1)][2 * (q & 1)], S[2 * kk + (q >> 1)][2 * (q & 1) + 1], pa[kk][q][0],
                   pa[kk][q][1]);
            // O = O·α + P·V, two tiles of 8 output columns per ldmatrix.
#pragma unroll
    for (int n = 0; n < 8; n += 2) {
        uint32_t vb[4][4];  // [k-step][b0, b1 of tile n, b0, b1 of tile n + 1]
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
            ldsm_x4<true>(vb[kk], &V[16 * kk + 8 * ((lane >> 3) & 1) + (lane & 7)][8 * (n + (lane >> 4))]);
#pragma unroll
        for (int nn = 0; nn < 2; ++nn) {
            float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int kk = 0; kk < 4; ++kk)
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    mma_f16_acc(part, pa[kk][0][h], pa[kk][1][h], pa[kk][2][h], pa[kk][3][h], vb[kk][2 * nn],
                                vb[kk][2 * nn + 1]);
#pragma unroll
            for (int e = 0; e < 4; ++e)
                if (act[e >> 1]) st.O[n + nn][e] = __fmaf_rn(st.O[n + nn][e], alpha[e >> 1], part[e]);
        }
    }
}

__global__ void __launch_bounds__(kFaThreads) attention_mma_k(AttnArgs<__half> a, int64_t rows) {
    pdl_begin();
    __shared__ __align__(16) FaSmem sh;
    const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int G = a.group, tpt = kFaRows / G, kvh = int(blockIdx.y);
    const int64_t tok0 = a.i0 + int64_t(blockIdx.x) * tpt;
    const int ntok = int(min(int64_t(tpt), a.i0 + rows - tok0));
    if (tid < ntok) {
        const int32_t p = a.pos[tok0 + tid], sl = a.slot[tok0 + tid];
        if (p < 0 || sl < 0 || sl >= a.n_slots) __trap();
        const int32_t j0 = a.window > 0 ? max(0, p - a.window + 1) : 0;
        if (p - j0 + 1 > a.n_rows) __trap();  // the cache no longer holds keys this query must see
        sh.pos[tid] = p, sh.slot[tid] = sl, sh.j0[tid] = j0;
    }
    __syncthreads();

    // This thread's rows i = 0, 1: tile rows 16 warp + g + 8i.
    int rtok[2], rhead[2];
    bool rok[2];
    float qscale[2];
    uint32_t qa[4][4][2];  // Q as A fragments: [k-step][a0..a3][hi, lo]
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int r = 16 * warp + g + 8 * i;
        rtok[i] = r / G, rhead[i] = kvh * G + r % G, rok[i] = rtok[i] < ntok;
        qscale[i] =
            fa_load_q(rok[i] ? a.q.row(tok0 + rtok[i]) + int64_t(rhead[i]) * kFaHd : nullptr, i, a.scale, qa);
    }

    FaState st;
    st.reset();

    for (int first = 0; first < ntok; ++first) {  // one pass per distinct slot of the tile
        const int32_t ps = sh.slot[first];
        bool seen = false;
        for (int u = 0; u < first; ++u) seen |= sh.slot[u] == ps;
        if (seen) continue;
        int32_t jlo = INT_MAX, jhi = -1;
        for (int u = first; u < ntok; ++u)
            if (sh.slot[u] == ps) jlo = min(jlo, sh.j0[u]), jhi = max(jhi, sh.pos[u]);
        bool act[2];
        int32_t rp[2], rj0[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            act[i] = rok[i] && sh.slot[rtok[i]] == ps;
            rp[i] = act[i] ? sh.pos[rtok[i]] : -1, rj0[i] = act[i] ? sh.j0[rtok[i]] : 0;
        }
        const int64_t head_off = int64_t(ps) * a.slot_ld + int64_t(kvh) * kFaHd;
        const __half *K = a.k + head_off, *V = a.v + head_off;
        auto load = [&](int c, int buf) {  // thread: key tid / 2, dims 32 (tid % 2) + [0, 32)
            const int key = tid >> 1, h0 = 32 * (tid & 1);
            const int32_t j = c * kFaKeys + key;
            const bool ok = j >= jlo && j <= jhi;
            const int64_t row = ok ? j % a.n_rows : 0;
            const __half* kr = K + row * a.row_ld + h0;
            const __half* vr = V + row * a.row_ld + h0;
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                cp_async<16>(&sh.k[buf][key][h0 + 8 * u], kr + 8 * u, ok);
                cp_async<16>(&sh.v[buf][key][h0 + 8 * u], vr + 8 * u, ok);
            }
        };
        const int c0 = jlo / kFaKeys, c1 = jhi / kFaKeys;
        load(c0, 0);
        cp_async_commit();
        for (int c = c0; c <= c1; ++c) {
            const int buf = (c - c0) & 1;
            if (c < c1) load(c + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
            __syncthreads();
            fa_chunk(sh.k[buf], sh.v[buf], c * kFaKeys, qa, qscale, act, rj0, rp, st);
            __syncthreads();  // the buffer is refilled two chunks on
        }
    }
    // The row's sum (the 4 threads' partials in a fixed tree), the sink, the output.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        float sum = __fadd_rn(st.l[i], __shfl_xor_sync(0xFFFFFFFFu, st.l[i], 1));
        sum = __fadd_rn(sum, __shfl_xor_sync(0xFFFFFFFFu, sum, 2));
        if (!rok[i]) continue;
        const float sink = a.sinks ? a.sinks[rhead[i]] : -INFINITY;
        const float mf = fmaxf(st.m[i], sink);
        float lf = __fmul_rn(sum, expf(st.m[i] - mf));
        if (a.sinks) lf = __fadd_rn(lf, expf(sink - mf));
        const float f = expf(st.m[i] - mf);
        float* o = a.out.row(tok0 + rtok[i]) + int64_t(rhead[i]) * kFaHd + 2 * t;
#pragma unroll
        for (int n = 0; n < 8; ++n)
            *reinterpret_cast<float2*>(o + 8 * n) = make_float2(
                __fdiv_rn(__fmul_rn(st.O[n][2 * i], f), lf), __fdiv_rn(__fmul_rn(st.O[n][2 * i + 1], f), lf));
    }
}

// ---- Decode rows (split-KV): grid (tokens, KV heads, kFaCtas), one warp per CTA whose 16 rows
// are the group's heads of one token (rows >= group inactive). The token's keys [j0, pos] are
// cut into chunks of 64 from j0 (fixed by the row's own position); CTA z takes chunks z, z +
// kFaCtas, ... in order and writes its rows' unnormalized state (m, l, O) to `part`; fa_merge_k
// then combines a row's kFaCtas states in z order with the sink. One chunk per CTA up to 1,024
// keys: +3% at batch 1 against splits of 2 chunks (bench/NOTES.md, twelfth session).
constexpr int kFaCtas = 16;
constexpr int kFaPart = 2 + kFaHd;  // floats per (row, CTA): m, l, O

__global__ void __launch_bounds__(32) attention_decode_mma_k(AttnArgs<__half> a, float* part) {
    pdl_begin();
    __shared__ __align__(16) __half k[2][kFaKeys][kFaStride], v[2][kFaKeys][kFaStride];
    const int lane = int(threadIdx.x), g = lane >> 2, t = lane & 3, G = a.group, kvh = int(blockIdx.y);
    const int z = int(blockIdx.z);
    const int64_t i = a.i0 + blockIdx.x;
    const int32_t p = a.pos[i], sl = a.slot[i];
    if (p < 0 || sl < 0 || sl >= a.n_slots) __trap();
    const int32_t j0 = a.window > 0 ? max(0, p - a.window + 1) : 0;
    if (p - j0 + 1 > a.n_rows) __trap();  // the cache no longer holds keys this query must see
    bool act[2];
    int32_t rj0[2] = {j0, j0}, rp[2] = {p, p};
    float qscale[2];
    uint32_t qa[4][4][2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        act[r] = g + 8 * r < G;
        qscale[r] =
            fa_load_q(act[r] ? a.q.row(i) + int64_t(kvh * G + g + 8 * r) * kFaHd : nullptr, r, a.scale, qa);
    }
    FaState st;
    st.reset();
    // This CTA's chunks: the q-th is chunk z + kFaCtas q of the token's keys.
    const int32_t n_chunks = (p - j0 + kFaKeys) / kFaKeys;
    auto chunk = [&](int q) { return z + kFaCtas * q; };
    const int64_t head_off = int64_t(sl) * a.slot_ld + int64_t(kvh) * kFaHd;
    const __half *K = a.k + head_off, *V = a.v + head_off;
    auto load = [&](int32_t c, int buf) {  // keys j0 + 64c + [0, 64): 16-byte pieces lane + 32u
        const int32_t jb = j0 + c * kFaKeys;
        int32_t r0 = jb % a.n_rows;
#pragma unroll
        for (int u = 0; u < 16; ++u) {
            const int idx = lane + 32 * u, key = idx >> 3, piece = idx & 7;
            const bool ok = jb + key <= p;
            int32_t row = r0 + key;
            row = row >= a.n_rows ? row - a.n_rows : row;
            const int64_t off = (ok ? int64_t(row) : 0) * a.row_ld + 8 * piece;
            cp_async<16>(&k[buf][key][8 * piece], K + off, ok);
            cp_async<16>(&v[buf][key][8 * piece], V + off, ok);
        }
    };
    int q = 0;
    if (chunk(0) < n_chunks) load(chunk(0), 0);
    cp_async_commit();
    for (; chunk(q) < n_chunks; ++q) {
        const int buf = q & 1;
        if (chunk(q + 1) < n_chunks) load(chunk(q + 1), buf ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncwarp();
        fa_chunk(k[buf], v[buf], j0 + chunk(q) * kFaKeys, qa, qscale, act, rj0, rp, st);
        __syncwarp();  // the buffer is refilled two chunks on
    }
    cp_async_wait<0>();
    // This CTA's state of rows g and g + 8 (the row's partial sums added in a fixed tree).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float sum = __fadd_rn(st.l[r], __shfl_xor_sync(0xFFFFFFFFu, st.l[r], 1));
        sum = __fadd_rn(sum, __shfl_xor_sync(0xFFFFFFFFu, sum, 2));
        if (!act[r]) continue;
        float* w =
            part + ((size_t(blockIdx.x) * a.n_head + size_t(kvh * G + g + 8 * r)) * kFaCtas + z) * kFaPart;
        if (t == 0) w[0] = st.m[r], w[1] = sum;
#pragma unroll
        for (int n = 0; n < 8; ++n)
            w[2 + 8 * n + 2 * t] = st.O[n][2 * r], w[2 + 8 * n + 2 * t + 1] = st.O[n][2 * r + 1];
    }
}

// blockIdx.x = token - i0, blockIdx.y = head, thread = output column: the kFaCtas states in order.
// With a.split_xs, also the head's 2 blocks of the row's split (tmv_split's arithmetic, from the
// values just written: the same bits), so the product after it skips tmv_split.
__global__ void __launch_bounds__(kFaHd) fa_merge_k(AttnArgs<__half> a, const float* part) {
    pdl_begin();
    const int h = int(blockIdx.y), c = int(threadIdx.x);
    const float* w = part + (size_t(blockIdx.x) * a.n_head + size_t(h)) * kFaCtas * kFaPart;
    const float sink = a.sinks ? a.sinks[h] : -INFINITY;
    float mf = sink;
    for (int z = 0; z < kFaCtas; ++z) mf = fmaxf(mf, w[z * kFaPart]);
    float l = 0.0f, o = 0.0f;
    for (int z = 0; z < kFaCtas; ++z) {
        const float m = w[z * kFaPart];
        if (m == -INFINITY) continue;  // a CTA without keys (or none left)
        const float f = expf(m - mf);
        l = __fadd_rn(l, __fmul_rn(w[z * kFaPart + 1], f));
        o = __fadd_rn(o, __fmul_rn(w[z * kFaPart + 2 + c], f));
    }
    if (a.sinks) l = __fadd_rn(l, expf(sink - mf));
    const float y = __fdiv_rn(o, l);
    a.out.row(a.i0 + blockIdx.x)[int64_t(h) * kFaHd + c] = y;
    if (a.split_xs) {  // a's fields: the same branch for the whole CTA
        __shared__ float ys[kFaHd];
        ys[c] = y;
        __syncthreads();
        if (c < 32) {  // warp 0: lane u < kFaHd / 8 takes unit u of the head; every lane shuffles
            const int64_t row = a.i0 + blockIdx.x, n = int64_t(a.n_head) * kFaHd;
            tmv_unit_split(c < kFaHd / 8 ? ys + 8 * c : nullptr, a.split_xs + size_t(row) * size_t(n / 4),
                           a.split_xm + size_t(row) * size_t(n / 32), int64_t(h) * (kFaHd / 8) + c);
        }
    }
}

}  // namespace

namespace {
bool fa_on() {
    static const bool on = [] {
        const char* e = std::getenv("WO_CUDA_FA");
        return !(e && std::string(e) == "0");
    }();
    return on;
}
}  // namespace

size_t attention_scratch_bytes(const StepLimits& l) {
    // Decode rows are at most the step's output rows; heads of head_dim 64 at most max_width / 64.
    const int64_t rows = std::max<int64_t>(l.max_out_rows, 1);
    const int64_t heads = std::max<int64_t>(l.max_width, kFaHd) / kFaHd;
    return size_t(rows) * size_t(heads) * kFaCtas * kFaPart * sizeof(float);
}

bool attention_mma_decode_rows(const AttnArgs<__half>& a, int64_t rows, void* scratch, size_t bytes,
                               cudaStream_t s) {
    if (!fa_on() || a.hd != kFaHd || !a.vec || a.group > 16 || a.out.ld % 2 != 0 || a.q.ld % 2 != 0)
        return false;
    // Rows go through the scratch in batches of as many as it holds: a row's bits never depend on
    // how many rows the step has (batch invariance), only on whether scratch was reserved at all.
    const size_t per_row = size_t(a.n_head) * kFaCtas * kFaPart * sizeof(float);
    const int64_t cap = std::min<int64_t>(scratch ? int64_t(bytes / per_row) : 0, 65535);
    if (cap < 1) return false;  // no scratch reserved (or not for this many heads): the CUDA cores
    WO_CHECK(a.n_head / a.group <= 65535, "attention: grid limits");
    auto* part = static_cast<float*>(scratch);
    for (int64_t r0 = 0; r0 < rows; r0 += cap) {
        const int64_t m = std::min(cap, rows - r0);
        AttnArgs<__half> b = a;
        b.i0 = r0;
        launch("attention_decode_mma_k", attention_decode_mma_k,
               dim3(unsigned(m), unsigned(a.n_head / a.group), unsigned(kFaCtas)), 32, 0, s, b, part);
        launch("fa_merge_k", fa_merge_k, dim3(unsigned(m), unsigned(a.n_head)), kFaHd, 0, s, b,
               static_cast<const float*>(part));
    }
    check_launch("attention decode mma");
    return true;
}

bool attention_mma_rows(const AttnArgs<__half>& a, int64_t i0, int64_t rows, cudaStream_t s) {
    if (!fa_on() || a.hd != kFaHd || !a.vec || a.group > kFaRows || a.out.ld % 2 != 0 || a.q.ld % 2 != 0)
        return false;
    if (rows <= 0) return true;
    const int64_t tpt = kFaRows / a.group, tiles = (rows + tpt - 1) / tpt;
    WO_CHECK(tiles < (int64_t(1) << 31) && a.n_head / a.group <= 65535, "attention: grid limits");
    AttnArgs<__half> b = a;
    b.i0 = i0;
    launch("attention_mma_k", attention_mma_k, dim3(unsigned(tiles), unsigned(a.n_head / a.group)),
           kFaThreads, 0, s, b, rows);
    check_launch("attention mma");
    return true;
}

}  // namespace wo::cuda
