// Decode products on tensor cores ("tmv"): the decode path's dots with Q8_0 and MXFP4 weights
// in the DEVICE layout (dequant.cuh), for every token count, as mma.sync m16n8k16 (f16 in, fp32
// accumulators) instead of fp32 FMAs.
//
// Operands. A = 16 weight rows as their exact codes in f16 (dequant.cuh's scaled units: MXFP4's
// E2M1 * 2^-14 built from the bits, Q8_0's int8 via 1024 + c + 128 - 1152; both exact in f16),
// the block's scale applied after the MMA. B = 4 tokens x 2 terms: each 32-element block of an
// activation row is scaled by a power of two 2^s (from the block's largest |x|, so the scaled
// block lies below 2^15) and split into hi = f16(x') and lo = f16(x' - hi) (tmv_split, once
// per activation row and call); column 2t of a tile is token t's hi, column 2t + 1 its lo. hi + lo carries
// 22 bits of x' (2^-22 relative), and down to 2^-38 of the block's largest element absolutely:
// a dot's error stays that of fp32 accumulation (tests: tmv_error_bound).
// The k order inside a 32-element block is ours to choose as long as A and B agree: thread
// (g, t) of the warp holds unit t of the block (elements 8t..8t+7) of rows g and g + 8, as the
// f16 pairs (8t+j, 8t+j+4), j = 0..3 (e2m1x8_halves); MMA 1 takes pairs 0 and 1, MMA 2 pairs 2
// and 3, and the split row stores each unit's activations in that pair order.
//
// Order (batch invariance). Each MMA's output element depends only on its row of A and its
// column of B. Per (row, token): for each 32-element block, its two MMAs chained (the second
// accumulates onto the first in the tensor core's fp32), part = hi column + lo column (one
// rounding), acc = fma(part, m, acc) with m = block scale * 2^kPre * 2^-s (exact: powers of two,
// or Q8_0's f16 scale times one); the blocks of n_in are cut into ranges (tmv_blocks: kTmvSplit, or
// matmul_tmv_ranges(n_out) for matmul: fixed by the weight's shape) walked
// in increasing order, each into its own accumulator, and the range sums are added in range
// order; then the bias. Nothing depends on the token count, on a token's place in a tile or on
// its neighbours, so every decode call of a weight gives a token the same bits. The prompt path
// (mma.cuh) has its own order.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/util.cuh"

