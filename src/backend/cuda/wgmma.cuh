// Hopper's warpgroup MMAs (wgmma.mma_async, sm_90a): the fences, groups and operand descriptor
// every user needs. Passes of other architectures compile them empty: the host only launches
// their kernels where tmm_wg() holds. On the H200, wgmma gives the bits of mma.sync m16n8k16 for
// the same operands and the same chain (bench/mma_bits.cu: chains of 1, 2 and 4 MMAs, 50 M
// outputs, none differ, while half of them are not the rounded exact sum), so a decode product
// could move onto it unchanged (the forms tried were slower: bench/NOTES.md, fifteenth session).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace wo::cuda {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WO_TMM_WG_ARCH 1  // this device pass has wgmma; other passes compile the kernels empty
#endif

__device__ __forceinline__ void wgmma_fence() {
#ifdef WO_TMM_WG_ARCH
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#ifdef WO_TMM_WG_ARCH
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_wait0() {
#ifdef WO_TMM_WG_ARCH
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}

// Shared memory written by cp.async or plain stores, next read by the tensor cores (the async proxy).
__device__ __forceinline__ void fence_proxy_async() {
#ifdef WO_TMM_WG_ARCH
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// The descriptor of a K-major, unswizzled B operand at shared address `a`: 8-column core
// matrices `sbo` bytes apart, the two 8-element halves of a k16 slice `lbo` bytes apart.
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t a, uint32_t lbo, uint32_t sbo) {
    return uint64_t((a & 0x3FFFFu) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(sbo >> 4) << 32);
}

}  // namespace wo::cuda
