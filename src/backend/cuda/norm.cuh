// The RMSNorm arithmetic of norm.cu's rms_norm kernel as device functions, so the router kernel
// that folds the norm in (router.cu) computes the same bits: per-thread double sums of squares
// over a stride of kNormThreads, block_sum's tree over kNormThreads of them, then
// y = x * inv * w in f32.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace wo::cuda {

constexpr int kNormThreads = 256;

// Σ x[j]² over j = first, first + kNormThreads, ... < d, in that order.
__device__ __forceinline__ double rms_partial(const float* x, int64_t d, int64_t first) {
    double ss = 0;
    for (int64_t j = first; j < d; j += kNormThreads) ss += static_cast<double>(x[j]) * x[j];
    return ss;
}

__device__ __forceinline__ float rms_inv(double ss, int64_t d, float eps) {
    return static_cast<float>(1.0 / sqrt(ss / static_cast<double>(d) + eps));
}

__device__ __forceinline__ float rms_apply(float x, float inv, float w) { return x * inv * w; }

}  // namespace wo::cuda
