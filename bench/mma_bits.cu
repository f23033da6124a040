// Probe: do Hopper's warpgroup MMAs (wgmma m64n8k16, A from registers) give the same bits as
// mma.sync m16n8k16 for the same operands, fp32 accumulation, chains of 1, 2 and 4 MMAs (the
// first with a zero accumulator)? If they do, a decode product on wgmma can keep tmv.cuh's
// order (and so every decode token's bits) at large batches. Also counts how often the tensor
// core's result differs from the correctly rounded fp32 sum (the probe is only meaningful if the
// hardware does not round to nearest: then equal bits say the two paths share the datapath).
// Build: nvcc -O3 -arch=sm_90a -std=c++17 bench/mma_bits.cu -o mma_bits (scripts/gpu-check PROBE=1)
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

constexpr int kMaxChain = 4;
constexpr int kRows = 64, kCols = 8, kK = 16;

// Per CTA (one warpgroup): A[chain][64][16], B[chain][8][16] (column n's 16 k values), D[64][8].
struct Problem {
    const __half* a;
    const __half* b;
    float* d;
    int chain;
};

__device__ __forceinline__ uint32_t pack(const __half* p) {  // p[0] low, p[1] high
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// A fragment (m16n8k16, row-major A): a0 = (g, 2t..2t+1), a1 = (g + 8, ...), a2 = (g, 2t + 8..),
// a3 = (g + 8, 2t + 8..); rows relative to the warp's 16.
__device__ void a_frag(const __half* a, int r0, uint32_t (&f)[4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    f[0] = pack(a + (r0 + g) * kK + 2 * t);
    f[1] = pack(a + (r0 + g + 8) * kK + 2 * t);
    f[2] = pack(a + (r0 + g) * kK + 2 * t + 8);
    f[3] = pack(a + (r0 + g + 8) * kK + 2 * t + 8);
}

__global__ void mma_sync_kernel(Problem p) {
    const size_t cta = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    float d[4] = {0, 0, 0, 0};
    for (int c = 0; c < p.chain; ++c) {
        const __half* a = p.a + (cta * kMaxChain + c) * kRows * kK;
        const __half* b = p.b + (cta * kMaxChain + c) * kCols * kK;
        uint32_t f[4];
        a_frag(a, 16 * warp, f);
        const uint32_t b0 = pack(b + g * kK + 2 * t), b1 = pack(b + g * kK + 2 * t + 8);
        if (c == 0)
            asm volatile(
                "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                "{%10,%10,%10,%10};\n"
                : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                : "r"(f[0]), "r"(f[1]), "r"(f[2]), "r"(f[3]), "r"(b0), "r"(b1), "f"(0.0f));
        else
            asm volatile(
                "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                "{%0,%1,%2,%3};\n"
                : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                : "r"(f[0]), "r"(f[1]), "r"(f[2]), "r"(f[3]), "r"(b0), "r"(b1));
    }
    float* o = p.d + cta * kRows * kCols;
    const int r = 16 * warp + g;
    o[r * kCols + 2 * t] = d[0], o[r * kCols + 2 * t + 1] = d[1];
    o[(r + 8) * kCols + 2 * t] = d[2], o[(r + 8) * kCols + 2 * t + 1] = d[3];
}

__global__ void wgmma_kernel(Problem p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    // B of each chain step as K-major core matrices: k 0-7 at 0, k 8-15 at 128 (LBO 128); row n at 16n.
    __shared__ __align__(128) __half bs[kMaxChain][2][kCols][8];
    const size_t cta = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    for (int i = threadIdx.x; i < p.chain * kCols * kK; i += blockDim.x) {
        const int c = i / (kCols * kK), n = (i / kK) % kCols, k = i % kK;
        bs[c][k / 8][n][k % 8] = p.b[(cta * kMaxChain + c) * kCols * kK + n * kK + k];
    }
    __syncthreads();
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    float d[4] = {0, 0, 0, 0};
    uint32_t f[kMaxChain][4];
    for (int c = 0; c < p.chain; ++c) a_frag(p.a + (cta * kMaxChain + c) * kRows * kK, 16 * warp, f[c]);
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    for (int c = 0; c < p.chain; ++c) {
        const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(&bs[c][0][0][0]));
        const uint64_t desc =
            uint64_t((addr & 0x3FFFFu) >> 4) | (uint64_t(128 >> 4) << 16) | (uint64_t(256 >> 4) << 32);
        asm volatile(
            "{\n.reg .pred q;\nsetp.ne.b32 q, %9, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%0, %1, %2, %3}, {%4, %5, %6, %7}, %8, q, 1, "
            "1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(f[c][0]), "r"(f[c][1]), "r"(f[c][2]), "r"(f[c][3]), "l"(desc), "r"(c));
    }
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    float* o = p.d + cta * kRows * kCols;
    const int r = 16 * warp + g;
    o[r * kCols + 2 * t] = d[0], o[r * kCols + 2 * t + 1] = d[1];
    o[(r + 8) * kCols + 2 * t] = d[2], o[(r + 8) * kCols + 2 * t + 1] = d[3];
#endif
}

#define CK(x)                                                                                    \
    do {                                                                                         \
        cudaError_t e_ = (x);                                                                    \
        if (e_ != cudaSuccess) {                                                                 \
            std::printf("cuda error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
            return 1;                                                                            \
        }                                                                                        \
    } while (0)

int main() {
    const int n_cta = 8192;
    const size_t na = size_t(n_cta) * kMaxChain * kRows * kK, nb = size_t(n_cta) * kMaxChain * kCols * kK,
                 nd = size_t(n_cta) * kRows * kCols;
    std::vector<__half> ha(na), hb(nb);
    std::vector<float> d1(nd), d2(nd);
    __half *da, *db;
    float *dd1, *dd2;
    CK(cudaMalloc(&da, na * 2));
    CK(cudaMalloc(&db, nb * 2));
    CK(cudaMalloc(&dd1, nd * 4));
    CK(cudaMalloc(&dd2, nd * 4));
    std::mt19937_64 rng(12345);
    // Distributions: 0 = wide exponents (2^-14 .. 2^15, random signs); 1 = cancellation (values
    // near +-1 with a few large terms); 2 = tmv-like (A: E2M1 codes * 2^-14 or int8 codes; B: split
    // hi / lo of scaled activations, some subnormal); 3 = every f16 bit pattern but inf / NaN.
    auto gen = [&](int dist, bool is_a) -> __half {
        std::uniform_real_distribution<float> u(0.0f, 1.0f);
        const float sgn = (rng() & 1) ? -1.0f : 1.0f;
        switch (dist) {
            case 0:
                return __float2half(sgn * std::ldexp(1.0f + u(rng), int(rng() % 30) - 14));
            case 1:
                return __float2half(rng() % 16 == 0 ? sgn * 2048.0f * (1 + u(rng))
                                                    : sgn * (1.0f + u(rng) / 64));
            case 2:
                if (is_a) {
                    static const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
                    return rng() & 1 ? __float2half(sgn * e2m1[rng() % 8] * std::ldexp(1.0f, -14) * 16384.0f)
                                     : __float2half(float(int(rng() % 256) - 128));
                } else {
                    const float x = sgn * std::ldexp(1.0f + u(rng), 14 - int(rng() % 20));
                    const __half hi = __float2half(x);
                    return rng() & 1 ? hi : __float2half(x - __half2float(hi));
                }
            default: {
                uint16_t bits;
                do bits = uint16_t(rng());
                while ((bits & 0x7C00) == 0x7C00);
                __half h;
                memcpy(&h, &bits, 2);
                return h;
            }
        }
    };
    int bad_total = 0;
    for (int dist = 0; dist < 4; ++dist) {
        for (auto& v : ha) v = gen(dist, true);
        for (auto& v : hb) v = gen(dist, false);
        CK(cudaMemcpy(da, ha.data(), na * 2, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(db, hb.data(), nb * 2, cudaMemcpyHostToDevice));
        for (int chain : {1, 2, 4}) {
            Problem p{da, db, dd1, chain};
            mma_sync_kernel<<<n_cta, 128>>>(p);
            p.d = dd2;
            wgmma_kernel<<<n_cta, 128>>>(p);
            CK(cudaGetLastError());
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(d1.data(), dd1, nd * 4, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(d2.data(), dd2, nd * 4, cudaMemcpyDeviceToHost));
            size_t diff = 0, not_rn = 0, nonzero = 0;
            for (size_t i = 0; i < nd; ++i) {
                if (std::memcmp(&d1[i], &d2[i], 4) != 0 && !(std::isnan(d1[i]) && std::isnan(d2[i]))) ++diff;
                // The correctly rounded fp32 of the exact chained sum for a chain of 1.
                if (chain == 1) {
                    const size_t cta = i / (kRows * kCols), r = (i / kCols) % kRows, n = i % kCols;
                    long double s = 0;
                    for (int k = 0; k < kK; ++k)
                        s += (long double)__half2float(ha[(cta * kMaxChain) * kRows * kK + r * kK + k]) *
                             (long double)__half2float(hb[(cta * kMaxChain) * kCols * kK + n * kK + k]);
                    if (float(s) != d1[i]) ++not_rn;
                    if (s != 0) ++nonzero;
                }
            }
            std::printf("dist %d chain %d: %zu of %zu outputs differ (mma.sync vs wgmma)", dist, chain, diff,
                        nd);
            if (chain == 1) std::printf("; %zu of %zu nonzero not the rounded exact sum", not_rn, nonzero);
            std::printf("\n");
            bad_total += diff != 0;
        }
    }
    std::printf("mma_bits: %s\n", bad_total == 0 ? "SAME BITS in every case" : "DIFFERENT BITS");
    return 0;
}
