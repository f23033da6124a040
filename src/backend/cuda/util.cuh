// Small device helpers shared by the kernel files: strided F32/I32 row access and fixed-order
// block reductions (a reduction tree whose shape depends only on the block size, so a row's
// result never depends on what else is in the launch).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

#include "backend/tensor.h"
#include "util/error.h"

namespace wo::cuda {

// ---- Programmatic dependent launch (sm_90). launch() lets a kernel's CTAs be scheduled while
// the kernel before it in the stream (or graph) is still finishing, so the launch latency
// between the two overlaps the first one's tail. Every kernel launched that way begins with
// pdl_begin(): it waits until the previous kernel has completed and its writes are visible,
// before reading or writing anything, and then allows the next kernel to be scheduled. So
// the order of memory effects is exactly that of plain launches; only scheduling moves.
// WO_CUDA_PDL=0 launches plainly (for measuring the difference).
__device__ __forceinline__ void pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

inline bool pdl_enabled() {
    static const bool on = [] {
        const char* e = std::getenv("WO_CUDA_PDL");
        return !(e && std::string(e) == "0");
    }();
    return on;
}

bool launch_skipped(const char* what);  // check.h: WO_CUDA_SKIP, a diagnostic

// kernel<<<grid, block, smem, s>>>(args...), as a programmatic dependent launch; throws
// CUDA_ERROR naming `what` if the launch fails. The kernel must begin with pdl_begin().
template <typename... K, typename... A>
void launch(const char* what, void (*kernel)(K...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
            A&&... args) {
    if (launch_skipped(what)) return;
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = s;
    cfg.attrs = &attr, cfg.numAttrs = 1;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
    if (e != cudaSuccess) throw Error(Code::CUDA_ERROR, std::string(what) + ": " + cudaGetErrorString(e));
}

// launch() of a kernel with `smem` bytes of dynamic shared memory, which may exceed the 48 KB
// default: the kernel's limit is raised once per process (a kernel's smem is fixed per
// instantiation, so the first call's size is every call's).
template <auto Kernel, typename... A>
void launch_smem(const char* what, dim3 grid, dim3 block, size_t smem, cudaStream_t s, A&&... args) {
    static const cudaError_t set =
        cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (set != cudaSuccess) throw Error(Code::CUDA_ERROR, std::string(what) + ": " + cudaGetErrorString(set));
    launch(what, Kernel, grid, block, smem, s, std::forward<A>(args)...);
}

// 16 (or 4, 8) bytes global -> shared, or zeros when !valid (src is then not read).
template <int N>
__device__ __forceinline__ void cp_async(void* dst, const void* src, bool valid) {
    const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    if constexpr (N == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                     "r"(valid ? 16 : 0));
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(d), "l"(src), "n"(N),
                     "r"(valid ? N : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Whether rows at p, p + stride, ... allow 16-byte vector loads.
inline bool aligned16(const void* p, size_t stride) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && stride % 16 == 0;
}

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
