// A probe, not part of the server: how fast can the MoE's batch-1 decode pass read its weights
// with today's access pattern, and with the same bytes laid out tile by tile? Same bytes, same
// CTAs and warps, no arithmetic beyond a checksum. Built and run by scripts/gpu-check (PROBE=1):
//   nvcc -O3 -arch=sm_90 -std=c++17 bench/tmv_layout.cu -o tmv_layout && ./tmv_layout
//
// The pass it imitates (moe_tmv.cu, fold gate/up at batch 1): 4 experts x 5,760 rows of 2,880
// MXFP4 elements (1,536 bytes a row: 1,440 of codes, 90 of scales, padding), 16-row tiles, one
// CTA of 4 warps per tile, warp r streaming K range r (24, 24, 24, 18 blocks of 16 bytes) in
// chunks of 4 blocks (64 bytes a row) through a 3-stage cp.async ring in shared memory.
//   rows:  today's DEVICE layout (row-major): a chunk is 16 pieces of 64 bytes, 1,536 bytes apart.
//   tiles: a tile's codes stored [range][chunk][row][64 bytes]: a chunk is 1,024 contiguous bytes.
//   regsS: the tiles layout read straight into registers (ld.global.nc, S chunks ahead), no ring.
//   stream: a plain 16-byte-per-thread read of the same bytes (the ceiling).
// Each launch reads another 4 experts of a 1.5 GB pool (far beyond the 60 MB L2), as decode does.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "probe.cuh"

constexpr int kRowBytes = 1536, kRows = 5760, kExperts = 32, kUsed = 4, kStages = 3;
constexpr int kTiles = kUsed * kRows / 16;                  // 1,440 CTAs a launch
constexpr size_t kExpertBytes = size_t(kRows) * kRowBytes;  // 8.8 MB
__device__ __forceinline__ constexpr int range_blocks(int r) {
    return r < 3 ? 24 : 18;
}  // of 16 bytes; 90 blocks a row
constexpr int kChunks = 6;  // the longest range, 4 blocks a chunk

struct Args {
    const uint8_t* pool;  // layers x experts x rows
    const int* experts;   // kUsed expert ids of this launch (absolute, into the pool)
    unsigned* sink;
};

__device__ __forceinline__ void cp16(void* dst, const void* src) {
    const unsigned d = unsigned(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src));
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void wait_groups() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

// Where piece p (0..63: row p / 4, 16-byte piece p % 4) of chunk q of range r of tile `tile` sits.
template <bool TILES>
__device__ __forceinline__ const uint8_t* piece(const Args& a, int tile, int r, int q, int p) {
    const int e = a.experts[tile / (kRows / 16)], t = tile % (kRows / 16);
    const uint8_t* base = a.pool + size_t(e) * kExpertBytes + size_t(t) * 16 * kRowBytes;
    if (TILES) {
        // [range][chunk][row][64 bytes] over the tile's 24 KB of codes (ranges start at 384 r).
        int off = 0;
        for (int i = 0; i < r; ++i) off += range_blocks(i) * 16 * 16;
        return base + off + q * 1024 + p * 16;
    }
    const int row = p >> 2;
    return base + size_t(row) * kRowBytes + r * 384 + q * 64 + (p & 3) * 16;
}

template <bool TILES>
__global__ void __launch_bounds__(128) ring_k(Args a) {
    __shared__ __align__(16) uint8_t ring[4][kStages][1024];
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, tile = blockIdx.x;
    const int nch = (range_blocks(w) + 3) / 4;
    auto issue = [&](int q) {
        if (q < nch)
            for (int k = 0; k < 2; ++k) {
                const int p = lane + 32 * k;
                if (TILES ? p < 16 * (range_blocks(w) - 4 * q) : q * 4 + (p & 3) < range_blocks(w))
                    cp16(&ring[w][q % kStages][p * 16], piece<TILES>(a, tile, w, q, p));
            }
        commit();
    };
    for (int q = 0; q < kStages - 1; ++q) issue(q);
    unsigned acc = 0;
    for (int q = 0; q < nch; ++q) {
        issue(q + kStages - 1);
        wait_groups<kStages - 1>();
        __syncwarp();
        acc ^= reinterpret_cast<const unsigned*>(ring[w][q % kStages])[lane];
        __syncwarp();
    }
    if (acc == 0x12345678u) a.sink[tile] = acc;  // keeps the loads
}

