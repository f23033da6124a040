// Dequantizing matrix products and embedding lookups for every weight type (kernels.h).
//
// matmul grid: one CTA of 4 warps per 2 weight rows (blockIdx.x), the warps splitting each row's
// units and carrying every token of the call through them in passes of 8 (4, 2, 1 for the rest)
// with the weight tile re-read from L1/L2. The per-element reduction order is cta_dots'
// (matvec.cuh): fixed by n_in alone, so a token's output never depends on the token count or its
// neighbours. Calls on large matrices run matmul_warp_kernel instead: a warp per 2 rows
// computing the same order alone (matvec.cuh's warp_cta_dots_nt), tokens in passes of up to 4.
// matmul_mma (the prompt path): one CTA per tile of 64 weight rows x 64 tokens on tensor cores,
// the weights dequantized in the tile loader (mma.cuh has the precision and the order);
// matmul_tmm the same path for Q8_0 / MXFP4 in the DEVICE layout, from split activations (tmm.cuh).
// Q8_0 and MXFP4 weights are repacked at load into the DEVICE layout of dequant.cuh (aligned,
// coalesced unit loads; the same values in the same order); WO_CUDA_REPACK=0 keeps GGUF order.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>

#include "backend/cuda/kernels.h"
#include "backend/cuda/matvec.cuh"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/tmm.cuh"
#include "backend/cuda/tmm_wg.cuh"
#include "backend/cuda/tmv.cuh"

namespace wo::cuda {
namespace {

struct MatmulArgs {
    const uint8_t* w;
    size_t w_nb1;
    int64_t n_in, n_out;
    const uint8_t* x;
    size_t x_nb1;
    uint8_t* y;
    size_t y_nb1;
    int64_t n_tok;
    const float* bias;
    bool accumulate, xvec;
    bool prefetch;  // matmul_kernel: its rows into L2 before the PDL wait (matmul_prefetch)
};

// The weights of one tensor-core launch that read the same activations (matmul_tmv, matmul_tmm:
// one; the q / k / v groups: up to 3): weight i owns tiles [tile0[i], tile0[i + 1]) of blockIdx.x.
struct MatmulGroup {
    MatmulArgs a[3];
    int64_t tile0[4];
    int n;
};
// The member owning tile `tile` (made relative to its first tile).
__device__ __forceinline__ const MatmulArgs& group_member(const MatmulGroup& g, int64_t& tile) {
    int i = 0;
    while (i + 1 < g.n && tile >= g.tile0[i + 1]) ++i;
    tile -= g.tile0[i];
    return g.a[i];
}

template <GgmlType T, bool P, int NT>
__device__ __forceinline__ void matmul_pass(const MatmulArgs& a, int64_t r0, int64_t t0, float* sh) {
    const uint8_t* w[kWarpRows];
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r)
        w[r] = a.w + size_t(r0 + r < a.n_out ? r0 + r : a.n_out - 1) * a.w_nb1;
    const float* x[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) x[t] = reinterpret_cast<const float*>(a.x + size_t(t0 + t) * a.x_nb1);
    const float dot = cta_dots<T, P, kWarpRows, NT>(w, a.n_in, x, a.xvec, sh);
    const int lane = threadIdx.x & 31;
    if (threadIdx.x < 32 && lane < kWarpRows * NT) {
        const int64_t r = r0 + lane / NT, t = t0 + lane % NT;
        if (r < a.n_out) {
            // As the CPU: s = dot + bias (or + 0), then y = s or y + s.
            const float s = __fadd_rn(dot, a.bias ? a.bias[r] : 0.0f);
            float* yp = reinterpret_cast<float*>(a.y + size_t(t) * a.y_nb1) + r;
            *yp = a.accumulate ? __fadd_rn(*yp, s) : s;
        }
    }
}

// blockIdx.x = block of kWarpRows weight rows; the CTA's warps split each row's units (matvec.cuh).
// blockIdx.y = group of `per` tokens (small matrices: the router's 16 blocks of rows would leave
// most SMs idle; all tokens in one group otherwise). WIDE: passes of 8, 4, 2 and 1 tokens;
// otherwise one token per pass (the kernel of calls of up to narrow_max_tokens() tokens: about
// half the registers, so more CTAs per SM and loads in flight). Same order either way.
template <GgmlType T, bool P, bool WIDE>
__global__ void __launch_bounds__(kBlockThreads, WIDE ? 1 : 8) matmul_kernel(MatmulArgs a, int64_t per) {
    const int64_t r0 = int64_t(blockIdx.x) * kWarpRows;
    if (a.prefetch && blockIdx.y == 0) {  // weights are never written: their fill may start before the wait
        const uint8_t* w0 = a.w + size_t(r0) * a.w_nb1;
        const size_t bytes = size_t(min(int64_t(kWarpRows), a.n_out - r0)) * a.w_nb1;
        for (size_t o = size_t(threadIdx.x) * 128; o < bytes; o += size_t(blockDim.x) * 128)
            asm volatile("prefetch.global.L2 [%0];" ::"l"(w0 + o));
    }
    pdl_begin();
    __shared__ float sh[kSplit * kWarpRows * 8];
    int64_t t0 = int64_t(blockIdx.y) * per;
    const int64_t t1 = min(a.n_tok, t0 + per);
    if constexpr (WIDE) {
        for (; t0 + 8 <= t1; t0 += 8) matmul_pass<T, P, 8>(a, r0, t0, sh);
        if (t0 + 4 <= t1) matmul_pass<T, P, 4>(a, r0, t0, sh), t0 += 4;
        if (t0 + 2 <= t1) matmul_pass<T, P, 2>(a, r0, t0, sh), t0 += 2;
    }
    for (; t0 < t1; ++t0) matmul_pass<T, P, 1>(a, r0, t0, sh);
}

// Calls on matrices with many rows (warp_per_rows): warp w of CTA b owns the block of kWarpRows
// rows kCtaWarps * b + w and computes all of cta_dots' ranges itself (warp_cta_dots_nt): the
// bits of matmul_kernel without its barrier and shared-memory round trip, 4x the loads in flight
// per warp. Tokens in passes of up to MAXNT (4, 2, then 1; each unit's weights decoded once per
// pass and re-read from L1/L2 per pass); MAXNT = 1 for one-token calls keeps 64 registers.
template <GgmlType T, bool P, int NT>
__device__ __forceinline__ void matmul_warp_pass(const MatmulArgs& a, const uint8_t* const (&w)[kWarpRows],
                                                 int64_t r0, int64_t t0) {
    const float* x[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) x[t] = reinterpret_cast<const float*>(a.x + size_t(t0 + t) * a.x_nb1);
    float dot[kWarpRows][NT];
    warp_cta_dots_nt<T, P, kWarpRows, NT>(w, a.n_in, x, a.xvec, dot);
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t)
            if (lane == r * NT + t && r0 + r < a.n_out) {
                // As the CPU: s = dot + bias (or + 0), then y = s or y + s.
                const float s = __fadd_rn(dot[r][t], a.bias ? a.bias[r0 + r] : 0.0f);
                float* yp = reinterpret_cast<float*>(a.y + size_t(t0 + t) * a.y_nb1) + r0 + r;
                *yp = a.accumulate ? __fadd_rn(*yp, s) : s;
            }
}

