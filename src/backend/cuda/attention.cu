// Attention over the KV cache (F16, or F32 for exactness tests): one CTA of W warps per
// (token, head). The token's keys [j0, pos] are cut into chunks of 32 (one key per lane); warp w
// takes chunks w, w+W, w+2W, ... and keeps its own online softmax (max, sum, output row), and the
// W warp states are merged in warp order at the end, then the sink joins the denominator. So a
// token's reduction order depends only on its own span of keys and its role, never on the batch.
// Prompt rows take W = 8; decode rows (the first n_decode rows, docs/backend.md's token roles)
// take W = 16: a decode step has few (token, head) CTAs, and 16 warps give each a chunk or two
// of the keys instead of a longer serial walk (32 warps made ptxas cap registers at 32 and
// spill). GQA by head group, sliding window by position (ring rows j % n_rows). Prompt rows of
// an F16 cache with head_dim 64 take the tensor cores instead (attention_mma.cu).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

constexpr int kPromptWarps = 8;   // warps per CTA for prompt rows
constexpr int kDecodeWarps = 16;  // for decode rows
constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;  // output elements per lane at most

// Two consecutive cache elements as floats.
__device__ __forceinline__ float2 get2(const __half* p) {
    return __half22float2(*reinterpret_cast<const __half2*>(p));
}
__device__ __forceinline__ float2 get2(const float* p) { return *reinterpret_cast<const float2*>(p); }

// q·k over hd <= HD elements in order (the same FMA chain either way); vec: 16-byte loads of the
// row, unrolled to HD so that all of a key's loads are in flight at once.
template <int HD, typename C>
__device__ __forceinline__ float dot_row(const float* qs, const C* kr, int hd, bool vec) {
    float d = 0.0f;
    if (vec) {
        constexpr int kPer = 16 / int(sizeof(C));
#pragma unroll
        for (int e = 0; e < HD; e += kPer) {
            if (e >= hd) break;
            const uint4 raw = *reinterpret_cast<const uint4*>(kr + e);
            if constexpr (sizeof(C) == 2) {
                const __half2* h2 = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
                for (int t = 0; t < 4; ++t) {
                    const float2 f = __half22float2(h2[t]);
                    d = __fmaf_rn(qs[e + 2 * t], f.x, d);
                    d = __fmaf_rn(qs[e + 2 * t + 1], f.y, d);
                }
            } else {
                const float4 f = *reinterpret_cast<const float4*>(&raw);
                d = __fmaf_rn(qs[e], f.x, d);
                d = __fmaf_rn(qs[e + 1], f.y, d);
                d = __fmaf_rn(qs[e + 2], f.z, d);
                d = __fmaf_rn(qs[e + 3], f.w, d);
            }
        }
    } else {
        for (int e = 0; e < hd; e += 2) {
            const float2 kv = get2(kr + e);
            d = __fmaf_rn(qs[e], kv.x, d);
            d = __fmaf_rn(qs[e + 1], kv.y, d);
        }
    }
    return d;
}

