// The warp dot-product core shared by matmul, the MoE expert passes and nothing else, so every
// product of an activation row with a weight row is summed in one order everywhere:
//   lane l walks the row's 8-element units u = l, l+32, l+64, ... in increasing order and, per
//   unit, adds w[8u+i]*x[8u+i] for i = 0..7 into its own fp32 accumulator (one FMA each, explicit
//   __fmaf_rn so the compiler cannot regroup); then the 32 lane sums are combined by a fixed
//   butterfly (xor 16, 8, 4, 2, 1; every lane ends with the same bits since a+b == b+a).
// The order depends on n_in and nothing else: not on the token count, on which tokens share the
// pass, on how many weight rows the warp owns (R) or tokens it carries at once (NT). That is the
// batch invariance the backend promises.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "backend/cuda/dequant.cuh"
#include "util/error.h"

namespace wo::cuda {

inline void check_launch(const char* what) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw Error(Code::CUDA_ERROR, std::string(what) + ": " + cudaGetErrorString(e));
}

// 8 activations of unit u of row x (elements >= n read as 0). vec: x is 16-byte aligned.
__device__ __forceinline__ void load_x8(const float* x, int64_t u, int64_t n, bool vec, float v[8]) {
    if (vec && 8 * u + 8 <= n) {
        const float4 a = reinterpret_cast<const float4*>(x)[2 * u];
        const float4 b = reinterpret_cast<const float4*>(x)[2 * u + 1];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = 8 * u + i < n ? x[8 * u + i] : 0.0f;
    }
}

// acc[r][t] = dot(weight row w[r], activation row x[t]) over n_in elements, in the order above.
// Every lane of the warp must call it (the butterfly needs all 32); all lanes get every result.
template <GgmlType T, bool P, int R, int NT>
__device__ __forceinline__ void warp_dots(const uint8_t* const (&w)[R], int64_t n_in,
                                          const float* const (&x)[NT], bool xvec, float (&acc)[R][NT]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
    const int64_t n_units = (n_in + 7) / 8;
    // kUnroll of the lane's units are loaded before any is used, so a warp has kUnroll loads per
    // weight row in flight instead of one (decode is latency-bound otherwise); they are then
    // accumulated in increasing u exactly as one at a time would be.
    constexpr int kUnroll = R >= 4 ? 2 : 4;  // the same loads in flight, registers bounded
    for (int64_t u0 = lane; u0 < n_units; u0 += 32 * kUnroll) {
        float wv[kUnroll][R][8];
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) {
            const int64_t u = u0 + 32 * j;
            if (u < n_units)
#pragma unroll
                for (int r = 0; r < R; ++r) Dq<T, P>::type::unit(w[r], u, n_in, wv[j][r]);
        }
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) {
            const int64_t u = u0 + 32 * j;
            if (u >= n_units) break;
            // One token at a time (8 activations live at once, not 8 * NT).
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                float xv[8];
                load_x8(x[t], u, n_in, xvec, xv);
#pragma unroll
                for (int r = 0; r < R; ++r)
#pragma unroll
                    for (int i = 0; i < 8; ++i) acc[r][t] = __fmaf_rn(wv[j][r][i], xv[i], acc[r][t]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t)
#pragma unroll
            for (int off = 16; off >= 1; off /= 2)
                acc[r][t] = __fadd_rn(acc[r][t], __shfl_xor_sync(0xFFFFFFFFu, acc[r][t], off));
}

// Tokens are carried through a warp in passes of 8, then 4, 2, 1 for the rest; which pass a token
// lands in changes nothing in its arithmetic (see above).
constexpr int kWarpRows = 2;    // weight rows per warp
constexpr int kBlockWarps = 4;  // warps per CTA (128 threads)
constexpr int kBlockRows = kWarpRows * kBlockWarps;

inline bool aligned16(const void* p, size_t stride) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && stride % 16 == 0;
}

}  // namespace wo::cuda