template <GgmlType T, bool P, int MAXNT>
__global__ void __launch_bounds__(kBlockThreads, (kWarpKernelCtas<T, P, MAXNT>))
    matmul_warp_kernel(MatmulArgs a) {
    pdl_begin();
    const int64_t r0 = (int64_t(blockIdx.x) * kCtaWarps + threadIdx.x / 32) * kWarpRows;
    if (r0 >= a.n_out) return;  // the whole warp; no barrier follows
    const uint8_t* w[kWarpRows];
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r)
        w[r] = a.w + size_t(r0 + r < a.n_out ? r0 + r : a.n_out - 1) * a.w_nb1;
    int64_t t0 = 0;
    if constexpr (MAXNT >= 4)
        for (; t0 + 4 <= a.n_tok; t0 += 4) matmul_warp_pass<T, P, 4>(a, w, r0, t0);
    if constexpr (MAXNT >= 2)
        for (; t0 + 2 <= a.n_tok; t0 += 2) matmul_warp_pass<T, P, 2>(a, w, r0, t0);
    for (; t0 < a.n_tok; ++t0) matmul_warp_pass<T, P, 1>(a, w, r0, t0);
}

// blockIdx.x = tile of kMmaRows weight rows, blockIdx.y = tile of kMmaToks tokens (mma.cuh).
template <GgmlType T, bool P>
__global__ void __launch_bounds__(kMmaThreads) matmul_mma_kernel(MatmulArgs a) {
    pdl_begin();
    __shared__ MmaSmem<kWTerms<T>> sh;
    const int64_t m0 = int64_t(blockIdx.x) * kMmaRows, n0 = int64_t(blockIdx.y) * kMmaToks;
    const uint8_t* w[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
        const int64_t r = m0 + threadIdx.x / 4 + 32 * j;
        w[j] = a.w + size_t(r < a.n_out ? r : a.n_out - 1) * a.w_nb1;
    }
    const int64_t xt = n0 + threadIdx.x / 2;
    const float* x = xt < a.n_tok ? reinterpret_cast<const float*>(a.x + size_t(xt) * a.x_nb1) : nullptr;
    MmaAcc acc;
    mma_mainloop<T, P>(sh, w, x, a.n_in, a.xvec, acc);
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int64_t r = m0 + mma_row(mt, c), t = n0 + mma_tok(nt, c);
                if (r >= a.n_out || t >= a.n_tok) continue;
                // As the CPU: s = dot + bias (or + 0), then y = s or y + s.
                const float s = __fadd_rn(acc[mt][nt][c], a.bias ? a.bias[r] : 0.0f);
                float* yp = reinterpret_cast<float*>(a.y + size_t(t) * a.y_nb1) + r;
                *yp = a.accumulate ? __fadd_rn(*yp, s) : s;
            }
}

// The decode path on tensor cores (tmv.cuh): blockIdx.x = tile of kTmvRows rows of a group
// member (tile x of it: A rows g and g + 8 of thread (g, t) are rows 16x + g and 16x + g + 8),
// blockIdx.y = group of G tokens (passes of NTT = 4, 2 or 1 tiles of 4 by how
// many remain). Warp w walks range w; warp 0 writes y.
// RPW: ranges per warp (2: warp w walks ranges 2w and 2w + 1 as one stream, NS / 2 warps).
template <GgmlType T, int NTT, int NS, int RPW = 1>
__device__ __forceinline__ void tmv_matmul_pass(const MatmulArgs& a, int64_t tile, const uint4* xs,
                                                const float* xm, int64_t t0, float* sh, uint8_t* ring) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t row_a = tile * kTmvRows + g, row_b = row_a + kTmvRows / 2;
    const uint8_t* ra = a.w + size_t(min(row_a, a.n_out - 1)) * a.w_nb1;
    const uint8_t* rb = a.w + size_t(min(row_b, a.n_out - 1)) * a.w_nb1;
    TmvCol col[NTT];
#pragma unroll
    for (int j = 0; j < NTT; ++j) {
        const int64_t tx = t0 + kTmvToks * j + g / 2, tm = t0 + kTmvToks * j + t;
        col[j].xs = tx < a.n_tok ? xs + size_t(tx) * size_t(a.n_in / 4) + (g & 1) * 4 + t : nullptr;
        col[j].xm = tm < a.n_tok ? xm + size_t(tm) * size_t(a.n_in / 32) : nullptr;
    }
    int64_t b0, b1, b2 = 0;
    tmv_blocks<NS>(a.n_in, RPW * warp, b0, b1);
    if constexpr (RPW == 2) tmv_blocks<NS>(a.n_in, 2 * warp + 1, b1, b2);  // starts where 2w ends
    float acc[NTT][2], acc2[NTT][2];
    // The kernel's pdl_begin: after the first weight copies are issued (they overlap the previous
    // kernel's tail), before the activations are read.
    constexpr int C = NS == 16 ? 2 : (NTT == 1 ? 4 : 2);
    if constexpr (RPW == 2) {
        tmv_range<T, NTT, C, 2>(ra, rb, a.n_in, b0, b2, col, acc, ring, [] { pdl_begin(); }, &acc2,
                                int(b1 - b0));
        tmv_range_sum<NTT, NS, 2>(acc, sh, 0, &acc2);
    } else {
        tmv_range<T, NTT, C>(ra, rb, a.n_in, b0, b1, col, acc, ring, [] { pdl_begin(); });
        tmv_range_sum<NTT, NS>(acc, sh, 0);
    }
    if (warp != 0) return;