template <int S>
__global__ void __launch_bounds__(128) regs_k(Args a) {
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, tile = blockIdx.x;
    const int nch = (range_blocks(w) + 3) / 4;
    uint4 buf[S][2];
    auto load = [&](int q, uint4(&b)[2]) {
        for (int k = 0; k < 2; ++k)
            if (q < nch && lane + 32 * k < 16 * (range_blocks(w) - 4 * q)) {
                const uint4* p = reinterpret_cast<const uint4*>(piece<true>(a, tile, w, q, lane + 32 * k));
                asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                             : "=r"(b[k].x), "=r"(b[k].y), "=r"(b[k].z), "=r"(b[k].w)
                             : "l"(p));
            }
    };
    unsigned acc = 0;
#pragma unroll
    for (int q = 0; q < S; ++q) load(q, buf[q]);
#pragma unroll
    for (int q = 0; q < kChunks; ++q) {
        if (q < nch) acc ^= buf[q % S][0].x ^ buf[q % S][1].w;
        if (q + S < kChunks) load(q + S, buf[q % S]);
    }
    if (acc == 0x12345678u) a.sink[tile] = acc;
}

__global__ void stream_k(Args a, size_t per_expert_vec) {  // 16 bytes a thread, grid-stride
    unsigned acc = 0;
    const size_t n = per_expert_vec * kUsed;
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
         i += size_t(gridDim.x) * blockDim.x) {
        const int e = a.experts[i / per_expert_vec];
        const uint4 v = reinterpret_cast<const uint4*>(a.pool + size_t(e) * kExpertBytes)[i % per_expert_vec];
        acc ^= v.x ^ v.w;
    }
    if (acc == 0x12345678u) a.sink[blockIdx.x] = acc;
}

int main() {
    const int layers = 6;  // 6 x 32 experts x 8.8 MB = 1.7 GB
    const size_t pool_bytes = size_t(layers) * kExperts * kExpertBytes;
    uint8_t* pool;
    CK(cudaMalloc(&pool, pool_bytes));
    CK(cudaMemset(pool, 1, pool_bytes));
    const int launches = 240;
    std::vector<int> ids(size_t(launches) * kUsed);
    srand(7);
    for (int i = 0; i < launches; ++i)
        for (int k = 0; k < kUsed; ++k)
            ids[size_t(i) * kUsed + k] = (i % layers) * kExperts + (k * 8 + rand() % 8);
    int* d_ids;
    unsigned* sink;
    CK(cudaMalloc(&d_ids, ids.size() * sizeof(int)));
    CK(cudaMemcpy(d_ids, ids.data(), ids.size() * sizeof(int), cudaMemcpyHostToDevice));
    CK(cudaMalloc(&sink, 1 << 20));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    // Bytes a launch moves: the codes of 1,440 tiles (the ranges' 90 blocks x 16 rows x 16 bytes).
    const double bytes = double(kTiles) * 16 * 90 * 16;
    auto time = [&](const char* name, auto run) {
        for (int i = 0; i < 24; ++i) run(i);  // warm
        CK(cudaEventRecord(e0));
        for (int i = 0; i < launches; ++i) run(i);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        const double us = 1e3 * ms / launches;
        std::printf("| %-6s | %7.2f | %6.2f |\n", name, us, bytes / us / 1e6);
    };
    std::printf("tmv_layout probe: %d launches of %d tiles, %.1f MB of codes each\n", launches, kTiles,
                bytes / 1e6);
    std::printf("| layout | us/launch | TB/s |\n|---|---|---|\n");
    // Each kernel at the MoE pass's occupancy (6 CTAs an SM: 36 KB of unused dynamic shared memory
    // on top) and unlimited.
    for (const int cap : {6, 0}) {
        const size_t pad = cap ? 36 * 1024 : 0;
        std::printf("| CTAs/SM cap %d | | |\n", cap);
        time("rows", [&](int i) {
            ring_k<false><<<kTiles, 128, pad>>>(Args{pool, d_ids + i * kUsed, sink});
        });
        time("tiles", [&](int i) {
            ring_k<true><<<kTiles, 128, pad>>>(Args{pool, d_ids + i * kUsed, sink});
        });
        time("regs3", [&](int i) { regs_k<3><<<kTiles, 128, pad>>>(Args{pool, d_ids + i * kUsed, sink}); });
        time("regs6", [&](int i) { regs_k<6><<<kTiles, 128, pad>>>(Args{pool, d_ids + i * kUsed, sink}); });
        time("rows", [&](int i) {
            ring_k<false><<<kTiles, 128, pad>>>(Args{pool, d_ids + i * kUsed, sink});
        });
    }
    time("stream", [&](int i) {
        stream_k<<<132 * 8, 256>>>(Args{pool, d_ids + i * kUsed, sink}, size_t(kRows / 16) * 16 * 90);
    });
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    return 0;
}
