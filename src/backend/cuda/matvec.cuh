// The dot-product core shared by matmul and the MoE expert passes and nothing else, so every
// product of an activation row with a weight row is summed in one order everywhere:
//   a CTA of kSplit warps owns kWarpRows weight rows; the row's 8-element units are cut into
//   kSplit equal ranges, warp w taking range w. Lane l of warp w walks its range's units
//   u = begin + l, begin + l + 32, ... in increasing order and, per unit, adds w[8u+i]*x[8u+i] for
//   i = 0..7 into its own fp32 accumulator (one FMA each, explicit __fmaf_rn so the compiler
//   cannot regroup; Q8_0 and MXFP4 instead sum the unit's codes times x into a fresh partial and
//   add it times the unit's scale with one FMA, dequant.cuh's scaled units); the 32 lane sums of
//   a warp are combined by a fixed butterfly (xor 16, 8, 4, 2, 1; every lane ends with the same
//   bits since a+b == b+a); then the kSplit warp sums are added in warp order through shared
//   memory.
// The order depends on n_in and nothing else: not on the token count, on which tokens share the
// pass, or on how many tokens a pass carries (NT). That is the batch invariance the backend
// promises. Splitting K over the CTA's warps keeps each warp's chain short (a decode matvec is
// latency-bound: ~3 loads per lane per row instead of ~12 at n_in = 2880).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/util.cuh"
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

// Q8_0 and MXFP4: per unit, s = Σ c_i x_i in order (a fresh product, then FMAs), then
// acc = fma(s * kPre, scale, acc): the codes need no conversion (dequant.cuh).
template <class D>
__device__ __forceinline__ void scaled_unit_dot(const float (&c)[8], const float (&xv)[8], float scale,
                                                float& acc) {
    float s = __fmul_rn(c[0], xv[0]);
#pragma unroll
    for (int i = 1; i < 8; ++i) s = __fmaf_rn(c[i], xv[i], s);
    if constexpr (Scaled<D>::kPre != 1.0f) s = __fmul_rn(s, Scaled<D>::kPre);
    acc = __fmaf_rn(s, scale, acc);
}

// acc += unit u of weight row w times the unit's activations xv, in the order above (one token).
template <class D>
__device__ __forceinline__ void unit_acc(const uint8_t* w, int64_t u, int64_t n_in, const float (&xv)[8],
                                         float& acc) {
    if constexpr (kScaled<D>) {
        float c[8];
        const float scale = Scaled<D>::codes(w, u, n_in, c);
        scaled_unit_dot<D>(c, xv, scale, acc);
    } else {
        float wv[8];
        D::unit(w, u, n_in, wv);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc = __fmaf_rn(wv[i], xv[i], acc);
    }
}