#pragma unroll
    for (int j = 0; j < NTT; ++j) {
        const int64_t tok = t0 + kTmvToks * j + t;
        if (tok >= a.n_tok) continue;
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int64_t r = i == 0 ? row_a : row_b;
            if (r >= a.n_out) continue;
            // As the CPU: s = dot + bias (or + 0), then y = s or y + s.
            const float s = __fadd_rn(acc[j][i], a.bias ? a.bias[r] : 0.0f);
            float* yp = reinterpret_cast<float*>(a.y + size_t(tok) * a.y_nb1) + r;
            *yp = a.accumulate ? __fadd_rn(*yp, s) : s;
        }
    }
}

// 16 ranges: 512 threads at 64 registers, 2 CTAs per SM (the q / o projections' 180-256 tiles
// in one wave), chunks of 2; 4 ranges (the LM head): 128 threads, chunks of 4 (of 2 for more
// than 4 tokens). G: tokens per CTA, 8, or 16 for the LM head's calls of more than 8 tokens (each
// block's codes converted once per 16 tokens instead of per 8: at 32 streams the LM head was
// issue-bound, bench/NOTES.md sixteenth session; the kernel for 16 holds 135 registers, so
// smaller calls keep the one for 8). Dynamic shared memory: a code ring per warp (tmv.cuh).
// RPW = 2 (16 ranges only): 8 warps, each walking two consecutive ranges as one stream of chunks
// (tmv_range's RPW), 3 CTAs per SM at up to 85 registers: the q / k / v group's 320 tiles in one
// wave instead of 1.2, each warp's ring carried from its first range into its second; the same
// ranges and order, so the same bits (set_tmv_rpw, kernels.h).
template <GgmlType T, int NS, int RPW = 1>
constexpr size_t kTmvMatmulSmem = size_t(NS / RPW) * tmv_ring_bytes(T, NS == 16 ? 2 : 4);

// CTAs per SM of the 16-range kernel (a build-time A/B: at 2, ptxas caps it at 64 registers and
// it spills 40-52 bytes; at 1 it holds 84 and none: -5%, bench/NOTES.md twentieth session), and of
// its RPW = 2 form.
#ifndef WO_TMV16_CTAS
#define WO_TMV16_CTAS 2
#endif
#ifndef WO_TMV16_RPW2_CTAS
#define WO_TMV16_RPW2_CTAS 3
#endif
template <GgmlType T, int NS, int G, int RPW = 1>
__global__ void __launch_bounds__(32 * NS / RPW, NS == 16 ? (RPW == 2 ? WO_TMV16_RPW2_CTAS : WO_TMV16_CTAS) : 1)
    tmv_matmul_kernel(MatmulGroup grp, const uint4* xs, const float* xm, bool by_tok) {
    static_assert(RPW == 1 || (RPW == 2 && NS == 16), "two ranges per warp: the 16-range kernel");
    // pdl_begin() runs inside tmv_range, once the first weight copies are issued: nothing before
    // it reads or writes memory another kernel writes (grp, xs, xm are pointers; weights are constant).
    __shared__ float sh[(NS - 1) * (G / kTmvToks) * 2 * 32];
    extern __shared__ __align__(16) uint8_t smem[];
    uint8_t* ring = smem + (threadIdx.x >> 5) * tmv_ring_bytes(T, NS == 16 ? 2 : 4);
    // Token groups fastest (blockIdx.x) where the tiles fit gridDim.y: a tile's CTAs then run
    // together and read its weights from DRAM once (the 615 MB LM head 4 times at 32 tokens
    // otherwise, tiles fastest); which CTA computes a token does not change its bits.
    int64_t tile = by_tok ? blockIdx.y : blockIdx.x;
    const MatmulArgs& a = group_member(grp, tile);
    const int64_t t0 = int64_t(by_tok ? blockIdx.x : blockIdx.y) * G;
    if constexpr (G > 2 * kTmvToks) {
        if (a.n_tok - t0 > 2 * kTmvToks) {
            tmv_matmul_pass<T, G / kTmvToks, NS, RPW>(a, tile, xs, xm, t0, sh, ring);
            return;
        }
    }
    if (a.n_tok - t0 > kTmvToks)
        tmv_matmul_pass<T, 2, NS, RPW>(a, tile, xs, xm, t0, sh, ring);
    else
        tmv_matmul_pass<T, 1, NS, RPW>(a, tile, xs, xm, t0, sh, ring);
}

// The prompt path from split activations (tmm.cuh, tmm_wg.cuh): blockIdx.x = tile of TM rows of a
// group member, blockIdx.y = tile of kTmmToks tokens. NS > 0: the same tiles in tmv.cuh's order of
// NS ranges (matmul_tmv's calls of many tokens).
template <GgmlType T, int TM, bool WG, int NS = 0>
__global__ void __launch_bounds__(TmmTile<TM, WG>::THREADS, TM == 128 ? 2 : 1)
    tmm_matmul_kernel(MatmulGroup grp, const uint4* xs, const float* xm) {
    using Tile = TmmTile<TM, WG>;
    pdl_begin();
    extern __shared__ __align__(16) uint8_t smem[];
    int64_t tile = blockIdx.x;
    const MatmulArgs& a = group_member(grp, tile);
    const int64_t r0 = tile * TM, t0 = int64_t(blockIdx.y) * kTmmToks;
    const int tid = int(threadIdx.x);
    const auto row = [&](int i) { return a.w + size_t(min(r0 + i, a.n_out - 1)) * a.w_nb1; };
    const int64_t tx = t0 + Tile::x_tok(tid), tm = t0 + tid % kTmmToks;
    // The epilogue's 2^-s per token (the warpgroup path) and biases per row in shared memory,
    // fetched before the K loop (whose first barrier publishes them), so the epilogue does no
    // dependent global loads between its stores.
    __shared__ float tok_m[kTmmToks], row_bias[TM];
    if (tid < kTmmToks) tok_m[tid] = WG && tm < a.n_tok ? xm[size_t(tm) * size_t(a.n_in / 32)] : 1.0f;
    if (tid < TM) row_bias[tid] = a.bias && r0 + tid < a.n_out ? a.bias[r0 + tid] : 0.0f;
    typename Tile::Acc acc;
    tmm_run<T, TM, WG, NS>(smem, row, tx < a.n_tok ? xs + size_t(tx) * size_t(a.n_in / 4) : nullptr,
                           tid < kTmmToks && tm < a.n_tok ? xm + size_t(tm) * size_t(a.n_in / 32) : nullptr,
                           a.n_in, acc, int(min(int64_t(kTmmToks), a.n_tok - t0)));
#pragma unroll
    for (int mt = 0; mt < Tile::MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < Tile::NT; ++nt)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int tt = Tile::tok(nt, c), tr = Tile::row(mt, c);
                const int64_t r = r0 + tr, tok = t0 + tt;
                if (r >= a.n_out || tok >= a.n_tok) continue;
                // As the CPU: s = dot + bias (or + 0), then y = s or y + s. The warpgroup path's
                // dot is in the token row's split units: times its 2^-s (exact).
                const float dot = WG ? __fmul_rn(acc[mt][nt][c], tok_m[tt]) : acc[mt][nt][c];
                const float s = __fadd_rn(dot, row_bias[tr]);
                float* yp = reinterpret_cast<float*>(a.y + size_t(tok) * a.y_nb1) + r;
                *yp = a.accumulate ? __fadd_rn(*yp, s) : s;
            }
}

