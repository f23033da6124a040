// A probe, not part of the server: what does a kernel boundary cost a batch-1 decode step that
// only streams weights? A layer of gpt-oss-20b reads q/k/v 15.7 MB, o 12.5 MB, the MoE gate/up
// 35.4 MB and down 17.7 MB (bench/NOTES.md); 24 layers read ~1.95 GB. The probe streams exactly
// those bytes (cold: far beyond the L2) four ways, with no arithmetic beyond a checksum:
//   chain:    one kernel per product, 96 in a CUDA graph, each a programmatic dependent launch
//             that waits for the one before (griddepcontrol), as the decode step runs today;
//   barrier:  one persistent kernel, a grid-wide barrier between the 96 products, each product's
//             copies issued only after the barrier (a persistent layer that does not look ahead);
//   ahead:    the same, but each CTA keeps issuing copies across the barrier: the next
//             product's first stages are in flight while it waits (weights never depend on it);
//   stream:   one kernel streaming all bytes, no barrier (the ceiling).
// Every CTA streams its share of each product through a cp.async ring of S stages of 16 bytes
// per thread x U. Built and run by scripts/gpu-check (PROBE=1):
//   nvcc -O3 -arch=sm_90 -std=c++17 bench/chain_probe.cu -o chain_probe && ./chain_probe
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "probe.cuh"

constexpr int kThreads = 256, kU = 2;                   // a CTA's chunk: 256 x 2 x 16 = 8 KB
constexpr size_t kChunk = size_t(kThreads) * kU * 16;  // bytes
constexpr int kLayers = 24, kPhases = 4 * kLayers;
constexpr size_t kPhaseBytes[4] = {15'728'640, 12'582'912, 35'389'440, 17'694'720};

struct Plan {
    const uint8_t* base;              // the pool
    size_t off[kPhases], chunks[kPhases];  // each product's bytes (offset, whole chunks)
    int first, last;                  // the products this launch streams
    unsigned* bar;                    // [0] arrivals, [32] generation
    float* sink;
};

__device__ __forceinline__ void cp16(uint32_t dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void wait_groups() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// Every CTA resident (grid = occupancy x SMs): arrive, the last one releases the generation.
__device__ void grid_barrier(unsigned* bar) {
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned gen = ld_acquire(bar + 32);
        if (atomicAdd(bar, 1) == gridDim.x - 1) {
            bar[0] = 0;
            asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(bar + 32), "r"(gen + 1) : "memory");
        } else {
            while (ld_acquire(bar + 32) == gen) __nanosleep(32);
        }
    }
    __syncthreads();
}

// This CTA's chunks of product p: [c0, c1).
__device__ __forceinline__ void share(const Plan& a, int p, size_t& c0, size_t& c1) {
    c0 = a.chunks[p] * blockIdx.x / gridDim.x, c1 = a.chunks[p] * (blockIdx.x + 1) / gridDim.x;
}

// Streams products [first, last] with a barrier between them (BARRIER) or none; AHEAD: copies
// keep being issued across a barrier. Each thread copies and reads back only its own bytes.
template <int S, bool BARRIER, bool AHEAD, bool PDL>
__global__ void __launch_bounds__(kThreads) stream_k(Plan a) {
    if constexpr (PDL) {
        asm volatile("griddepcontrol.wait;" ::: "memory");
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    }
    extern __shared__ __align__(16) uint8_t ring[];
    const uint32_t ring0 = uint32_t(__cvta_generic_to_shared(ring)) + threadIdx.x * 16;
    // The issue cursor (ip, ic) runs up to S - 1 chunks ahead of the use cursor (up, uc).
    int ip = a.first, up = a.first;
    size_t ic, ie, uc, ue;
    share(a, ip, ic, ie);
    uc = ic, ue = ie;
    auto advance = [&](int& p, size_t& c, size_t& e) {
        if (++c < e) return;
        while (++p <= a.last) {
            share(a, p, c, e);
            if (c < e) return;
        }
    };
    auto issue = [&](int slot) {
        const uint8_t* src = a.base + a.off[ip] + ic * kChunk + threadIdx.x * 16;
#pragma unroll
        for (int u = 0; u < kU; ++u) cp16(ring0 + (slot * kU + u) * kThreads * 16, src + u * kThreads * 16);
    };
    int issued = 0, used = 0;
    float acc = 0.0f;
    for (; issued < S - 1 && ip <= a.last; ++issued) {
        issue(issued % S);
        commit();
        advance(ip, ic, ie);
    }
    while (up <= a.last) {
        // Copies for chunks beyond the current product wait for the barrier unless AHEAD.
        if (ip <= a.last && (AHEAD || !BARRIER || ip == up)) {
            issue(issued % S);
            advance(ip, ic, ie);
            ++issued;
        }
        commit();
        wait_groups<S - 1>();
        const uint4* v = reinterpret_cast<const uint4*>(ring + (used % S) * kU * kThreads * 16) + threadIdx.x;
#pragma unroll
        for (int u = 0; u < kU; ++u) acc += __uint_as_float(v[u * kThreads].x & 0x3F800000u);
        ++used;
        const int p = up;
        advance(up, uc, ue);
        if (BARRIER && up != p && up <= a.last) {
            grid_barrier(a.bar);
            // Without AHEAD nothing of the next product was issued: start its ring now, a group
            // per chunk, so chunk `used` is still the one S - 1 groups back.
            for (int k = 0; !AHEAD && k < S - 1 && ip <= a.last && ip == up; ++k) {
                issue(issued % S);
                commit();
                advance(ip, ic, ie);
                ++issued;
            }
        }
    }
    wait_groups<0>();
    if (acc == 12345.0f) a.sink[blockIdx.x] = acc;  // never: keeps the reads
}

