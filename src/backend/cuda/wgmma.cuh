// Hopper's warpgroup MMAs (wgmma.mma_async, sm_90a): the fences and groups every user needs, and
// the narrow m64nNk16 products of the decode passes (tmv.cuh's TmvWgCols). Passes of other
// architectures compile them empty: the host only launches their kernels where tmm_wg() holds.
// On the H200, wgmma gives the bits of mma.sync m16n8k16 for the same operands and the same
// chain (bench/mma_bits.cu: chains of 1, 2 and 4 MMAs, 50 M outputs, none differ, while half of
// them are not the rounded exact sum), which lets a decode product move onto it unchanged.
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

// d = A · B (acc = 0) or d += A · B (acc = 1): m64nNk16 with N = 8 NG, f16 in, fp32 out, A from
// registers (per warp, mma.sync m16n8k16's A fragment). d[4i + c] is mma.sync's d[c] for
// columns 8i..8i+7.
template <int NG>
__device__ __forceinline__ void wgmma_narrow(float (&d)[4 * NG], uint32_t a0, uint32_t a1, uint32_t a2,
                                             uint32_t a3, uint64_t desc, int acc) {
    static_assert(NG == 1 || NG == 2 || NG == 4, "m64n8k16, m64n16k16 or m64n32k16");
#ifdef WO_TMM_WG_ARCH
    if constexpr (NG == 1)
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%0, %1, %2, %3}, {%4, %5, %6, %7}, %8, p, 1, "
            "1, "
            "0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc), "r"(acc));
    else if constexpr (NG == 2)
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7}, "
            "{%8, %9, %10, %11}, %12, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc), "r"(acc));
    else
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, "
            "%10, %11, %12, %13, %14, %15}, {%16, %17, %18, %19}, %20, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),
              "+f"(d[15])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc), "r"(acc));
#endif
}

}  // namespace wo::cuda