namespace wo::cuda {

constexpr int kTmvRows = 16;  // weight rows of a tile (the MMA's M)
constexpr int kTmvToks = 4;   // tokens per MMA: 8 columns, hi and lo of each
constexpr int kTmvSplit = 4;  // K ranges: the warps of a CTA (matmul: matmul_tmv_ranges)
constexpr int kTmvThreads = 32 * kTmvSplit;
// matmul takes the tensor-core decode for weights of at least this many rows (a property of the
// weight): fewer rows give too few tiles to fill the GPU (the k/v projections, the router).
// WO_CUDA_TMV_MIN_ROWS overrides it (per process, so still one path per weight).
constexpr int64_t kTmvMinRows = 1024;

// Whether decode products with w take the tensor-core path: Q8_0 and MXFP4 in the DEVICE layout.
// A property of the weight alone, so every decode call of it takes the same path.
// WO_CUDA_TMV=0 keeps them on the CUDA-core kernels (for measuring the difference).
inline bool tmv_weight(const Tensor& w) {
    static const bool on = [] {
        const char* e = std::getenv("WO_CUDA_TMV");
        return !(e && std::string(e) == "0");
    }();
    return on && w.layout == WeightLayout::DEVICE &&
           (w.type == GgmlType::MXFP4 || w.type == GgmlType::Q8_0) && w.cols() % 32 == 0;
}

// A split row of n activations: for block b, 8 uint4 = [term hi, lo][unit t][4 f16 pairs]; and
// per block the float 2^-s that undoes its scale.
inline size_t tmv_split_bytes(int64_t rows, int64_t n) { return size_t(rows) * size_t(n) * 4; }
inline size_t tmv_mult_bytes(int64_t rows, int64_t n) { return size_t(rows) * size_t(n / 32) * 4; }

// value = code * 2^kPre * block scale.
template <GgmlType T>
constexpr int kTmvPre = T == GgmlType::MXFP4 ? 14 : 0;

__device__ __forceinline__ float pow2f(int e) {  // e in [-126, 127]
    return __int_as_float((e + 127) << 23);
}

// The exponent s that puts a block whose largest |x| is m into [2^14, 2^15); within [-112, 126],
// so 2^s and 2^-s are normal floats. A zero or subnormal m gives 0 (a block of elements all
// below 2^-126 counts as zero); an infinite m gives the finite bound and its terms inf / NaN.
__device__ __forceinline__ int tmv_exponent(float m) {
    const int e = (__float_as_int(m) >> 23) & 0xFF;
    return e == 0 ? 0 : max(-112, min(126, 14 - (e - 127)));
}

// The split of one unit (8 elements v of a 32-element block; lanes 4b..4b+3 of the warp hold
// block b's 4 units, and every lane calls it): the block's largest |x| (NaNs skipped; they stay
// NaN in their own terms), then hi = f16(x * 2^s) and lo = f16(x * 2^s - hi) as the pairs
// (j, j + 4) of the k order above. tmv_split_kernel and the fused rms_norm share it, so a row
// split either way has the same bits.
__device__ __forceinline__ float tmv_unit_max(const float (&v)[8]) {
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) m = fmaxf(m, fabsf(v[i]));
    m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, 1));
    return fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, 2));
}
__device__ __forceinline__ void tmv_unit_terms(const float (&v)[8], int s, uint32_t (&hi)[4], uint32_t (&lo)[4]) {
    const float p = pow2f(s);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const float x0 = __fmul_rn(v[j], p), x1 = __fmul_rn(v[j + 4], p);
        const __half2 h = __floats2half2_rn(x0, x1);
        const float2 f = __half22float2(h);
        const __half2 l = __floats2half2_rn(__fsub_rn(x0, f.x), __fsub_rn(x1, f.y));
        hi[j] = *reinterpret_cast<const uint32_t*>(&h);
        lo[j] = *reinterpret_cast<const uint32_t*>(&l);
    }
}
// Unit u's terms into split row `out` (uint4) and, from lane 0 of its block, the multiplier 2^-s.
__device__ __forceinline__ void tmv_unit_store(uint4* out, float* xm, int64_t u, int s, const uint32_t (&hi)[4],
                                               const uint32_t (&lo)[4]) {
    const int64_t b = u / 4, t = u % 4;
    out[8 * b + t] = make_uint4(hi[0], hi[1], hi[2], hi[3]);
    out[8 * b + 4 + t] = make_uint4(lo[0], lo[1], lo[2], lo[3]);
    if (t == 0) xm[b] = pow2f(-s);
}
// Unit u of a row staged in shared memory at v8 (its 8 values; null past the row: zeros, nothing
// stored), split into row `out` / `xm` as tmv_split_kernel does. Every lane of the warp calls it.
__device__ __forceinline__ void tmv_unit_split(const float* v8, uint4* out, float* xm, int64_t u) {
    float v[8] = {};
    if (v8)
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = v8[i];
    const int s = tmv_exponent(tmv_unit_max(v));
    uint32_t hi[4], lo[4];
    tmv_unit_terms(v, s, hi, lo);
    if (v8) tmv_unit_store(out, xm, u, s, hi, lo);
}

// Unit t of a block of a DEVICE-layout row: its raw codes (4 bytes of MXFP4, 8 of Q8_0), then as
// f16 pairs (elements j, j + 4).
template <GgmlType T>
using TmvRaw = std::conditional_t<T == GgmlType::MXFP4, uint32_t, uint2>;

