// Decode products on tensor cores ("tmv"): the decode path's dots with Q8_0 and MXFP4 weights
// in the DEVICE layout (dequant.cuh), for every token count, as mma.sync m16n8k16 (f16 in, fp32
// accumulators) instead of fp32 FMAs.
//
// Operands. A = 16 weight rows as their exact codes in f16 (dequant.cuh's scaled units: MXFP4's
// E2M1 * 2^-14 built from the bits, Q8_0's int8 via 1024 + c + 128 - 1152; both exact in f16),
// the block's scale applied after the MMA. B = 4 tokens x 2 terms: an activation row is scaled by
// a power of two 2^s (from its largest |x|, so the scaled row lies below 2^15) and split into
// hi = f16(x') and lo = f16(x' - hi) (tmv_split_kernel, once per row and call); column 2t of a
// tile is token t's hi, column 2t + 1 its lo. hi + lo carries 22 bits of x' (2^-22 relative),
// and down to 2^-39 of the row's largest element absolutely: a dot's error stays that of fp32
// accumulation (tests: tmv_error_bound).
// The k order inside a 32-element block is ours to choose as long as A and B agree: thread
// (g, t) of the warp holds unit t of the block (elements 8t..8t+7) of rows g and g + 8, as the
// f16 pairs (8t+j, 8t+j+4), j = 0..3 (e2m1x8_halves); MMA 1 takes pairs 0 and 1, MMA 2 pairs 2
// and 3, and the split row stores each unit's activations in that pair order.
//
// Order (batch invariance). Each MMA's output element depends only on its row of A and its
// column of B. Per (row, token): for each 16-element MMA, part = hi column + lo column (one
// rounding), acc = fma(part, block scale, acc); the blocks of n_in are cut into kTmvSplit equal
// ranges walked in increasing order, each into its own accumulator, and the range sums are added
// in range order; then y = sum * 2^(kPre - s) (exact) and the bias. Nothing depends on the token
// count, on a token's place in a tile or on its neighbours, so every decode call of a weight
// gives a token the same bits. The prompt path (mma.cuh) has its own order.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/util.cuh"

namespace wo::cuda {

constexpr int kTmvRows = 16;    // weight rows of a tile (the MMA's M)
constexpr int kTmvToks = 4;     // tokens per MMA: 8 columns, hi and lo of each
constexpr int kTmvSplit = 4;    // K ranges: the warps of a CTA
constexpr int kTmvThreads = 32 * kTmvSplit;

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

// A split row of n activations: for block b, 8 uint4 = [term hi, lo][unit t][4 f16 pairs].
inline size_t tmv_split_bytes(int64_t rows, int64_t n) { return size_t(rows) * size_t(n) * 4; }

// value = code * 2^kPre * block scale.
template <GgmlType T>
constexpr int kTmvPre = T == GgmlType::MXFP4 ? 14 : 0;

__device__ __forceinline__ float pow2f(int e) {  // e in [-126, 127]
    return __int_as_float((e + 127) << 23);
}

// The exponent s that puts a row whose largest |x| is m into [2^14, 2^15) (0 for a zero or
// subnormal m; at most 126, so 2^s is a normal float; -114 for an infinite m).
__device__ __forceinline__ int tmv_exponent(float m) {
    const int e = (__float_as_int(m) >> 23) & 0xFF;
    return e == 0 ? 0 : min(126, 14 - (e - 127));
}

// The multiplier that undoes 2^s and applies 2^kPre.
template <GgmlType T>
__device__ __forceinline__ float tmv_unscale(int s) {
    return pow2f(max(-126, min(127, kTmvPre<T> - s)));
}

// Unit t of block b of a DEVICE-layout row as f16 pairs (elements j, j + 4), and the block scale.
template <GgmlType T>
__device__ __forceinline__ void tmv_codes(const uint8_t* row, int64_t b, int t, uint32_t h[4]) {
    if constexpr (T == GgmlType::MXFP4) {
        e2m1x8_halves(__ldg(reinterpret_cast<const uint32_t*>(row) + 4 * b + t), h);
    } else {
        const uint2 q = __ldg(reinterpret_cast<const uint2*>(row) + 4 * b + t);
        const uint32_t lo = q.x ^ 0x80808080u, hi = q.y ^ 0x80808080u;  // code + 128
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            // f16 1024 + (code + 128) from the byte under the exponent of 1024, then - 1152: exact.
            const uint32_t v = (__byte_perm(lo, hi, unsigned(j | (j << 4) | ((4 + j) << 8) | ((4 + j) << 12))) &
                                0x00FF00FFu) |
                               0x64006400u;
            __half2 x = __hsub2(*reinterpret_cast<const __half2*>(&v), __float2half2_rn(1152.0f));
            h[j] = *reinterpret_cast<uint32_t*>(&x);
        }
    }
}
template <GgmlType T>
__device__ __forceinline__ float tmv_scale(const uint8_t* row, int64_t n, int64_t b) {
    if constexpr (T == GgmlType::MXFP4) {
        return e8m0(__ldg(row + n / 2 + b));
    } else {
        return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(row + n) + b)));
    }
}

