// Small device helpers shared by the kernel files: strided F32/I32 row access and fixed-order
// block reductions (a reduction tree whose shape depends only on the block size, so a row's
// result never depends on what else is in the launch).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/tensor.h"

namespace wo::cuda {

// A 2-D F32 view as the kernels see it: base pointer and row stride in floats.
struct Rows {
    float* p;
    int64_t ld;
    __device__ float* row(int64_t r) const { return p + r * ld; }
};
inline Rows rows_of(const Tensor& t) {
    return {static_cast<float*>(t.data), static_cast<int64_t>(t.nb1 / sizeof(float))};
}
inline const int32_t* i32_of(const Tensor& t) { return static_cast<const int32_t*>(t.data); }

// Sum of v over the block in a fixed tree order; `sh` has blockDim.x entries. All threads get it.
template <typename T>
__device__ T block_sum(T v, T* sh) {
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        __syncthreads();
    }
    const T r = sh[0];
    __syncthreads();
    return r;
}

template <typename T>
__device__ T block_max(T v, T* sh) {
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = sh[t + s] > sh[t] ? sh[t + s] : sh[t];
        __syncthreads();
    }
    const T r = sh[0];
    __syncthreads();
    return r;
}

}  // namespace wo::cuda