int main() {
    int dev = 0, sms = 0;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    size_t layer = 0;
    for (size_t b : kPhaseBytes) layer += b;
    const size_t total = layer * kLayers;
    uint8_t* pool;
    CK(cudaMalloc(&pool, total));
    CK(cudaMemset(pool, 1, total));
    unsigned* bar;
    float* sink;
    CK(cudaMalloc(&bar, 256));
    CK(cudaMemset(bar, 0, 256));
    CK(cudaMalloc(&sink, 1 << 16));
    Plan plan{};
    plan.base = pool, plan.bar = bar, plan.sink = sink;
    size_t at = 0;
    for (int p = 0; p < kPhases; ++p) {
        plan.off[p] = at, plan.chunks[p] = kPhaseBytes[p % 4] / kChunk;
        at += kPhaseBytes[p % 4];
    }
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::printf("chain_probe: %d SMs, %d products of a layer x %d layers, %.1f MB a layer, %.2f GB in all\n", sms,
                4, kLayers, layer / 1e6, total / 1e9);
    std::printf("| form | stages x 8 KB | CTAs/SM | us per layer | TB/s |\n|---|---|---|---|---|\n");
    auto report = [&](const char* form, int st, int occ, float ms_all, int reps) {
        const double us = 1e3 * ms_all / reps / kLayers;
        std::printf("| %s | %d | %d | %.2f | %.2f |\n", form, st, occ, us, layer / us / 1e6);
    };
    auto run = [&](auto kernel, int st, const char* form, bool chain) {
        const size_t smem = size_t(st) * kChunk;
        CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        int occ = 0;
        CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, kThreads, smem));
        const unsigned grid = unsigned(occ * sms);
        cudaGraph_t g;
        cudaGraphExec_t ge;
        CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
        const int per = chain ? 1 : kPhases;
        for (int p = 0; p < kPhases; p += per) {
            Plan a = plan;
            a.first = p, a.last = p + per - 1;
            cudaLaunchAttribute attr{};
            attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
            attr.val.programmaticStreamSerializationAllowed = 1;
            cudaLaunchConfig_t cfg{};
            cfg.gridDim = grid, cfg.blockDim = kThreads, cfg.dynamicSmemBytes = smem, cfg.stream = s;
            cfg.attrs = &attr, cfg.numAttrs = 1;
            CK(cudaLaunchKernelEx(&cfg, kernel, a));
        }
        CK(cudaStreamEndCapture(s, &g));
        CK(cudaGraphInstantiate(&ge, g, 0));
        for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(ge, s));
        const int reps = 10;
        CK(cudaEventRecord(e0, s));
        for (int i = 0; i < reps; ++i) CK(cudaGraphLaunch(ge, s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        report(form, st, occ, ms, reps);
        CK(cudaGraphExecDestroy(ge));
        CK(cudaGraphDestroy(g));
    };
    run(stream_k<4, false, false, true>, 4, "chain (96 kernels, PDL)", true);
    run(stream_k<8, false, false, true>, 8, "chain (96 kernels, PDL)", true);
    run(stream_k<4, true, false, false>, 4, "barrier", false);
    run(stream_k<8, true, false, false>, 8, "barrier", false);
    run(stream_k<4, true, true, false>, 4, "ahead", false);
    run(stream_k<8, true, true, false>, 8, "ahead", false);
    run(stream_k<12, true, true, false>, 12, "ahead", false);
    run(stream_k<4, false, false, false>, 4, "stream", false);
    run(stream_k<8, false, false, false>, 8, "stream", false);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    return 0;
}