// d = A · B with a zero accumulator (f16 in, fp32 out).
__device__ __forceinline__ void mma_f16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                        uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%10,%10,%10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(0.0f));
}

// One warp: blocks [b0, b1) of weight rows ra (A row g) and rb (A row g + 8), through NTT tiles
// of 4 tokens. xs[j] = this thread's column of tile j in its split row (the row's base + term * 4
// + t, in uint4), or null for a column past the last token. acc[j][0] / [1] = rows ra / rb for
// token t of tile j (thread (g, t) = lane (4g + t)); the other lanes' values are the other rows.
template <GgmlType T, int NTT>
__device__ __forceinline__ void tmv_range(const uint8_t* ra, const uint8_t* rb, int64_t n, int64_t b0, int64_t b1,
                                          const uint4* const (&xs)[NTT], float (&acc)[NTT][2]) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int j = 0; j < NTT; ++j) acc[j][0] = acc[j][1] = 0.0f;
#pragma unroll 2
    for (int64_t b = b0; b < b1; ++b) {
        uint32_t ha[4], hb[4];
        tmv_codes<T>(ra, b, t, ha);
        tmv_codes<T>(rb, b, t, hb);
        const float sa = tmv_scale<T>(ra, n, b), sb = tmv_scale<T>(rb, n, b);
#pragma unroll
        for (int j = 0; j < NTT; ++j) {
            const uint4 x = xs[j] ? __ldg(xs[j] + 8 * b) : make_uint4(0, 0, 0, 0);
            float d[4];
            mma_f16(d, ha[0], hb[0], ha[1], hb[1], x.x, x.y);
            acc[j][0] = __fmaf_rn(__fadd_rn(d[0], d[1]), sa, acc[j][0]);
            acc[j][1] = __fmaf_rn(__fadd_rn(d[2], d[3]), sb, acc[j][1]);
            mma_f16(d, ha[2], hb[2], ha[3], hb[3], x.z, x.w);
            acc[j][0] = __fmaf_rn(__fadd_rn(d[0], d[1]), sa, acc[j][0]);
            acc[j][1] = __fmaf_rn(__fadd_rn(d[2], d[3]), sb, acc[j][1]);
        }
    }
}

// The blocks of range `r` of a row of n elements (kTmvSplit equal ranges).
__device__ __forceinline__ void tmv_blocks(int64_t n, int r, int64_t& b0, int64_t& b1) {
    const int64_t nb = n / 32, per = (nb + kTmvSplit - 1) / kTmvSplit;
    b0 = min(nb, per * r), b1 = min(nb, b0 + per);
}

// The kTmvSplit warps [w0, w0 + kTmvSplit) of the CTA hold the ranges of the same tile in order:
// the range sums added in range order into the first warp's acc. `sh` holds
// (kTmvSplit - 1) * NTT * 2 * 32 floats for this group; every thread of the CTA must call it.
template <int NTT>
__device__ __forceinline__ void tmv_range_sum(float (&acc)[NTT][2], float* sh, int w0) {
    const int lane = threadIdx.x & 31, r = (threadIdx.x >> 5) - w0;
    if (r > 0)
#pragma unroll
        for (int j = 0; j < NTT; ++j)
#pragma unroll
            for (int i = 0; i < 2; ++i) sh[(((r - 1) * NTT + j) * 2 + i) * 32 + lane] = acc[j][i];
    __syncthreads();
    if (r == 0)
#pragma unroll
        for (int k = 1; k < kTmvSplit; ++k)
#pragma unroll
            for (int j = 0; j < NTT; ++j)
#pragma unroll
                for (int i = 0; i < 2; ++i) acc[j][i] = __fadd_rn(acc[j][i], sh[(((k - 1) * NTT + j) * 2 + i) * 32 + lane]);
    __syncthreads();  // sh is rewritten by the next call
}

// Queues the split of rows [0, rows) of x (F32, x.cols() % 32 == 0) for the tensor-core decode
// (tmv.cu): row r -> xs + r * x.cols() / 4 (uint4) and its exponent exps[r].
void tmv_split(const Tensor& x, int64_t rows, uint4* xs, int32_t* exps, cudaStream_t s);

}  // namespace wo::cuda