// matmul_tmv's parts kernels (16-range weights, calls of many tokens): the wide kernel's tiles
// of 128 rows x 64 tokens split along K, blockIdx.z = group of RPC ranges, each range's sums
// stored at parts[(range * n_tok + token) * rows + row] (rows: the group's, concatenated); then
// tmv_parts_sum_kernel adds the ranges in order, the empty ones as + 0, and the bias, as
// tmv_range_sum and tmv_matmul_pass do: tmv.cuh's bits with 4-8x the CTAs of the wide kernel.
template <GgmlType T, int RPC>
__global__ void __launch_bounds__(kTmmThreads, 2)
    tmv_parts_kernel(MatmulGroup grp, const uint4* xs, const float* xm, float* parts, int64_t rows) {
    constexpr int TM = 128;
    pdl_begin();
    extern __shared__ __align__(16) uint8_t smem[];
    int64_t tile = blockIdx.x, row0 = 0;  // the member's first row among the group's
    int m = 0;
    while (m + 1 < grp.n && tile >= grp.tile0[m + 1]) row0 += grp.a[m].n_out, ++m;
    tile -= grp.tile0[m];
    const MatmulArgs& a = grp.a[m];
    const int64_t r0 = tile * TM, t0 = int64_t(blockIdx.y) * kTmmToks;
    const int tid = int(threadIdx.x);
    const auto row = [&](int i) { return a.w + size_t(min(r0 + i, a.n_out - 1)) * a.w_nb1; };
    const int64_t tx = t0 + TmmTile<TM, false>::x_tok(tid), tm = t0 + tid % kTmmToks;
    const auto sink = [&](int range, const TmmAcc<TM>& part) {
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
            for (int nt = 0; nt < TmmShape<TM>::NT; ++nt)
#pragma unroll
                for (int c = 0; c < 4; ++c) {
                    const int64_t r = r0 + tmm_row<TM>(mt, c), tok = t0 + tmm_tok<TM>(nt, c);
                    if (r < a.n_out && tok < a.n_tok)
                        parts[(size_t(range) * size_t(a.n_tok) + size_t(tok)) * size_t(rows) + size_t(row0 + r)] =
                            part[mt][nt][c];
                }
    };
    TmmAcc<TM> acc;
    tmm_mainloop<T, TM, 16>(smem, row, tx < a.n_tok ? xs + size_t(tx) * size_t(a.n_in / 4) : nullptr,
                            tid < kTmmToks && tm < a.n_tok ? xm + size_t(tm) * size_t(a.n_in / 32) : nullptr,
                            a.n_in, acc, int(min(int64_t(kTmmToks), a.n_tok - t0)), sink, int(blockIdx.z) * RPC,
                            int(blockIdx.z) * RPC + RPC);
}

// One thread per (row, token) of the group: the ranges' sums in order (ranges [n_full, 16) have
// no blocks: + 0), then y = s or y + s with s = sum + bias (or + 0).
__global__ void tmv_parts_sum_kernel(MatmulGroup grp, const float* parts, int64_t rows, int n_full) {
    pdl_begin();
    const int64_t tok = blockIdx.y;
    int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* p = parts + size_t(tok) * size_t(rows) + size_t(r);
    int i = 0;
    while (i + 1 < grp.n && r >= grp.a[i].n_out) r -= grp.a[i].n_out, ++i;
    const MatmulArgs& a = grp.a[i];
    const size_t stride = size_t(a.n_tok) * size_t(rows);
    float sum = p[0];
    for (int k = 1; k < 16; ++k) sum = __fadd_rn(sum, k < n_full ? p[k * stride] : 0.0f);
    const float s = __fadd_rn(sum, a.bias ? a.bias[r] : 0.0f);
    float* yp = reinterpret_cast<float*>(a.y + size_t(tok) * a.y_nb1) + r;
    *yp = a.accumulate ? __fadd_rn(*yp, s) : s;
}

// Fills grp.tile0 for tiles of `rows` weight rows; returns the tile count.
int64_t group_tiles(MatmulGroup& grp, int64_t rows) {
    grp.tile0[0] = 0;
    for (int i = 0; i < grp.n; ++i) grp.tile0[i + 1] = grp.tile0[i] + (grp.a[i].n_out + rows - 1) / rows;
    for (int i = grp.n + 1; i < 4; ++i) grp.tile0[i] = grp.tile0[grp.n];
    return grp.tile0[grp.n];
}

template <GgmlType T, int TM, bool WG, int NS = 0>
void tmm_matmul(MatmulGroup grp, const uint4* xs, const float* xm, cudaStream_t s) {
    const int64_t tiles_m = group_tiles(grp, TM), tiles_n = (grp.a[0].n_tok + kTmmToks - 1) / kTmmToks;
    WO_CHECK(tiles_m < (int64_t(1) << 31) && tiles_n <= 65535, "cuda matmul_tmm: grid limits");
    const dim3 grid(static_cast<unsigned>(tiles_m), static_cast<unsigned>(tiles_n));
    launch_tmm<tmm_matmul_kernel<T, TM, WG, NS>>(NS > 0 ? "tmm_matmul_kernel (tmv order)" : "tmm_matmul_kernel",
                                                 TmmTile<TM, WG>::smem(T), grid, TmmTile<TM, WG>::THREADS, s, grp,
                                                 xs, xm);
}