// PL = hd / 32 output elements per lane (hd = 32 * PL or less), W warps per CTA.
template <typename C, int PL, int W>
__global__ void __launch_bounds__(32 * W) attention_k(AttnArgs<C> a) {
    pdl_begin();
    constexpr int kThreads = 32 * W;
    __shared__ float qs[kMaxHeadDim];
    __shared__ float wm[W], wl[W];
    __shared__ float wo_[W][32 * PL];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int64_t i = a.i0 + blockIdx.x / a.n_head;
    const int h = static_cast<int>(blockIdx.x % a.n_head);
    const int32_t p = a.pos[i], sl = a.slot[i];
    if (p < 0 || sl < 0 || sl >= a.n_slots) __trap();
    const int32_t j0 = a.window > 0 ? max(0, p - a.window + 1) : 0;
    const int len = p - j0 + 1;
    if (len > a.n_rows) __trap();  // the cache no longer holds keys this query must see
    const float* qh = a.q.row(i) + static_cast<int64_t>(h) * a.hd;
    for (int c = threadIdx.x; c < a.hd; c += kThreads) qs[c] = qh[c];
    const int64_t head_off = sl * a.slot_ld + static_cast<int64_t>(h / a.group) * a.hd;
    const C* K = a.k + head_off;
    const C* V = a.v + head_off;
    __syncthreads();

    // Lane owns output elements c = 2*lane + 64*r, +1 (r < PL/2): pairs, so V is read as pairs.
    float m = -INFINITY, l = 0.0f;
    float acc[PL];
#pragma unroll
    for (int r = 0; r < PL; ++r) acc[r] = 0.0f;
    const int n_chunks = (len + 31) / 32;
    for (int ch = w; ch < n_chunks; ch += W) {
        const int jc = ch * 32 + lane;  // this lane's key, relative to j0
        float sc = -INFINITY;
        if (jc < len) {
            const C* kr = K + static_cast<int64_t>((j0 + jc) % a.n_rows) * a.row_ld;
            sc = dot_row<32 * PL>(qs, kr, a.hd, a.vec) * a.scale;
        }
        float cmax = sc;
#pragma unroll
        for (int off = 16; off >= 1; off /= 2) cmax = fmaxf(cmax, __shfl_xor_sync(0xFFFFFFFFu, cmax, off));
        const float m_new = fmaxf(m, cmax);
        const float alpha = m == -INFINITY ? 0.0f : expf(m - m_new);
        const float pr = sc == -INFINITY ? 0.0f : expf(sc - m_new);
        float ps = pr;
#pragma unroll
        for (int off = 16; off >= 1; off /= 2) ps += __shfl_xor_sync(0xFFFFFFFFu, ps, off);
        l = l * alpha + ps;
        m = m_new;
#pragma unroll
        for (int r = 0; r < PL; ++r) acc[r] *= alpha;
        // The chunk's value rows, key by key in order. A full chunk is unrolled by 8 so that 8
        // rows' loads are in flight at once (the same FMAs in the same order).
        // Ring row of the chunk's first key: one modulo per chunk, not per key (an integer
        // modulo is ~20 instructions, more than the key's FMAs).
        const int row0 = (j0 + ch * 32) % a.n_rows;
        auto add_value = [&](int jj) {
            const float pj = __shfl_sync(0xFFFFFFFFu, pr, jj);
            const int row = row0 + jj < a.n_rows ? row0 + jj : row0 + jj - a.n_rows;
            const C* vr = V + static_cast<int64_t>(row) * a.row_ld;
#pragma unroll
            for (int r = 0; r < PL / 2; ++r) {
                const int c = 2 * lane + 64 * r;
                if (c < a.hd) {
                    const float2 vv = get2(vr + c);
                    acc[2 * r] = __fmaf_rn(pj, vv.x, acc[2 * r]);
                    acc[2 * r + 1] = __fmaf_rn(pj, vv.y, acc[2 * r + 1]);
                }
            }
        };
        const int nk = min(32, len - ch * 32);
        if (nk == 32) {
#pragma unroll 8
            for (int jj = 0; jj < 32; ++jj) add_value(jj);
        } else {
            for (int jj = 0; jj < nk; ++jj) add_value(jj);
        }
    }
    if (lane == 0) wm[w] = m, wl[w] = l;
#pragma unroll
    for (int r = 0; r < PL / 2; ++r) {
        const int c = 2 * lane + 64 * r;
        if (c < a.hd) wo_[w][c] = acc[2 * r], wo_[w][c + 1] = acc[2 * r + 1];
    }
    __syncthreads();
    // Merge the warp states in warp order, then the sink (denominator only: no value vector).
    float mf = -INFINITY;
    for (int x = 0; x < W; ++x) mf = fmaxf(mf, wm[x]);
    if (a.sinks) mf = fmaxf(mf, a.sinks[h]);
    float lf = 0.0f;
    for (int x = 0; x < W; ++x)
        if (wm[x] != -INFINITY) lf += wl[x] * expf(wm[x] - mf);
    if (a.sinks) lf += expf(a.sinks[h] - mf);
    float* o = a.out.row(i) + static_cast<int64_t>(h) * a.hd;
    for (int c = threadIdx.x; c < a.hd; c += kThreads) {
        float s = 0.0f;
        for (int x = 0; x < W; ++x)
            if (wm[x] != -INFINITY) s += wo_[x][c] * expf(wm[x] - mf);
        o[c] = s / lf;
    }
}

}  // namespace

template <typename C>
bool launch(Tensor out, Tensor q, KvLayer kv, const StepTensors& st, const AttnParams& p, int64_t n_decode,
            void* scratch, size_t scratch_bytes, cudaStream_t s, uint4* split_xs, float* split_xm);