template <GgmlType T>
__device__ __forceinline__ void tmv_halves(TmvRaw<T> q, uint32_t h[4]) {
    if constexpr (T == GgmlType::MXFP4) {
        e2m1x8_halves(q, h);
    } else {
        // f16 1024 + (code + 128): the byte under the exponent byte of 1024 (0x64), then - 1152,
        // exact. Codes j and j + 4 gathered into one word for two pairs, then each pair's bytes
        // interleaved with 0x64: 3 byte permutes per 2 pairs.
        const uint32_t lo = q.x ^ 0x80808080u, hi = q.y ^ 0x80808080u;  // code + 128
        const uint32_t k64 = 0x64646464u;
#pragma unroll
        for (int j = 0; j < 4; j += 2) {
            const uint32_t g =
                __byte_perm(lo, hi, unsigned(j | ((4 + j) << 4) | ((j + 1) << 8) | ((5 + j) << 12)));
            const uint32_t v[2] = {__byte_perm(g, k64, 0x4140u), __byte_perm(g, k64, 0x4342u)};
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                __half2 x = __hsub2(*reinterpret_cast<const __half2*>(&v[i]), __float2half2_rn(1152.0f));
                h[j + i] = *reinterpret_cast<uint32_t*>(&x);
            }
        }
    }
}

// The block scale at p (a row's scale array: MXFP4's e8m0 byte, Q8_0's f16) as its raw bits
// (tmv_scale_raw: a load whose use can come chunks later), then times 2^kPre as a float.
template <GgmlType T>
__device__ __forceinline__ uint32_t tmv_scale_raw(const uint8_t* p) {
    if constexpr (T == GgmlType::MXFP4)
        return __ldg(p);
    else
        return __ldg(reinterpret_cast<const unsigned short*>(p));
}
template <GgmlType T>
__device__ __forceinline__ float tmv_scale_of(uint32_t r) {
    if constexpr (T == GgmlType::MXFP4)  // 2^(e - 127 + 14), from the bits; e = 255 is NaN, and above 2^127
                                         // it is +inf
        return r == 0xFF ? __int_as_float(0x7FC00000) : __int_as_float(int(min(r + kTmvPre<T>, 255u) << 23));
    else
        return __half2float(__ushort_as_half(static_cast<unsigned short>(r)));
}

// d = A · B with a zero accumulator (f16 in, fp32 out).
__device__ __forceinline__ void mma_f16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                        uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%10,%10,%10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(0.0f));
}