struct EmbedArgs {
    const uint8_t* table;
    size_t t_nb1;
    int64_t n_rows, d;
    const int32_t* ids;
    uint8_t* y;
    size_t y_nb1;
    bool add;
};

// blockIdx.y = token, one thread per 8-element unit of the row. An id outside the table gives a
// NaN row (a device op cannot throw; the NaN shows up in every test and logit downstream).
template <GgmlType T, bool P>
__global__ void embed_kernel(EmbedArgs a) {
    pdl_begin();
    const int64_t u = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (8 * u >= a.d) return;
    const int32_t id = a.ids[blockIdx.y];
    float v[8];
    if (id >= 0 && id < a.n_rows) {
        Dq<T, P>::type::unit(a.table + size_t(id) * a.t_nb1, u, a.d, v);
    } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __int_as_float(0x7FC00000);
    }
    float* y = reinterpret_cast<float*>(a.y + size_t(blockIdx.y) * a.y_nb1);
#pragma unroll
    for (int i = 0; i < 8; ++i)
        if (8 * u + i < a.d) y[8 * u + i] = a.add ? __fadd_rn(y[8 * u + i], v[i]) : v[i];
}

MatmulArgs matmul_args(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate) {
    WO_CHECK(x.type == GgmlType::F32 && y.type == GgmlType::F32 && x.cols() == w.cols() &&
                 y.rows() == x.rows() && y.cols() == w.rows(),
             "cuda matmul shapes");
    return MatmulArgs{static_cast<const uint8_t*>(w.data),
                      w.nb1,
                      w.cols(),
                      w.rows(),
                      static_cast<const uint8_t*>(x.data),
                      x.nb1,
                      static_cast<uint8_t*>(y.data),
                      y.nb1,
                      x.rows(),
                      bias,
                      accumulate,
                      aligned16(x.data, x.nb1),
                      false};
}

// Whether matmul_kernel's CTAs request their weight rows into L2 before waiting on the previous
// kernel: for matrices of fewer row blocks than twice the SMs (the router: 16 CTAs, each a
// chain of dependent loads while the GPU is otherwise idle), unless WO_CUDA_MM_PREFETCH=0.
bool matmul_prefetch(int64_t blocks) {
    static const bool on = [] {
        const char* e = std::getenv("WO_CUDA_MM_PREFETCH");
        return !(e && std::string(e) == "0");
    }();
    return on && blocks < 2 * sm_count();
}
}  // namespace

int64_t set_warp_min_blocks(int64_t blocks) { return std::exchange(warp_min_blocks(), blocks); }

// Ranges per warp of the 16-range decode products: 2 (8 warps per tile, 3 CTAs per SM: the
// q / k / v group's 320 tiles in one wave), the default since the H200 measured +0.9% / +1.4% /
// +2.6% at 1 / 8 / 32 streams against 1 (bench/NOTES.md, twenty-first session); WO_CUDA_TMV_RPW=1
// gives 16 warps of one range. Any call may take either: the same bits.
int& tmv_rpw() {
    static int rpw = [] {
        const char* e = std::getenv("WO_CUDA_TMV_RPW");
        return e && std::string(e) == "1" ? 1 : 2;
    }();
    return rpw;
}
int set_tmv_rpw(int rpw) { return std::exchange(tmv_rpw(), rpw == 2 ? 2 : 1); }

void matmul(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, cudaStream_t s) {
    MatmulArgs a = matmul_args(y, x, w, bias, accumulate);
    if (a.n_tok == 0 || a.n_out == 0) return;
    const int64_t blocks = (a.n_out + kWarpRows - 1) / kWarpRows;
    a.prefetch = matmul_prefetch(blocks);
    // Groups of 8 tokens on their own CTAs while the blocks of rows are too few to fill the GPU
    // twice (the router: 16 blocks), else one group (which CTA computes a token changes no bits).
    const int64_t per = blocks < 2 * sm_count() ? 8 : a.n_tok, groups = (a.n_tok + per - 1) / per;
    WO_CHECK(groups <= 65535, "cuda matmul: grid limits");
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(groups));
    const dim3 g(static_cast<unsigned>((blocks + kCtaWarps - 1) / kCtaWarps));
    if (a.n_tok == 1 && warp_per_rows(blocks)) {
        WO_CUDA_FOR_WEIGHT(
            w, "matmul",
            (launch("matmul_warp_kernel", matmul_warp_kernel<kT, kP, 1>, g, kBlockThreads, 0, s, a)));
    } else if (warp_passes() && warp_per_rows(blocks)) {
        WO_CUDA_FOR_WEIGHT(w, "matmul",
                           (launch("matmul_warp_kernel", matmul_warp_kernel<kT, kP, kWarpPassTokens>, g,
                                   kBlockThreads, 0, s, a)));
    } else if (a.n_tok <= narrow_max_tokens()) {
        WO_CUDA_FOR_WEIGHT(
            w, "matmul",
            (launch("matmul_kernel", matmul_kernel<kT, kP, false>, grid, kBlockThreads, 0, s, a, per)));
    } else {
        WO_CUDA_FOR_WEIGHT(
            w, "matmul",
            (launch("matmul_kernel", matmul_kernel<kT, kP, true>, grid, kBlockThreads, 0, s, a, per)));
    }
    check_launch("matmul kernel launch");
}

bool matmul_tmv_weight(const Tensor& w) {
    static const int64_t min_rows = [] {
        const char* e = std::getenv("WO_CUDA_TMV_MIN_ROWS");
        return e ? int64_t(std::atoll(e)) : kTmvMinRows;
    }();
    return tmv_weight(w) && w.rows() >= min_rows;
}

int matmul_tmv_ranges(int64_t n_out) { return n_out < 16384 ? 16 : 4; }

size_t matmul_tmv_scratch_bytes(int64_t max_tokens, int64_t max_cols) {
    return (tmv_split_bytes(max_tokens, max_cols) + 255) / 256 * 256 + tmv_mult_bytes(max_tokens, max_cols);
}

