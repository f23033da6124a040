// The tensor-core core of the prompt path (matmul_mma, the MoE's prompt passes): a CTA of 4 warps
// computes a tile of 64 weight rows x 64 tokens with mma.sync m16n8k16 (bf16 in, fp32
// accumulators), walking n_in in steps of 32 (4 units of dequant.cuh).
//
// Precision. bf16 keeps 8 significant bits, so each operand is split into bf16 terms:
// v = t0 + t1 + t2 with t0 = bf16(v), t1 = bf16(v - t0), t2 = bf16(v - t0 - t1) (each difference
// is exact in fp32), which carries all 24 bits of an fp32 activation. Weights take as many terms
// as their values need: 1 when exact in bf16 (MXFP4 with its power-of-two scale folded in,
// BF16), 2 for F16 (11 bits), 3 otherwise. The product w·x is the sum of the term products
// wi·xj with i + j <= 2; those dropped are below 2^-23 of |w·x| together, so a prompt dot is as
// accurate as the decode path's fp32 FMAs (only the summation order differs).
// Non-finite weights or activations give NaN where the fp32 path may give ±inf.
//
// The tensor core's fp32 accumulation is not round-to-nearest (it truncates while aligning), an
// error with a sign bias that grows with the number of MMAs chained into one accumulator (on the
// 20b preset it took the logits 1.4e-4 from the CPU's with 2 chained MMAs per 16 elements and
// 2.3e-4 with 3). So each 16-element step's term products go into a fresh accumulator, which is
// added to the running sum with one fp32 round-to-nearest addition.
//
// Reduction order: every output element is the sum, in increasing k, of 16-element MMA partial
// sums (the term products in a fixed order), each added with __fadd_rn. An MMA's
// output element depends only on its row of A, its column of B and its accumulator, so the order
// is fixed by n_in alone: a token's result does not depend on which tile or column it lands in
// or on its neighbours (batch invariance, as matvec.cuh's order for the decode path).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/matvec.cuh"