bool attention(Tensor out, Tensor q, KvLayer kv, const StepTensors& st, const AttnParams& p, int64_t n_decode,
               void* scratch, size_t scratch_bytes, cudaStream_t s, uint4* split_xs, float* split_xm) {
    const int64_t n = q.rows(), hd = p.head_dim;
    WO_CHECK(p.n_head_kv > 0 && p.n_head % p.n_head_kv == 0 && q.cols() == p.n_head * hd &&
                 kv.k.cols() == p.n_head_kv * hd &&
                 (kv.k.type == GgmlType::F16 || kv.k.type == GgmlType::F32) && kv.v.type == kv.k.type &&
                 out.cols() == p.n_head * hd && n == st.n && hd % 2 == 0 && hd <= kMaxHeadDim &&
                 kv.k.nb1 == kv.v.nb1 && kv.k.nb2 == kv.v.nb2 && (!p.sinks || p.sinks->cols() >= p.n_head),
             "attention shapes");
    if (n == 0) return false;
    if (kv.k.type == GgmlType::F16)
        return launch<__half>(out, q, kv, st, p, n_decode, scratch, scratch_bytes, s, split_xs, split_xm);
    return launch<float>(out, q, kv, st, p, n_decode, scratch, scratch_bytes, s, nullptr, nullptr);
}

template <typename C, int W>
void launch_rows(const AttnArgs<C>& a, int64_t i0, int64_t rows, cudaStream_t s) {
    if (rows <= 0) return;
    AttnArgs<C> b = a;
    b.i0 = i0;
    const unsigned grid = static_cast<unsigned>(rows * a.n_head);
    if (a.hd <= 64)
        launch("attention_k", attention_k<C, 2, W>, grid, 32 * W, 0, s, b);
    else if (a.hd <= 128)
        launch("attention_k", attention_k<C, 4, W>, grid, 32 * W, 0, s, b);
    else
        launch("attention_k", attention_k<C, kPerLane, W>, grid, 32 * W, 0, s, b);
    check_launch("attention");
}

template <typename C>
bool launch(Tensor out, Tensor q, KvLayer kv, const StepTensors& st, const AttnParams& p, int64_t n_decode,
            void* scratch, size_t scratch_bytes, cudaStream_t s, uint4* split_xs, float* split_xm) {
    const int64_t n = q.rows(), hd = p.head_dim;
    AttnArgs<C> a;
    a.out = rows_of(out);
    a.q = rows_of(q);
    a.k = static_cast<const C*>(kv.k.data);
    a.v = static_cast<const C*>(kv.v.data);
    a.row_ld = static_cast<int64_t>(kv.k.nb1 / sizeof(C));
    a.slot_ld = static_cast<int64_t>(kv.k.nb2 / sizeof(C));
    a.n_rows = kv.n_rows;
    a.n_slots = static_cast<int>(kv.k.mats());
    a.pos = i32_of(st.pos);
    a.slot = i32_of(st.slot);
    a.n_head = p.n_head;
    a.group = p.n_head / p.n_head_kv;
    a.hd = static_cast<int>(hd);
    a.scale = p.scale;
    a.window = p.window;
    a.sinks = p.sinks ? static_cast<const float*>(p.sinks->data) : nullptr;
    WO_CHECK(kv.k.nb1 % (2 * sizeof(C)) == 0 && kv.k.nb2 % (2 * sizeof(C)) == 0 &&
                 reinterpret_cast<uintptr_t>(kv.k.data) % (2 * sizeof(C)) == 0 &&
                 reinterpret_cast<uintptr_t>(kv.v.data) % (2 * sizeof(C)) == 0,
             "attention: cache rows must allow pair loads");
    a.vec = (hd * sizeof(C)) % 16 == 0 && kv.k.nb1 % 16 == 0 && kv.k.nb2 % 16 == 0 &&
            reinterpret_cast<uintptr_t>(kv.k.data) % 16 == 0;
    WO_CHECK(n * p.n_head < (int64_t(1) << 31), "attention: grid limits");
    const int64_t nd = std::clamp<int64_t>(n_decode, 0, n);
    if constexpr (std::is_same_v<C, __half>) {
        AttnArgs<C> b = a;
        if (split_xs && nd > 0 && (p.n_head * hd) % 32 == 0) b.split_xs = split_xs, b.split_xm = split_xm;
        const bool mma = attention_mma_decode_rows(b, nd, scratch, scratch_bytes, s);
        if (!mma) launch_rows<C, kDecodeWarps>(a, 0, nd, s);
        if (!attention_mma_rows(a, nd, n - nd, s)) launch_rows<C, kPromptWarps>(a, nd, n - nd, s);
        return mma && b.split_xs;  // whether the decode rows' split was written
    } else {
        launch_rows<C, kDecodeWarps>(a, 0, nd, s);
        launch_rows<C, kPromptWarps>(a, nd, n - nd, s);
        return false;
    }
}

}  // namespace wo::cuda