namespace {

// The group of `m`'s weights over x, checked (tensor-core weights of one type and width, enough
// scratch), or n = 0 when x has no rows or the weights none; the split of x queued.
MatmulGroup split_group(const MatmulSet& m, Tensor x, void* scratch, size_t bytes, const uint4*& xs,
                        const float*& xm, const char* what, cudaStream_t s, bool wg = false, PreSplit pre = {}) {
    MatmulGroup grp{};
    WO_CHECK(m.n >= 1 && m.n <= 3, std::string("cuda ") + what + ": 1 to 3 weights");
    for (int i = 0; i < m.n; ++i) {
        grp.a[i] = matmul_args(m.y[i], x, m.w[i], m.bias[i], m.accumulate);
        WO_CHECK(
            tmv_weight(m.w[i]) && m.w[i].type == m.w[0].type,
            std::string("cuda ") + what + ": weights are not Q8_0 / MXFP4 of one type in the DEVICE layout");
        if (grp.a[i].n_out == 0) return MatmulGroup{};
    }
    grp.n = m.n;
    const int64_t n_tok = x.rows(), n_in = x.cols();
    if (n_tok == 0) return MatmulGroup{};
    const size_t need = matmul_tmv_scratch_bytes(n_tok, n_in);
    if (need > bytes)
        throw Error(Code::INTERNAL, std::string(what) + ": scratch of " + std::to_string(bytes) + " bytes, " +
                                        std::to_string(need) + " needed");
    auto* split = static_cast<uint4*>(scratch);
    auto* mult = reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) +
                                          (tmv_split_bytes(n_tok, n_in) + 255) / 256 * 256);
    if (pre.xs) {  // split by rms_norm_split (the decode layout)
        WO_CHECK(!wg && pre.xm, std::string("cuda ") + what + ": a pre-split is the decode layout");
        xs = pre.xs, xm = pre.xm;
        return grp;
    }
    tmv_split(x, 0, n_tok, split, mult, s, wg);
    xs = split, xm = mult;
    return grp;
}

// tmv_matmul_kernel<T, NS, G, RPW> for MXFP4 (mx) or Q8_0 weights.
template <int NS, int G, int RPW = 1>
void launch_tmv_matmul(bool mx, dim3 grid, const MatmulGroup& grp, const uint4* xs, const float* xm, bool by_tok,
                       cudaStream_t s) {
    constexpr GgmlType M = GgmlType::MXFP4, Q = GgmlType::Q8_0;
    if (mx)
        launch_smem<tmv_matmul_kernel<M, NS, G, RPW>>("tmv_matmul_kernel", grid, dim3(32 * NS / RPW),
                                                      kTmvMatmulSmem<M, NS, RPW>, s, grp, xs, xm, by_tok);
    else
        launch_smem<tmv_matmul_kernel<Q, NS, G, RPW>>("tmv_matmul_kernel", grid, dim3(32 * NS / RPW),
                                                      kTmvMatmulSmem<Q, NS, RPW>, s, grp, xs, xm, by_tok);
}

}  // namespace

namespace {
int64_t& tmv_wide_min_tokens() {
    static int64_t n = [] {
        const char* e = std::getenv("WO_CUDA_TMV_WIDE");
        return e ? int64_t(std::atoll(e)) : kTmvWideMinTokens;
    }();
    return n;
}
}  // namespace

int64_t set_tmv_wide_min_tokens(int64_t n) { return std::exchange(tmv_wide_min_tokens(), n); }

namespace {
int64_t& tmv_parts_min_tokens() {
    static int64_t n = [] {
        const char* e = std::getenv("WO_CUDA_TMV_PARTS");
        return e ? int64_t(std::atoll(e)) : kTmvPartsMinTokens;
    }();
    return n;
}
int tmv_parts_rpc() {  // ranges per CTA of the parts kernel: 2 (8 CTAs along K), 1 (16) or 4 (4)
    static const int rpc = [] {
        const char* e = std::getenv("WO_CUDA_TMV_PARTS_RPC");
        const int v = e ? std::atoi(e) : 2;
        return v == 1 || v == 4 ? v : 2;
    }();
    return rpc;
}

template <GgmlType T, int RPC>
void launch_tmv_parts(dim3 grid, const MatmulGroup& grp, const uint4* xs, const float* xm, float* parts,
                      int64_t rows, cudaStream_t s) {
    launch_tmm<tmv_parts_kernel<T, RPC>>("tmv_parts_kernel", TmmTile<128, false>::smem(T), grid,
                                         TmmTile<128, false>::THREADS, s, grp, xs, xm, parts, rows);
}

// The parts kernels for a 16-range group when the call and the scratch allow them (see
// tmv_parts_kernel); false: the caller runs the warps.
bool tmv_parts(MatmulGroup& grp, const uint4* xs, const float* xm, void* scratch, size_t bytes, bool mx,
               cudaStream_t s) {
    const int64_t n_tok = grp.a[0].n_tok, n_in = grp.a[0].n_in, per = tmv_range_blocks<16>(n_in);
    if (tmv_parts_min_tokens() <= 0 || n_tok < tmv_parts_min_tokens() || n_tok > kTmvPartsMaxTokens ||
        per % 2 != 0)
        return false;
    int64_t rows = 0;
    for (int i = 0; i < grp.n; ++i) rows += grp.a[i].n_out;
    const size_t at = (matmul_tmv_scratch_bytes(n_tok, n_in) + 255) / 256 * 256;
    if (at + sizeof(float) * 16 * size_t(n_tok) * size_t(rows) > bytes) return false;
    float* parts = reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) + at);
    const int64_t tiles = group_tiles(grp, 128), tok_tiles = (n_tok + kTmmToks - 1) / kTmmToks;
    WO_CHECK(tiles < (int64_t(1) << 31) && tok_tiles <= 65535 && rows < (int64_t(1) << 31),
             "cuda matmul_tmv parts: grid limits");
    const int rpc = tmv_parts_rpc();
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(tok_tiles), static_cast<unsigned>(16 / rpc));
    constexpr GgmlType M = GgmlType::MXFP4, Q = GgmlType::Q8_0;
    (rpc == 1   ? (mx ? launch_tmv_parts<M, 1> : launch_tmv_parts<Q, 1>)
     : rpc == 2 ? (mx ? launch_tmv_parts<M, 2> : launch_tmv_parts<Q, 2>)
                : (mx ? launch_tmv_parts<M, 4> : launch_tmv_parts<Q, 4>))(grid, grp, xs, xm, parts, rows, s);
    check_launch("matmul_tmv parts kernel launch");
    const int n_full = int((n_in / 32 + per - 1) / per);
    launch("tmv_parts_sum_kernel", tmv_parts_sum_kernel,
           dim3(static_cast<unsigned>((rows + 255) / 256), static_cast<unsigned>(n_tok)), 256, 0, s, grp,
           static_cast<const float*>(parts), rows, n_full);
    check_launch("matmul_tmv parts sum kernel launch");
    return true;
}
}  // namespace