// acc[r][t] = the part of dot(weight row w[r], activation row x[t]) over units [ub, ue), in the
// order above. Every lane of the warp must call it (the butterfly needs all 32); all lanes get
// every result.
template <GgmlType T, bool P, int R, int NT>
__device__ __forceinline__ void warp_dots(const uint8_t* const (&w)[R], int64_t n_in, int64_t ub, int64_t ue,
                                          const float* const (&x)[NT], bool xvec, float (&acc)[R][NT]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
    using D = typename Dq<T, P>::type;
    if constexpr (kScaled<D>) {
        for (int64_t u = ub + lane; u < ue; u += 32) {
            if constexpr (NT == 1) {
                // One token: the activations first, then each row's codes used as soon as they
                // are decoded (8 live code registers instead of 8 * R: no spills at 64).
                float xv[8];
                load_x8(x[0], u, n_in, xvec, xv);
#pragma unroll
                for (int r = 0; r < R; ++r) unit_acc<D>(w[r], u, n_in, xv, acc[r][0]);
            } else {
                float cv[R][8], sc[R];
#pragma unroll
                for (int r = 0; r < R; ++r) sc[r] = Scaled<D>::codes(w[r], u, n_in, cv[r]);
#pragma unroll
                for (int t = 0; t < NT; ++t) {
                    float xv[8];
                    load_x8(x[t], u, n_in, xvec, xv);
#pragma unroll
                    for (int r = 0; r < R; ++r) scaled_unit_dot<D>(cv[r], xv, sc[r], acc[r][t]);
                }
            }
        }
    } else {
        for (int64_t u = ub + lane; u < ue; u += 32) {
            // The R weight units first, then one token at a time (8 activations live at once,
            // not 8 * NT: the register budget stays that of the weights and accumulators).
            float wv[R][8];
#pragma unroll
            for (int r = 0; r < R; ++r) D::unit(w[r], u, n_in, wv[r]);
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                float xv[8];
                load_x8(x[t], u, n_in, xvec, xv);
#pragma unroll
                for (int r = 0; r < R; ++r)
#pragma unroll
                    for (int i = 0; i < 8; ++i) acc[r][t] = __fmaf_rn(wv[r][i], xv[i], acc[r][t]);
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

constexpr int kWarpRows = 2;  // weight rows per CTA
constexpr int kSplit = 4;     // warps per CTA, each one range of every row's units
constexpr int kBlockThreads = 32 * kSplit;

// The full dots of the CTA's R rows with NT tokens, in the order above: every thread of the CTA
// must call it (it synchronizes). The result for (r, t) = (lane / NT, lane % NT), lane < R * NT,
// is returned to that lane of warp 0; `sh` holds kSplit * R * NT floats.
template <GgmlType T, bool P, int R, int NT>
__device__ __forceinline__ float cta_dots(const uint8_t* const (&w)[R], int64_t n_in,
                                          const float* const (&x)[NT], bool xvec, float* sh) {
    static_assert(R * NT <= 32, "one lane per result");
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t n_units = (n_in + 7) / 8, per = (n_units + kSplit - 1) / kSplit;
    const int64_t ub = min(n_units, per * warp), ue = min(n_units, ub + per);
    float acc[R][NT];
    warp_dots<T, P, R, NT>(w, n_in, ub, ue, x, xvec, acc);
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t)
            if (lane == r * NT + t) sh[warp * R * NT + lane] = acc[r][t];
    __syncthreads();
    float s = 0.0f;
    if (warp == 0 && lane < R * NT) {
        s = sh[lane];
#pragma unroll
        for (int k = 1; k < kSplit; ++k) s = __fadd_rn(s, sh[k * R * NT + lane]);
    }
    __syncthreads();  // sh is rewritten by the next call
    return s;
}

// cta_dots<T, P, R, NT> computed by one warp alone: the kSplit ranges become kSplit accumulators
// of each (row, token), walked together (their loads in flight at once), each reduced by the
// same butterfly and then added in range order, as cta_dots adds its warps' sums. The same bits
// as cta_dots, with no shared memory and no barrier, so a warp can own its rows. A pass of NT
// tokens decodes each unit's weights once for all of them (the per-element arithmetic of every
// (row, token) is the one-token pass's, so NT changes no bits). All lanes get every dot[r][t].
template <GgmlType T, bool P, int R, int NT>
__device__ __forceinline__ void warp_cta_dots_nt(const uint8_t* const (&w)[R], int64_t n_in,
                                                 const float* const (&x)[NT], bool xvec,
                                                 float (&dot)[R][NT]) {
    using D = typename Dq<T, P>::type;
    const int lane = threadIdx.x & 31;
    const int64_t n_units = (n_in + 7) / 8, per = (n_units + kSplit - 1) / kSplit;
    float acc[kSplit][R][NT];
#pragma unroll
    for (int k = 0; k < kSplit; ++k)
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int t = 0; t < NT; ++t) acc[k][r][t] = 0.0f;
    // Range k is cta_dots' warp k: units [per*k, min(n_units, per*k + per)), lane l taking
    // per*k + l, per*k + l + 32, ... in increasing order.
    for (int64_t j = lane; j < per; j += 32) {
#pragma unroll
        for (int k = 0; k < kSplit; ++k) {
            const int64_t u = per * k + j;
            if (u >= n_units) continue;
            if constexpr (NT == 1) {
                float xv[8];
                load_x8(x[0], u, n_in, xvec, xv);
#pragma unroll
                for (int r = 0; r < R; ++r) unit_acc<D>(w[r], u, n_in, xv, acc[k][r][0]);
            } else {
                float xv[NT][8];
#pragma unroll
                for (int t = 0; t < NT; ++t) load_x8(x[t], u, n_in, xvec, xv[t]);
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    if constexpr (kScaled<D>) {
                        float c[8];
                        const float scale = Scaled<D>::codes(w[r], u, n_in, c);
#pragma unroll
                        for (int t = 0; t < NT; ++t) scaled_unit_dot<D>(c, xv[t], scale, acc[k][r][t]);
                    } else {
                        float wv[8];
                        D::unit(w[r], u, n_in, wv);
#pragma unroll
                        for (int t = 0; t < NT; ++t)
#pragma unroll
                            for (int i = 0; i < 8; ++i)
                                acc[k][r][t] = __fmaf_rn(wv[i], xv[t][i], acc[k][r][t]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int k = 0; k < kSplit; ++k)
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int t = 0; t < NT; ++t)
#pragma unroll
                for (int off = 16; off >= 1; off /= 2)
                    acc[k][r][t] = __fadd_rn(acc[k][r][t], __shfl_xor_sync(0xFFFFFFFFu, acc[k][r][t], off));
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            dot[r][t] = acc[0][r][t];
#pragma unroll
            for (int k = 1; k < kSplit; ++k) dot[r][t] = __fadd_rn(dot[r][t], acc[k][r][t]);
        }
}

// One token: warp_cta_dots_nt<T, P, R, 1>.
template <GgmlType T, bool P, int R>
__device__ __forceinline__ void warp_cta_dots(const uint8_t* const (&w)[R], int64_t n_in, const float* x,
                                              bool xvec, float (&dot)[R]) {
    const float* xs[1] = {x};
    float d[R][1];
    warp_cta_dots_nt<T, P, R, 1>(w, n_in, xs, xvec, d);
#pragma unroll
    for (int r = 0; r < R; ++r) dot[r] = d[r][0];
}

// Whether a one-token call over `row_blocks` blocks of kWarpRows rows takes the warp-per-rows
// kernels (warp_cta_dots; same bits): when there are enough blocks to give every SM 16 warps.
// Fewer blocks keep cta_dots' four warps per block, so small matrices still spread over the GPU.
// WO_CUDA_WARP_MIN=N sets the threshold in row blocks (0: always, a huge N: never).
// Tests move the threshold with set_warp_min_blocks (kernels.h).
// The current device's SM count (132 where it cannot be read), read once per process.
inline int sm_count() {
    static const int sms = [] {
        int dev = 0, n = 132;
        if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
        return n;
    }();
    return sms;
}
inline int64_t& warp_min_blocks() {
    static int64_t min_blocks = [] {
        if (const char* e = std::getenv("WO_CUDA_WARP_MIN")) return int64_t(std::atoll(e));
        return int64_t(16) * sm_count();
    }();
    return min_blocks;
}
inline bool warp_per_rows(int64_t row_blocks) { return row_blocks >= warp_min_blocks(); }
constexpr int kCtaWarps = kBlockThreads / 32;  // warps per CTA of the warp-per-rows kernels
// Their __launch_bounds__ CTAs per SM: 8 (64 registers) where units are scaled codes; the float
// types hold 8 decoded values per row and spill at 64, so they get 4 (128 registers). Kernels
// with passes of several tokens (NT > 1: NT accumulators per row and range) get half of that.
template <GgmlType T, bool P, int NT = 1>
constexpr int kWarpKernelCtas = (kScaled<typename Dq<T, P>::type> ? 8 : 4) / (NT > 1 ? 2 : 1);
// Tokens per pass of the warp-per-rows kernels for calls of more than one token.
constexpr int kWarpPassTokens = 4;
// Whether calls of 2+ tokens may take the warp-per-rows kernels (passes of kWarpPassTokens);
// WO_CUDA_WARP_NT=0 keeps them on the CTA kernels (for measuring the difference; same bits).
inline bool warp_passes() {
    static const bool on = [] {
        const char* e = std::getenv("WO_CUDA_WARP_NT");
        return !(e && std::string(e) == "0");
    }();
    return on;
}

// The most tokens a call may have and still take the one-token-per-pass kernels (matmul_kernel
// and expert_kernel with WIDE = false; weights re-read from L1 per token): 8, measured best on
// the H200 (bench/NOTES.md: 1 / 8 / 32 gave 477 / 517 / 517 tok/s at 8 streams, 692 / 691 / 596
// at 32). WO_CUDA_NARROW overrides it; the order, and so every result, is the same either way.
inline int64_t narrow_max_tokens() {
    static const int64_t v = [] {
        const char* e = std::getenv("WO_CUDA_NARROW");
        return e ? std::max<int64_t>(1, std::atoll(e)) : int64_t(8);
    }();
    return v;
}

}  // namespace wo::cuda