namespace wo::cuda {

constexpr int kMmaRows = 64;    // weight rows per CTA tile (M)
constexpr int kMmaToks = 64;    // tokens per CTA tile (N)
constexpr int kMmaK = 32;       // n_in per main-loop step: 4 units
constexpr int kMmaPad = 40;     // smem row stride in bf16: 80 bytes, so fragment loads are conflict-free
constexpr int kMmaThreads = 128;

constexpr int kXTerms = 3;  // bf16 terms of an activation

// bf16 terms that represent a weight of type T exactly (up to 2^-24 for F32 and the scaled types).
template <GgmlType T>
constexpr int kWTerms = (T == GgmlType::MXFP4 || T == GgmlType::BF16) ? 1 : T == GgmlType::F16 ? 2 : 3;

template <int NW>
struct MmaSmem {
    __nv_bfloat16 w[NW][kMmaRows][kMmaPad];      // [term][row][k]
    __nv_bfloat16 x[kXTerms][kMmaToks][kMmaPad];  // [term][token][k]
};

// acc[mt][nt][c]: the warp's 2 x 4 MMA tiles of 16 rows x 8 tokens. Warp w covers tile rows
// 32*(w/2) + 16*mt + {g, g+8} and tile tokens 32*(w%2) + 8*nt + 2*q + {0, 1}, where g = lane/4
// and q = lane%4: c = 0, 1 are row g, tokens +0, +1; c = 2, 3 are row g+8.
using MmaAcc = float[2][4][4];

__device__ __forceinline__ uint32_t bf16x2_bits(__nv_bfloat16 a, __nv_bfloat16 b) {
    return uint32_t(__bfloat16_as_ushort(a)) | (uint32_t(__bfloat16_as_ushort(b)) << 16);
}

// 8 floats -> their first N bf16 terms, each as one 16-byte row stored at dst[term] (rows
// `stride` bf16 apart).
template <int N>
__device__ __forceinline__ void split8_store(const float v[8], __nv_bfloat16* dst, int stride) {
    float r[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) r[i] = v[i];
#pragma unroll
    for (int term = 0; term < N; ++term) {
        uint32_t h[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const __nv_bfloat16 a = __float2bfloat16_rn(r[2 * i]), b = __float2bfloat16_rn(r[2 * i + 1]);
            h[i] = bf16x2_bits(a, b);
            if (term + 1 < N) {
                r[2 * i] = __fsub_rn(r[2 * i], __bfloat162float(a));
                r[2 * i + 1] = __fsub_rn(r[2 * i + 1], __bfloat162float(b));
            }
        }
        *reinterpret_cast<uint4*>(dst + term * stride) = make_uint4(h[0], h[1], h[2], h[3]);
    }
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The main loop. Thread i loads unit i%4 of each step for tile rows i/4 and i/4 + 32 (weight row
// pointers `w[0]`, `w[1]`, already clamped to a real row) and units 2*(i%2), 2*(i%2)+1 for tile
// token i/2 (`x`, or null for a column past the last token: zeros). Every thread of the CTA must
// call it. The next step's values are loaded into registers while this step's MMAs run.
template <GgmlType T, bool P>
__device__ __forceinline__ void mma_mainloop(MmaSmem<kWTerms<T>>& sh, const uint8_t* const (&w)[2], const float* x,
                                             int64_t n_in, bool xvec, MmaAcc& acc) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 1, wn = warp & 1, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[mt][nt][c] = 0.0f;
    const int64_t steps = (n_in + kMmaK - 1) / kMmaK;
    const int wu = tid & 3, xr = tid >> 1, xh = tid & 1;
    float wv[2][8], xv[2][8];
    auto load = [&](int64_t s) {
        const int64_t u = 4 * s;
#pragma unroll
        for (int j = 0; j < 2; ++j) Dq<T, P>::type::unit(w[j], u + wu, n_in, wv[j]);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            if (x) {
                load_x8(x, u + 2 * xh + j, n_in, xvec, xv[j]);
            } else {
#pragma unroll
                for (int i = 0; i < 8; ++i) xv[j][i] = 0.0f;
            }
        }
    };
    load(0);
    for (int64_t s = 0; s < steps; ++s) {
        constexpr int NW = kWTerms<T>, plane = kMmaRows * kMmaPad;
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            split8_store<NW>(wv[j], &sh.w[0][tid / 4 + 32 * j][8 * wu], plane);
            split8_store<kXTerms>(xv[j], &sh.x[0][xr][16 * xh + 8 * j], kMmaToks * kMmaPad);
        }
        __syncthreads();
        if (s + 1 < steps) load(s + 1);
#pragma unroll
        for (int k0 = 0; k0 < kMmaK; k0 += 16) {
            uint32_t a[NW][2][4], b[kXTerms][4][2];  // [term][tile][regs]
#pragma unroll
            for (int h = 0; h < NW; ++h)
#pragma unroll
                for (int mt = 0; mt < 2; ++mt) {
                    const int r = 32 * wm + 16 * mt + g;
                    a[h][mt][0] = *reinterpret_cast<const uint32_t*>(&sh.w[h][r][k0 + 2 * q]);
                    a[h][mt][1] = *reinterpret_cast<const uint32_t*>(&sh.w[h][r + 8][k0 + 2 * q]);
                    a[h][mt][2] = *reinterpret_cast<const uint32_t*>(&sh.w[h][r][k0 + 8 + 2 * q]);
                    a[h][mt][3] = *reinterpret_cast<const uint32_t*>(&sh.w[h][r + 8][k0 + 8 + 2 * q]);
                }
#pragma unroll
            for (int h = 0; h < kXTerms; ++h)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) {
                    const int t = 32 * wn + 8 * nt + g;
                    b[h][nt][0] = *reinterpret_cast<const uint32_t*>(&sh.x[h][t][k0 + 2 * q]);
                    b[h][nt][1] = *reinterpret_cast<const uint32_t*>(&sh.x[h][t][k0 + 8 + 2 * q]);
                }
            // Term products wi·xj with i + j <= 2, by increasing i + j then i, into a fresh
            // accumulator that is then added to acc with one fp32 rounding (see the top).
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) {
                    float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                    for (int sum = 0; sum <= 2; ++sum)
#pragma unroll
                        for (int i = 0; i <= sum; ++i)
                            if (i < NW) mma_bf16(part, a[i][mt], b[sum - i][nt]);
#pragma unroll
                    for (int c = 0; c < 4; ++c) acc[mt][nt][c] = __fadd_rn(acc[mt][nt][c], part[c]);
                }
        }
        __syncthreads();
    }
}

// Tile row and tile token of accumulator element (mt, nt, c) for this thread (see MmaAcc).
__device__ __forceinline__ int mma_row(int mt, int c) {
    const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2;
    return 32 * (warp >> 1) + 16 * mt + g + (c >= 2 ? 8 : 0);
}
__device__ __forceinline__ int mma_tok(int nt, int c) {
    const int warp = threadIdx.x >> 5, q = threadIdx.x & 3;
    return 32 * (warp & 1) + 8 * nt + 2 * q + (c & 1);
}

}  // namespace wo::cuda