int64_t set_tmv_parts_min_tokens(int64_t n) { return std::exchange(tmv_parts_min_tokens(), n); }

size_t matmul_tmv_parts_bytes(int64_t max_tokens, int64_t max_rows) {
    const int64_t t = std::min(max_tokens, kTmvPartsMaxTokens);
    return tmv_parts_min_tokens() > 0 && t >= tmv_parts_min_tokens()
               ? 256 + sizeof(float) * 16 * size_t(t) * size_t(max_rows)
               : 0;
}

void matmul_tmv_group_presplit(const MatmulSet& m, Tensor x, void* scratch, size_t bytes, cudaStream_t s,
                               PreSplit pre) {
    const uint4* xs = nullptr;
    const float* xm = nullptr;
    MatmulGroup grp = split_group(m, x, scratch, bytes, xs, xm, "matmul_tmv", s, false, pre);
    if (grp.n == 0) return;
    const int ns = matmul_tmv_ranges(grp.a[0].n_out);
    for (int i = 1; i < grp.n; ++i)
        WO_CHECK(matmul_tmv_ranges(grp.a[i].n_out) == ns,
                 "cuda matmul_tmv: weights of different range counts");
    const bool mx = m.w[0].type == GgmlType::MXFP4;
    if (ns == 16 && tmv_parts(grp, xs, xm, scratch, bytes, mx, s)) return;
    // The wide kernel (tmm.cuh's tiles in this order) for the 4-range weights (the LM head: enough
    // tiles to fill the GPU); the 16-range ones' few tiles walk all of n_in serially, slower than the
    // warps of ranges (bench/NOTES.md, seventeenth session).
    if (ns == 4 && x.rows() >= tmv_wide_min_tokens()) {
        int64_t tiles256 = 0;
        for (int i = 0; i < grp.n; ++i) tiles256 += (grp.a[i].n_out + 255) / 256;
        const bool r256 = tmm_tile_rows(tiles256 * ((x.rows() + kTmmToks - 1) / kTmmToks)) == 256;
        constexpr GgmlType M = GgmlType::MXFP4, Q = GgmlType::Q8_0;
        (r256 ? (mx ? tmm_matmul<M, 256, false, 4> : tmm_matmul<Q, 256, false, 4>)
              : (mx ? tmm_matmul<M, 128, false, 4> : tmm_matmul<Q, 128, false, 4>))(grp, xs, xm, s);
        check_launch("matmul_tmv wide kernel launch");
        return;
    }
    const bool g16 = ns == 4 && x.rows() > 2 * kTmvToks;  // see tmv_matmul_kernel
    const int64_t tiles = group_tiles(grp, kTmvRows), per = (g16 ? 4 : 2) * kTmvToks,
                  groups = (x.rows() + per - 1) / per;
    WO_CHECK(tiles < (int64_t(1) << 31) && groups <= 65535, "cuda matmul_tmv: grid limits");
    // grid (groups, tiles): see tmv_matmul_kernel; WO_CUDA_TMV_BY_TILE=1 keeps tiles fastest (A/B).
    static const bool by_tile = [] {
        const char* e = std::getenv("WO_CUDA_TMV_BY_TILE");
        return e && std::string(e) == "1";
    }();
    const bool by_tok = !by_tile && tiles <= 65535;
    const dim3 grid = by_tok ? dim3(static_cast<unsigned>(groups), static_cast<unsigned>(tiles))
                             : dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(groups));
    (ns == 16 ? (tmv_rpw() == 2 ? launch_tmv_matmul<16, 8, 2> : launch_tmv_matmul<16, 8>)
              : g16 ? launch_tmv_matmul<4, 16>
                    : launch_tmv_matmul<4, 8>)(mx, grid, grp, xs, xm, by_tok, s);
    check_launch("matmul_tmv kernel launch");
}

void matmul_tmv_presplit(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, void* scratch,
                         size_t bytes, cudaStream_t s, PreSplit pre) {
    matmul_tmv_group_presplit(MatmulSet{{y}, {w}, {bias}, 1, accumulate}, x, scratch, bytes, s, pre);
}
void matmul_tmv(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, void* scratch, size_t bytes,
                cudaStream_t s) {
    matmul_tmv_presplit(y, x, w, bias, accumulate, scratch, bytes, s, PreSplit{});
}
void matmul_tmv_group(const MatmulSet& m, Tensor x, void* scratch, size_t bytes, cudaStream_t s) {
    matmul_tmv_group_presplit(m, x, scratch, bytes, s, PreSplit{});
}

bool tmm_wg() {
    static const bool on = [] {
#ifdef WO_HAVE_SM90A
        const char* e = std::getenv("WO_CUDA_TMM_WG");
        if (e && std::string(e) == "0") return false;
        int dev = 0, major = 0;
        return cudaGetDevice(&dev) == cudaSuccess &&
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
               major == 9;
#else
        return false;
#endif
    }();
    return on;
}

bool tmm_weight(const Tensor& w) {
    static const bool on = [] {
        const char* e = std::getenv("WO_CUDA_TMM");
        return !(e && std::string(e) == "0");
    }();
    return on && tmv_weight(w);
}