// d = A · B + d (f16 in, fp32 accumulators).
__device__ __forceinline__ void mma_f16_acc(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                            uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// This thread's view of one token tile: xs = its column's split row (base + term * 4 + t, in
// uint4) and xm = the multipliers of token t's row, or null past the last token.
struct TmvCol {
    const uint4* xs;
    const float* xm;
};

// The codes reach the MMA through a ring of kTmvStages stages per warp in shared memory: chunk q
// (C blocks of the 16 rows) is copied with 16-byte cp.async pieces (lane (g, t) copies pieces of
// rows g and g + 8: 4x fewer, fully used sectors against 4-byte loads of unit t) while the warp
// computes chunk q - kTmvStages + 1. Rows sit at slot tmv_slot(r) and their 16-byte pieces are
// XOR-swizzled (tmv_swz) so that both the copies (8 lanes x 16 bytes per phase) and the fragment
// reads (lane (g, t): unit t of row g or g + 8) hit distinct banks. Only where the bytes travel
// changes: the operands and the order are those above.
// WO_TMV_STAGES overrides the depth at build time (scripts/gpu-check AB_CUDA_FLAGS, for A/B runs).
#ifndef WO_TMV_STAGES
#define WO_TMV_STAGES 3
#endif
constexpr int kTmvStages = WO_TMV_STAGES;
// How many chunks ahead of its use a block scale is loaded (-1: kTmvStages - 1, like the codes;
// 0: in the chunk that uses it, as before the twelfth session); a build-time A/B.
#ifndef WO_TMV_SCALE_AHEAD
#define WO_TMV_SCALE_AHEAD -1
#endif
static_assert(kTmvStages >= 2 && kTmvStages <= 8, "tmv ring: 2 to 8 stages");
// Bytes of a block's codes.
__host__ __device__ constexpr int tmv_block_bytes(GgmlType t) { return t == GgmlType::MXFP4 ? 16 : 32; }
// Bytes of one warp's ring for chunks of c blocks (kernels give each warp this many).
__host__ __device__ constexpr int tmv_ring_bytes(GgmlType t, int c) {
    return kTmvStages * kTmvRows * c * tmv_block_bytes(t);
}
template <GgmlType T, int C>
__host__ __device__ constexpr int tmv_slot(int r) {
    return T == GgmlType::MXFP4 && C == 2 ? r ^ ((r >> 3) << 1) : r;
}
template <GgmlType T, int C>
__host__ __device__ constexpr int tmv_swz(int r) {
    if constexpr (T == GgmlType::MXFP4)
        return C == 4 ? (r >> 1) & 3 : (r >> 2) & 1;
    else
        return C == 4 ? ((r & 1) << 2) | (r & 2) : r & 2;
}
// Row g + 8 has row g's swizzle, so its pieces and fragments sit a fixed distance from row g's
// (tmv_range keeps row g's offsets only): 8 rows on, or a per-lane distance where the slots move.
template <GgmlType T, int C>
constexpr bool tmv_swz_pairs() {
    for (int g = 0; g < 8; ++g)
        if (tmv_swz<T, C>(g + 8) != tmv_swz<T, C>(g)) return false;
    return true;
}
static_assert(tmv_swz_pairs<GgmlType::MXFP4, 2>() && tmv_swz_pairs<GgmlType::MXFP4, 4>() &&
                  tmv_swz_pairs<GgmlType::Q8_0, 2>() && tmv_swz_pairs<GgmlType::Q8_0, 4>(),
              "tmv ring: rows g and g + 8 share a swizzle");

// v, opaque to the compiler, so that it keeps a loop-invariant value in a register: it otherwise
// rebuilds address arithmetic from its inputs inside the loop (register pressure heuristics).
__device__ __forceinline__ int tmv_keep(int v) {
    asm volatile("mov.b32 %0, %0;" : "+r"(v));
    return v;
}
template <class P>
__device__ __forceinline__ P* tmv_keep(P* v) {
    asm volatile("mov.b64 %0, %0;" : "+l"(v));
    return v;
}

// One warp: blocks [b0, b1) of RT tiles of 16 weight rows, tile i's rows ra[i] (A row g) and
// rb[i] (A row g + 8), through NTT tiles of 4 tokens, in chunks of C blocks. acc[i][j][0] / [1]
// = rows ra[i] / rb[i] for token t of token tile j (thread (g, t) = lane 4g + t). `ring`: this
// warp's RT * tmv_ring_bytes(T, C), 16-byte aligned (tile i's ring at i * tmv_ring_bytes(T, C)).
// Every lane of the warp must call it with the same b0, b1. The RT row tiles share each block's
// activations (loaded once per warp, not once per 16 rows: at 8+ tokens those loads are most of
// what the products read from L2); each (row, token) has the same operations in the same order
// whatever RT is, so RT changes no bits.
// Every address is set up once (its pieces' sources and ring slots, its fragments' ring offsets,
// the scale and activation pointers) and a chunk only adds its offset: the loop is the copies,
// the loads and the MMAs (bench/NOTES.md, tenth session: 389 instructions per 4-block chunk
// before, over half of them address arithmetic and loads the compiler rebuilt in every chunk).
// `ready()` runs after the first chunks' copies and scale loads are issued and before anything
// else is read: a kernel whose weights are known before its inputs (matmul) passes pdl_begin, so the weights'
// first loads overlap the previous kernel's tail (weights are never written).
// XSH: the activations (col's split rows and multipliers) lie in shared memory (read with plain
// loads instead of __ldg): a kernel that splits its own input there in `ready()`.
// TWO: [b0, b1) is two consecutive ranges, the first `split` blocks summed into acc and the rest
// into *acc2 (one warp walking two ranges as one stream of chunks: each range keeps its own
// accumulator and order, so the bits are those of two warps).
struct TmvNoWait {
    __device__ void operator()() const {}
};
template <GgmlType T, int NTT, int RT, int C = NTT == 1 ? 4 : 2, class Ready = TmvNoWait, bool XSH = false,
          bool TWO = false>
__device__ __forceinline__ void tmv_range_rt(const uint8_t* const (&ra)[RT], const uint8_t* const (&rb)[RT],
                                             int64_t n, int64_t b0_, int64_t b1_, const TmvCol (&col)[NTT],
                                             float (&acc)[RT][NTT][2], uint8_t* ring, Ready ready = {},
                                             float (*acc2)[RT][NTT][2] = nullptr, int split = 0) {
    static_assert(C == 2 || C == 4, "chunks of 2 or 4 blocks (the scales come from lanes t < C)");
    constexpr int BB = tmv_block_bytes(T), RB = C * BB, STAGE = kTmvRows * RB;
    constexpr int RING = kTmvStages * STAGE;          // one row tile's ring
    constexpr int PR = RB / 16;                       // 16-byte pieces per row and chunk
    constexpr int SB = T == GgmlType::MXFP4 ? 1 : 2;  // bytes of a block scale
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int b0 = int(b0_), nb = int(b1_ - b0_);  // blocks of a row: far below 2^31
#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
        for (int j = 0; j < NTT; ++j) {
            acc[r][j][0] = acc[r][j][1] = 0.0f;
            if constexpr (TWO) (*acc2)[r][j][0] = (*acc2)[r][j][1] = 0.0f;
        }
    const int nch = (nb + C - 1) / C;
    const int swz = tmv_swz<T, C>(g), row_a = tmv_slot<T, C>(g) * RB;
    const int dab = tmv_slot<T, C>(g + 8) * RB - row_a;  // row g + 8 from row g (8 * RB mostly)
    // Pieces: with PR >= 4 pieces per row, lane t copies pieces t + 4k (k < KR) of rows g and
    // g + 8; with 2, piece t & 1 of row g + 8 (t >> 1). Piece k of row h of chunk q: src[h] + 64k
    // + q * RB -> ring + stage + dst[k] + h * dab while q * C < lim0 - 4k * 16 / BB (its block in
    // the range), else zeros (unused).
    constexpr int KR = PR >= 4 ? PR / 4 : 1, NH = PR >= 4 ? 2 : 1;
    const int h0 = PR >= 4 ? 0 : t >> 1, p0 = PR >= 4 ? t : t & 1;
    const uint8_t* src[RT][NH];
#pragma unroll
    for (int r = 0; r < RT; ++r) {
        src[r][0] = tmv_keep((h0 ? rb[r] : ra[r]) + size_t(b0) * BB + 16 * p0);
        if constexpr (NH == 2) src[r][NH - 1] = tmv_keep(rb[r] + size_t(b0) * BB + 16 * p0);
    }
    int dst[KR];
#pragma unroll
    for (int k = 0; k < KR; ++k) dst[k] = tmv_keep(row_a + h0 * dab + 16 * ((p0 + 4 * k) ^ swz));
    const int lim0 = nb - p0 * 16 / BB;
    // Unit t of block i of row g within a stage (row g + 8: + dab).
    int fa[C];
#pragma unroll
    for (int i = 0; i < C; ++i) {
        const int byte = BB * i + (BB / 4) * t;  // in piece byte / 16
        fa[i] = tmv_keep(row_a + 16 * ((byte >> 4) ^ swz) + (byte & 15));
    }
    auto issue = [&](int q, int stage) {
#pragma unroll
        for (int r = 0; r < RT; ++r)
#pragma unroll
            for (int h = 0; h < NH; ++h)
#pragma unroll
                for (int k = 0; k < KR; ++k) {
                    const bool ok = q * C < lim0 - 4 * k * 16 / BB;
                    cp_async<16>(ring + r * RING + stage + dst[k] + h * dab, src[r][h] + 64 * k + (ok ? q * RB : 0),
                                 ok);
                }
    };
#pragma unroll
    for (int q = 0; q < kTmvStages - 1; ++q) {
        if (q < nch) issue(q, q * STAGE);
        cp_async_commit();
    }
    // Lane t loads the scales of block c + t of the chunk at c (rows g and g + 8); block i's come
    // from lane (g, i). The activations of block c + i: xp[j] + 8 (c + i), mp[j] + c + i.
    // This lane's first scale from a row's start (sof) and, with two row sources, from them (dsp:
    // one register instead of two pointers).
    const int sof = int(T == GgmlType::MXFP4 ? n / 2 : n) + (b0 + t) * SB, dsp = sof - b0 * BB - 16 * p0;
    const uint8_t* sp_a[RT] = {};
    const uint8_t* sp_b[RT] = {};
    if constexpr (NH == 1)
#pragma unroll
        for (int r = 0; r < RT; ++r) sp_a[r] = tmv_keep(ra[r] + sof), sp_b[r] = tmv_keep(rb[r] + sof);
    const uint4* xp[NTT] = {};
    const float* mp[NTT] = {};
#pragma unroll
    for (int j = 0; j < NTT; ++j) {
        xp[j] = col[j].xs ? col[j].xs + 8 * b0 : nullptr;
        mp[j] = col[j].xm ? col[j].xm + b0 : nullptr;
        if constexpr (NTT == 1) xp[j] = tmv_keep(xp[j]), mp[j] = tmv_keep(mp[j]);
    }
    // The scales travel like the codes, kTmvStages - 1 chunks ahead of their use, as raw bits in
    // registers (pa / pb[r][k]: chunk q + k); converted at their use, so no load is waited on
    // early. A scale of a block past the range is left from before, unused.
    constexpr int D = WO_TMV_SCALE_AHEAD < 0 ? kTmvStages - 1 : WO_TMV_SCALE_AHEAD;
    uint32_t pa[RT][D > 0 ? D : 1] = {}, pb[RT][D > 0 ? D : 1] = {};
    auto scales = [&](int qq, int r, uint32_t& ua, uint32_t& ub) {
        const int cc = qq * C;
        if (t < nb - cc) {
            if constexpr (NH == 2)
                ua = tmv_scale_raw<T>(src[r][0] + (dsp + cc * SB)),
                ub = tmv_scale_raw<T>(src[r][1] + (dsp + cc * SB));
            else
                ua = tmv_scale_raw<T>(sp_a[r] + cc * SB), ub = tmv_scale_raw<T>(sp_b[r] + cc * SB);
        }
    };
#pragma unroll
    for (int k = 0; k < D; ++k)
#pragma unroll
        for (int r = 0; r < RT; ++r) scales(k, r, pa[r][k], pb[r][k]);
    ready();  // the weights' first copies and scale loads are in flight
    int s_use = 0, s_iss = (kTmvStages - 1) * STAGE;  // ring offsets of chunks q, q + stages - 1
    for (int q = 0; q < nch; ++q) {
        if (q + kTmvStages - 1 < nch) issue(q + kTmvStages - 1, s_iss);
        cp_async_commit();
        s_iss = s_iss + STAGE == kTmvStages * STAGE ? 0 : s_iss + STAGE;
        const int c = q * C, rem = nb - c;  // this chunk holds min(C, rem) blocks
        float own_a[RT], own_b[RT];
#pragma unroll
        for (int r = 0; r < RT; ++r) {
            if constexpr (D == 0) scales(q, r, pa[r][0], pb[r][0]);  // the A/B's old order: loaded where used
            own_a[r] = tmv_scale_of<T>(pa[r][0]), own_b[r] = tmv_scale_of<T>(pb[r][0]);
            if constexpr (D > 0) {
#pragma unroll
                for (int k = 0; k + 1 < D; ++k) pa[r][k] = pa[r][k + 1], pb[r][k] = pb[r][k + 1];
                scales(q + D, r, pa[r][D - 1], pb[r][D - 1]);  // past the range: t >= nb - cc, nothing loaded
            }
        }
        float m[NTT][C];  // a missing token's column: 0 (its multiplier 0); past the range: 0, unused
        uint4 x[NTT][C];
#pragma unroll
        for (int i = 0; i < C; ++i)
#pragma unroll
            for (int j = 0; j < NTT; ++j) {
                if constexpr (XSH) {
                    x[j][i] = i < rem && xp[j] ? xp[j][8 * (c + i)] : make_uint4(0, 0, 0, 0);
                    m[j][i] = i < rem && mp[j] ? mp[j][c + i] : 0.0f;
                } else {
                    x[j][i] = i < rem && xp[j] ? __ldg(xp[j] + 8 * (c + i)) : make_uint4(0, 0, 0, 0);
                    m[j][i] = i < rem && mp[j] ? __ldg(mp[j] + c + i) : 0.0f;
                }
            }
        cp_async_wait<kTmvStages - 1>();  // chunk q has landed (this lane's pieces) ...
        __syncwarp();                     // ... and every lane's
        TmvRaw<T> qa[RT][C], qb[RT][C];
        float sa[RT][C], sb[RT][C];
#pragma unroll
        for (int r = 0; r < RT; ++r)
#pragma unroll
            for (int i = 0; i < C; ++i) {
                qa[r][i] = *reinterpret_cast<const TmvRaw<T>*>(ring + r * RING + s_use + fa[i]);
                qb[r][i] = *reinterpret_cast<const TmvRaw<T>*>(ring + r * RING + s_use + fa[i] + dab);
                sa[r][i] = __shfl_sync(0xFFFFFFFFu, own_a[r], (lane & ~3) | i);
                sb[r][i] = __shfl_sync(0xFFFFFFFFu, own_b[r], (lane & ~3) | i);
            }
        __syncwarp();  // the stage is refilled by the next iteration's issue
        s_use = s_use + STAGE == kTmvStages * STAGE ? 0 : s_use + STAGE;
        // acc += (hi + lo) * m per (row, token) of block i.
#pragma unroll
        for (int i = 0; i < C; ++i) {
            if (i >= rem) break;
#pragma unroll
            for (int r = 0; r < RT; ++r) {
                uint32_t ha[4], hb[4];
                tmv_halves<T>(qa[r][i], ha);
                tmv_halves<T>(qb[r][i], hb);
#pragma unroll
                for (int j = 0; j < NTT; ++j) {
                    float d[4];
                    mma_f16(d, ha[0], hb[0], ha[1], hb[1], x[j][i].x, x[j][i].y);
                    mma_f16_acc(d, ha[2], hb[2], ha[3], hb[3], x[j][i].z, x[j][i].w);
                    const float ma = __fmul_rn(sa[r][i], m[j][i]), mb = __fmul_rn(sb[r][i], m[j][i]);
                    if (TWO && c + i >= split) {
                        (*acc2)[r][j][0] = __fmaf_rn(__fadd_rn(d[0], d[1]), ma, (*acc2)[r][j][0]);
                        (*acc2)[r][j][1] = __fmaf_rn(__fadd_rn(d[2], d[3]), mb, (*acc2)[r][j][1]);
                    } else {
                        acc[r][j][0] = __fmaf_rn(__fadd_rn(d[0], d[1]), ma, acc[r][j][0]);
                        acc[r][j][1] = __fmaf_rn(__fadd_rn(d[2], d[3]), mb, acc[r][j][1]);
                    }
                }
            }
        }
    }
    cp_async_wait<0>();
}

// tmv_range_rt with one row tile: rows ra (A row g) and rb (A row g + 8); acc[j][0] / [1] = rows
// ra / rb for token t of tile j; `ring`: this warp's tmv_ring_bytes(T, C). RPW = 2: [b0, b1) is
// two consecutive ranges, the first `split` blocks into acc, the rest into acc2.
template <GgmlType T, int NTT, int C = NTT == 1 ? 4 : 2, int RPW = 1, class Ready = TmvNoWait>
__device__ __forceinline__ void tmv_range(const uint8_t* ra, const uint8_t* rb, int64_t n, int64_t b0,
                                          int64_t b1, const TmvCol (&col)[NTT], float (&acc)[NTT][2],
                                          uint8_t* ring, Ready ready = {}, float (*acc2)[NTT][2] = nullptr,
                                          int split = 0) {
    static_assert(RPW == 1 || RPW == 2, "one or two ranges per warp");
    const uint8_t* const ras[1] = {ra};
    const uint8_t* const rbs[1] = {rb};
    tmv_range_rt<T, NTT, 1, C, Ready, false, RPW == 2>(ras, rbs, n, b0, b1, col,
                                                       reinterpret_cast<float(&)[1][NTT][2]>(acc), ring, ready,
                                                       reinterpret_cast<float(*)[1][NTT][2]>(acc2), split);
}

// The blocks of range `r` of a row of n elements: NS ranges of ceil(n / 32 / NS) blocks, rounded
// up to a multiple of 8 when that adds one block at most (2880 = 90 blocks in 4 ranges: 24, 24,
// 24, 18 instead of 23 each). Every range's codes then start on a 128-byte line of a 128-byte
// aligned row (8 MXFP4 / 4 Q8_0 blocks; 2880-wide packed rows are 1,536 / 3,072 bytes), so a
// chunk row of 4 MXFP4 blocks spans 2 sectors instead of 3: +3% at batch 1 (bench/NOTES.md,
// eleventh session). A property of the shape, so batch invariant.
template <int NS = kTmvSplit>
__host__ __device__ __forceinline__ int64_t tmv_range_blocks(int64_t n) {  // blocks per range (the last: fewer)
    int64_t per = (n / 32 + NS - 1) / NS;
    return (per + 7) / 8 * 8 - per <= 1 ? (per + 7) / 8 * 8 : per;
}
template <int NS = kTmvSplit>
__device__ __forceinline__ void tmv_blocks(int64_t n, int r, int64_t& b0, int64_t& b1) {
    const int64_t nb = n / 32, per = tmv_range_blocks<NS>(n);
    b0 = min(nb, per * r), b1 = min(nb, b0 + per);
}

// The warps from w0 hold the NS ranges of the same tile in order (RPW per warp: warp w0 + w holds
// range RPW w in acc and, with RPW = 2, range 2w + 1 in *acc2): the range sums added in range order
// into the first warp's acc. `sh` holds (NS - 1) * NTT * 2 * 32 floats for this group (range k at
// slot k - 1); every thread of the CTA must call it.
template <int NTT, int NS = kTmvSplit, int RPW = 1>
__device__ __forceinline__ void tmv_range_sum(float (&acc)[NTT][2], float* sh, int w0,
                                              const float (*acc2)[NTT][2] = nullptr) {
    static_assert(RPW == 1 || RPW == 2, "one or two ranges per warp");
    const int lane = threadIdx.x & 31, w = (threadIdx.x >> 5) - w0;
    const auto at = [&](int k, int j, int i) -> float& { return sh[(((k - 1) * NTT + j) * 2 + i) * 32 + lane]; };
    if (w > 0)
#pragma unroll
        for (int j = 0; j < NTT; ++j)
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                at(RPW * w, j, i) = acc[j][i];
                if constexpr (RPW == 2) at(2 * w + 1, j, i) = (*acc2)[j][i];
            }
    __syncthreads();
    if (w == 0) {
        if constexpr (RPW == 2)
#pragma unroll
            for (int j = 0; j < NTT; ++j)
#pragma unroll
                for (int i = 0; i < 2; ++i) acc[j][i] = __fadd_rn(acc[j][i], (*acc2)[j][i]);
#pragma unroll
        for (int k = RPW; k < NS; ++k)
#pragma unroll
            for (int j = 0; j < NTT; ++j)
#pragma unroll
                for (int i = 0; i < 2; ++i) acc[j][i] = __fadd_rn(acc[j][i], at(k, j, i));
    }
    __syncthreads();  // sh is rewritten by the next call
}

// Queues the split of rows [r0, r1) of x (F32, x.cols() % 32 == 0) for the tensor-core paths
// (tmv.cu): row r -> xs + r * x.cols() / 4 (uint4) and its blocks' multipliers xm + r * x.cols() / 32.
// wg: the warpgroup prompt path's split (tmm_wg.cuh): one exponent per row (every block of the row
// stores its 2^-s) and each block's words pair-major.
void tmv_split(const Tensor& x, int64_t r0, int64_t r1, uint4* xs, float* xm, cudaStream_t s,
               bool wg = false);

}  // namespace wo::cuda