void matmul_tmm_group(const MatmulSet& m, Tensor x, void* scratch, size_t bytes, cudaStream_t s) {
    const uint4* xs = nullptr;
    const float* xm = nullptr;
    const bool wg = tmm_wg();
    MatmulGroup grp = split_group(m, x, scratch, bytes, xs, xm, "matmul_tmm", s, wg);
    if (grp.n == 0) return;
    int64_t tiles256 = 0;
    for (int i = 0; i < grp.n; ++i) tiles256 += (grp.a[i].n_out + 255) / 256;
    tiles256 *= (x.rows() + kTmmToks - 1) / kTmmToks;
    constexpr GgmlType M = GgmlType::MXFP4, Q = GgmlType::Q8_0;
    const bool mx = m.w[0].type == M;
    const bool r256 = tmm_tile_rows(tiles256) == 256;
    if (wg)
        (r256 ? (mx ? tmm_matmul<M, 256, true> : tmm_matmul<Q, 256, true>)
              : (mx ? tmm_matmul<M, 128, true> : tmm_matmul<Q, 128, true>))(grp, xs, xm, s);
    else
        (r256 ? (mx ? tmm_matmul<M, 256, false> : tmm_matmul<Q, 256, false>)
              : (mx ? tmm_matmul<M, 128, false> : tmm_matmul<Q, 128, false>))(grp, xs, xm, s);
    check_launch("matmul_tmm kernel launch");
}

void matmul_tmm(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, void* scratch, size_t bytes,
                cudaStream_t s) {
    matmul_tmm_group(MatmulSet{{y}, {w}, {bias}, 1, accumulate}, x, scratch, bytes, s);
}

void matmul_mma(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, cudaStream_t s) {
    const MatmulArgs a = matmul_args(y, x, w, bias, accumulate);
    if (a.n_tok == 0 || a.n_out == 0) return;
    const int64_t tiles_m = (a.n_out + kMmaRows - 1) / kMmaRows,
                  tiles_n = (a.n_tok + kMmaToks - 1) / kMmaToks;
    WO_CHECK(tiles_m < (int64_t(1) << 31) && tiles_n <= 65535, "cuda matmul_mma: grid limits");
    const dim3 grid(static_cast<unsigned>(tiles_m), static_cast<unsigned>(tiles_n));
    WO_CUDA_FOR_WEIGHT(w, "matmul",
                       (launch("matmul_mma_kernel", matmul_mma_kernel<kT, kP>, grid, kMmaThreads, 0, s, a)));
    check_launch("matmul_mma kernel launch");
}

void embed(Tensor y, Tensor table, Tensor ids, bool add, cudaStream_t s) {
    WO_CHECK(y.type == GgmlType::F32 && table.cols() == y.cols() && ids.type == GgmlType::I32 &&
                 ids.cols() * ids.rows() >= y.rows(),
             "cuda embed shapes");
    const int64_t n = y.rows(), d = y.cols();
    if (n == 0 || d == 0) return;
    WO_CHECK(n <= 65535, "cuda embed: at most 65535 tokens per call");
    EmbedArgs a{static_cast<const uint8_t*>(table.data),
                table.nb1,
                table.rows(),
                d,
                static_cast<const int32_t*>(ids.data),
                static_cast<uint8_t*>(y.data),
                y.nb1,
                add};
    const int64_t units = (d + 7) / 8;
    const dim3 grid(static_cast<unsigned>((units + 127) / 128), static_cast<unsigned>(n));
    WO_CUDA_FOR_WEIGHT(table, "embed", (launch("embed_kernel", embed_kernel<kT, kP>, grid, 128, 0, s, a)));
    check_launch("embed kernel launch");
}

namespace {

// One thread per block of 32 elements: GGUF block -> codes and scale of the DEVICE row.
template <GgmlType T>
__global__ void repack_kernel(const uint8_t* src, size_t src_nb1, uint8_t* dst, size_t dst_nb1, int64_t n,
                              int64_t n_rows) {
    pdl_begin();
    const int64_t nb = n / 32;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= nb * n_rows) return;
    const int64_t r = i / nb, b = i % nb;
    uint8_t* row = dst + size_t(r) * dst_nb1;
    if constexpr (T == GgmlType::MXFP4) {
        const auto* blk = reinterpret_cast<const quant::BlockMxfp4*>(src + size_t(r) * src_nb1) + b;
        uint8_t v[32];
        for (int j = 0; j < 16; ++j) v[j] = blk->qs[j] & 0xF, v[j + 16] = blk->qs[j] >> 4;
        for (int j = 0; j < 16; ++j) row[16 * b + j] = uint8_t(v[2 * j] | (v[2 * j + 1] << 4));
        row[n / 2 + b] = blk->e;
    } else {
        const auto* blk = reinterpret_cast<const quant::BlockQ8_0*>(src + size_t(r) * src_nb1) + b;
        for (int j = 0; j < 32; ++j) row[32 * b + j] = uint8_t(blk->qs[j]);
        reinterpret_cast<uint16_t*>(row + n)[b] = blk->d;
    }
}

bool repackable(const Tensor& w) {
    static const bool on = [] {
        const char* e = std::getenv("WO_CUDA_REPACK");
        return !(e && std::string(e) == "0");
    }();
    return on && w.layout == WeightLayout::GGUF && w.contiguous() &&
           (w.type == GgmlType::MXFP4 || w.type == GgmlType::Q8_0) && w.cols() % 32 == 0;
}

}  // namespace

size_t repack_bytes(const Tensor& w) {
    if (!repackable(w)) return 0;
    return packed_row_bytes(w.type, w.cols()) * size_t(w.rows()) * size_t(w.mats());
}

Tensor repack(const Tensor& w, void* dst, cudaStream_t s) {
    if (!repackable(w)) return w;
    const int64_t n = w.cols(), rows = w.rows() * w.mats();
    const size_t nb1 = packed_row_bytes(w.type, n);
    const int64_t blocks = rows * (n / 32);
    const unsigned grid = static_cast<unsigned>((blocks + 255) / 256);
    auto* out = static_cast<uint8_t*>(dst);
    // GGUF rows are contiguous across matrices, so all rows of all experts are one 2-D walk.
    if (w.type == GgmlType::MXFP4)
        launch("repack_kernel", repack_kernel<GgmlType::MXFP4>, grid, 256, 0, s,
               static_cast<const uint8_t*>(w.data), w.nb1, out, nb1, n, rows);
    else
        launch("repack_kernel", repack_kernel<GgmlType::Q8_0>, grid, 256, 0, s,
               static_cast<const uint8_t*>(w.data), w.nb1, out, nb1, n, rows);
    check_launch("repack kernel launch");
    Tensor t = w;
    t.data = dst;
    t.layout = WeightLayout::DEVICE;
    t.nb1 = nb1;
    t.nb2 = nb1 * size_t(w.rows());
    return t;
}

}  // namespace wo::cuda
