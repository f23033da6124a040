// Prompt products on tensor cores from split activations ("tmm"): the prompt path's dots with
// Q8_0 and MXFP4 weights in the DEVICE layout (matmul_tmm, the MoE's prompt passes), as a tiled
// GEMM of mma.sync m16n8k16 (f16 in, fp32 accumulators). Weights of other types and layouts keep
// mma.cuh.
//
// Operands, as tmv.cuh's: A = the weights' exact codes in f16 (tmv_halves), B = the activations
// split once per call into hi + lo f16 of each 32-element block scaled by 2^s (tmv_split), so
// a product carries 22 bits of the activation; the k order inside a block is tmv.cuh's.
//
// Order (batch invariance). Per (row, token), for each 32-element block b in increasing order:
// part = the block's four MMAs chained into one fresh accumulator (hi then lo of elements
// pairs 0-1, then hi then lo of pairs 2-3), then acc = fma(part, scale_b * 2^kPre * 2^-s_b, acc)
// (the multiplier exact: powers of two, or Q8_0's f16 scale times one). One accumulator walks
// all of n_in; then the caller adds the bias. An MMA's output element depends only on its row of
// A, its column of B and its accumulator, so nothing depends on the token count, on a token's
// place in a tile or on its neighbours. Chaining four MMAs per block (not one per 16 elements,
// as tmv.cuh) halves the fp32 work per MMA; the tensor core's truncating accumulation then spans
// four MMAs of one block, never more (mma.cuh's measurement: long chains bias the sum).
//
// tmv.cuh's order instead (NS > 0, the decode products of many tokens: matmul_tmv's wide
// kernel). Per (row, token) and block, the hi and lo terms each through their two MMAs chained
// into a fresh accumulator, part = hi + lo (one rounding), acc_range = fma(part, scale * m,
// acc_range); the blocks cut into tmv_blocks<NS>'s ranges, each summed into its own accumulator,
// and the range sums added in range order (empty ranges too: + 0). These are tmv.cuh's operations
// on each element in its order (an MMA's element depends only on its row, its column and its
// accumulator; tmv.cuh holds hi and lo in two columns of one MMA, this in one column of two), so
// a decode token gets tmv.cuh's bits whether its call runs this tile or tmv.cuh's warps, while
// each block's codes are converted once per 64 tokens instead of once per 4-16.
//
// Tiling: a CTA of 8 warps computes TM weight rows x 64 tokens (TmmShape): for TM = 128, warp
// w holds rows 32 (w / 2) + [0, 32) (two MMA tiles of 16) and tokens 32 (w % 2) + [0, 32) (four
// of 8); for TM = 256, rows 32w + [0, 32) and all 64 tokens (half the activation traffic per
// weight row, twice the accumulators). The K loop walks stages of 2 blocks through a 3-deep
// cp.async ring in shared memory: the raw codes (rows padded so a warp's unit loads hit distinct
// banks), each row's scale word, the tokens' split rows (padded likewise) and their multipliers.
// Past the last block or token the copies fill zeros, and blocks past n_in are never folded.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backend/cuda/tmv.cuh"
#include "backend/cuda/util.cuh"

namespace wo::cuda {

constexpr int kTmmToks = 64;  // tokens per CTA tile
constexpr int kTmmThreads = 256;
constexpr int kTmmStages = 3;              // cp.async ring depth; a stage is 2 blocks of 32 elements
constexpr int kTmmXStride = 2 * 128 + 64;  // bytes per token: 2 blocks of 8 uint4, 64 of padding

// A CTA tile of TM weight rows (128 or 256) x 64 tokens: WM x WN warps of 32 rows x 8 NT tokens.
template <int TM>
struct TmmShape {
    static constexpr int WM = TM / 32, WN = 8 / WM, NT = kTmmToks / 8 / WN;
};

template <GgmlType T>
constexpr int kTmmCode = T == GgmlType::MXFP4 ? 16 : 32;  // code bytes per block per row
template <GgmlType T>
constexpr int kTmmWStride = T == GgmlType::MXFP4 ? 48 : 96;  // bytes per row: 2 blocks + padding

template <GgmlType T, int TM>
struct TmmStage {
    uint8_t w[TM * kTmmWStride<T>];
    uint32_t ws[TM];  // the aligned word of each row's scales that holds this stage's
    uint8_t x[kTmmToks * kTmmXStride];
    float xm[kTmmToks][2];
};
template <GgmlType T, int TM>
constexpr size_t tmm_smem_bytes() {
    return sizeof(TmmStage<T, TM>) * kTmmStages;
}

// acc[mt][nt][c]: tile row tmm_row<TM>(mt, c), tile token tmm_tok<TM>(nt, c); thread (g, t) =
// lane 4g + t holds rows g (c = 0, 1) and g + 8 (c = 2, 3), tokens 2t (even c) and 2t + 1.
template <int TM>
using TmmAcc = float[2][TmmShape<TM>::NT][4];
template <int TM>
__device__ __forceinline__ int tmm_row(int mt, int c) {
    const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2;
    return 32 * (warp / TmmShape<TM>::WN) + 16 * mt + g + (c >= 2 ? 8 : 0);
}
template <int TM>
__device__ __forceinline__ int tmm_tok(int nt, int c) {
    constexpr int WN = TmmShape<TM>::WN;
    const int warp = threadIdx.x >> 5, t = threadIdx.x & 3;
    return (kTmmToks / WN) * (warp % WN) + 8 * nt + 2 * t + (c & 1);
}

// Block j (0, 1) of a stage's scale word as a float: the block scale times 2^kPre (tmv_scale_of).
template <GgmlType T>
__device__ __forceinline__ float tmm_scale(uint32_t word, int64_t b) {
    if constexpr (T == GgmlType::MXFP4) {
        const uint32_t e = (word >> (8 * (b & 3))) & 0xFFu;
        return e == 0xFF ? __int_as_float(0x7FC00000) : __int_as_float(int(min(e + kTmvPre<T>, 255u) << 23));
    } else {
        return __half2float(__ushort_as_half(static_cast<unsigned short>(word >> (16 * (b & 1)))));
    }
}

// The K loop of one CTA tile. row(i) is the DEVICE row of tile row i (clamped to a real one);
// this thread copies chunks of the codes of rows tid / CPR + k * 256 / CPR (CPR = 16-byte chunks
// per row and stage), the scale word of row tid (tid < TM), the split row of tile token tid / 4
// (`xs`, null past the last token: zeros) and the multipliers of tile token tid (`xm`, tid < 64,
// null: zeros). Tiles of 8 tokens from n_live on (past the call's last token) are skipped. Every
// thread of the CTA must call it.
// With a Sink (NS > 0): only tmv_blocks<NS>'s ranges [r0, r1) (their first block even), and each
// range's sums handed to sink(range, part) as it ends instead of added into acc (the caller adds
// the ranges in order: matmul_tmv's parts kernels); ranges past the last block are not handed.
struct TmmNoSink {
    template <class A>
    __device__ void operator()(int, const A&) const {}
};
template <GgmlType T, int TM, int NS = 0, typename RowFn, class Sink = TmmNoSink>
__device__ __forceinline__ void tmm_mainloop(uint8_t* smem, RowFn row, const uint4* xs, const float* xm,
                                             int64_t n_in, TmmAcc<TM>& acc, int n_live = kTmmToks, Sink sink = {},
                                             int r0 = 0, int r1 = NS) {
    using Shape = TmmShape<TM>;
    constexpr int CB = kTmmCode<T>, WS = kTmmWStride<T>, CPR = 2 * CB / 16, NW = TM * CPR / kTmmThreads;
    constexpr int NT = Shape::NT;
    constexpr bool SINK = !std::is_same_v<Sink, TmmNoSink>;
    static_assert(!SINK || NS > 0, "a sink takes tmv.cuh's ranges");
    auto* st = reinterpret_cast<TmmStage<T, TM>*>(smem);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int64_t nb_all = n_in / 32;
    // The blocks [kb0, nb) this CTA walks: all of them, or its ranges' (kb0 even: stages of 2).
    int64_t kb0 = 0, nb = nb_all;
    if constexpr (SINK) {
        const int64_t len = tmv_range_blocks<NS>(n_in);
        kb0 = min(nb_all, len * r0), nb = min(nb_all, len * r1);
    }
    const int64_t n_stages = (nb - kb0 + 1) / 2;
    const uint8_t* wrow[NW];
#pragma unroll
    for (int k = 0; k < NW; ++k) wrow[k] = row(tid / CPR + k * (kTmmThreads / CPR));
    const uint8_t* srow = row(tid < TM ? tid : 0);
    auto load = [&](int64_t s, TmmStage<T, TM>& S) {
        const int64_t b0 = kb0 + 2 * s;
        {  // codes: chunk tid % CPR of each row = block b0 + c / (CB / 16), its 16-byte part c % (CB / 16)
            const int c = tid % CPR, j = c / (CB / 16), h = c % (CB / 16);
            const bool ok = b0 + j < nb;
#pragma unroll
            for (int k = 0; k < NW; ++k) {
                const int r = tid / CPR + k * (kTmmThreads / CPR);
                cp_async<16>(&S.w[r * WS + j * CB + 16 * h], wrow[k] + size_t(b0 + j) * CB + 16 * h, ok);
            }
        }
        if (tid < TM) {  // the 4-byte word with the scales of b0 and b0 + 1
            const size_t off = T == GgmlType::MXFP4 ? size_t(n_in / 2) + size_t(b0 & ~int64_t(3))
                                                    : size_t(n_in) + 2 * size_t(b0);
            cp_async<4>(&S.ws[tid], srow + off, true);
        }
        {  // split rows: token tid / 4, block b0 + (tid / 2) % 2, term tid % 2 (4 units)
            const int tok = tid >> 2, j = (tid >> 1) & 1, term = tid & 1;
            const bool ok = xs && b0 + j < nb;
            const uint4* src = ok ? xs + 8 * size_t(b0 + j) + 4 * term : reinterpret_cast<const uint4*>(srow);
#pragma unroll
            for (int u = 0; u < 4; ++u)
                cp_async<16>(&S.x[tok * kTmmXStride + j * 128 + term * 64 + 16 * u], src + u, ok);
        }
        if (tid < kTmmToks)
#pragma unroll
            for (int j = 0; j < 2; ++j)
                cp_async<4>(&S.xm[tid][j],
                            xm && b0 + j < nb ? xm + b0 + j : reinterpret_cast<const float*>(srow),
                            xm && b0 + j < nb);
    };
    // NS > 0: `part` sums the current range (range `rg`, blocks up to `next`), `acc` the ranges
    // before it; flush() adds part to acc in range order (the first range: acc = part).
    TmmAcc<TM> part;
    int rg = 0;
    int64_t per = 0, next = 0;
    auto each = [&](auto f) {
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int c = 0; c < 4; ++c) f(mt, nt, c);
    };
    each([&](int mt, int nt, int c) { acc[mt][nt][c] = part[mt][nt][c] = 0.0f; });
    auto flush = [&] {
        if constexpr (SINK) sink(rg, part);
        each([&](int mt, int nt, int c) {
            if constexpr (!SINK)
                acc[mt][nt][c] = rg == 0 ? part[mt][nt][c] : __fadd_rn(acc[mt][nt][c], part[mt][nt][c]);
            part[mt][nt][c] = 0.0f;
        });
        ++rg;
    };
    if constexpr (NS > 0) per = tmv_range_blocks<NS>(n_in), rg = r0, next = per * (r0 + 1);
#pragma unroll
    for (int s = 0; s < kTmmStages - 1; ++s) {
        if (s < n_stages) load(s, st[s]);
        cp_async_commit();
    }
    const int wm = warp / Shape::WN, wn = warp % Shape::WN;
    for (int64_t s = 0; s < n_stages; ++s) {
        cp_async_wait<kTmmStages - 2>();
        __syncthreads();  // stage s is in; every warp is done with stage s - 1's buffer
        if (s + kTmmStages - 1 < n_stages) load(s + kTmmStages - 1, st[(s + kTmmStages - 1) % kTmmStages]);
        cp_async_commit();
        const TmmStage<T, TM>& S = st[s % kTmmStages];
        // Both blocks of the stage unrolled where the registers allow it (TM = 256 runs one CTA
        // per SM: its loads and conversions for block 1 overlap block 0's MMAs).
#pragma unroll(TM == 256 ? 2 : 1)
        for (int j = 0; j < 2; ++j) {
            const int64_t b = kb0 + 2 * s + j;
            if (b >= nb) break;
            if constexpr (NS > 0)
                if (b == next) flush(), next += per;
            uint32_t ha[2][4], hb[2][4];
            float sa[2], sb[2];
#pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
                const int r = 32 * wm + 16 * mt + g;
                const uint8_t* pa = &S.w[r * WS + j * CB];
                const uint8_t* pb = &S.w[(r + 8) * WS + j * CB];
                tmv_halves<T>(reinterpret_cast<const TmvRaw<T>*>(pa)[t], ha[mt]);
                tmv_halves<T>(reinterpret_cast<const TmvRaw<T>*>(pb)[t], hb[mt]);
                sa[mt] = tmm_scale<T>(S.ws[r], b);
                sb[mt] = tmm_scale<T>(S.ws[r + 8], b);
            }
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
                const int col = (kTmmToks / Shape::WN) * wn + 8 * nt;
                if (col >= n_live) break;  // tokens past the call's last: nothing to compute
                const uint8_t* px = &S.x[(col + g) * kTmmXStride + j * 128 + 16 * t];
                const uint4 hi = *reinterpret_cast<const uint4*>(px);
                const uint4 lo = *reinterpret_cast<const uint4*>(px + 64);
                const float m0 = S.xm[col + 2 * t][j], m1 = S.xm[col + 2 * t + 1][j];
#pragma unroll
                for (int mt = 0; mt < 2; ++mt) {
                    if constexpr (NS > 0) {  // tmv.cuh's order (above)
                        float dh[4] = {0.0f, 0.0f, 0.0f, 0.0f}, dl[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                        mma_f16_acc(dh, ha[mt][0], hb[mt][0], ha[mt][1], hb[mt][1], hi.x, hi.y);
                        mma_f16_acc(dh, ha[mt][2], hb[mt][2], ha[mt][3], hb[mt][3], hi.z, hi.w);
                        mma_f16_acc(dl, ha[mt][0], hb[mt][0], ha[mt][1], hb[mt][1], lo.x, lo.y);
                        mma_f16_acc(dl, ha[mt][2], hb[mt][2], ha[mt][3], hb[mt][3], lo.z, lo.w);
                        float(&p)[4] = part[mt][nt];
                        p[0] = __fmaf_rn(__fadd_rn(dh[0], dl[0]), __fmul_rn(sa[mt], m0), p[0]);
                        p[1] = __fmaf_rn(__fadd_rn(dh[1], dl[1]), __fmul_rn(sa[mt], m1), p[1]);
                        p[2] = __fmaf_rn(__fadd_rn(dh[2], dl[2]), __fmul_rn(sb[mt], m0), p[2]);
                        p[3] = __fmaf_rn(__fadd_rn(dh[3], dl[3]), __fmul_rn(sb[mt], m1), p[3]);
                        continue;
                    }
                    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                    mma_f16_acc(d, ha[mt][0], hb[mt][0], ha[mt][1], hb[mt][1], hi.x, hi.y);
                    mma_f16_acc(d, ha[mt][0], hb[mt][0], ha[mt][1], hb[mt][1], lo.x, lo.y);
                    mma_f16_acc(d, ha[mt][2], hb[mt][2], ha[mt][3], hb[mt][3], hi.z, hi.w);
                    mma_f16_acc(d, ha[mt][2], hb[mt][2], ha[mt][3], hb[mt][3], lo.z, lo.w);
                    acc[mt][nt][0] = __fmaf_rn(d[0], __fmul_rn(sa[mt], m0), acc[mt][nt][0]);
                    acc[mt][nt][1] = __fmaf_rn(d[1], __fmul_rn(sa[mt], m1), acc[mt][nt][1]);
                    acc[mt][nt][2] = __fmaf_rn(d[2], __fmul_rn(sb[mt], m0), acc[mt][nt][2]);
                    acc[mt][nt][3] = __fmaf_rn(d[3], __fmul_rn(sb[mt], m1), acc[mt][nt][3]);
                }
            }
        }
    }
    cp_async_wait<0>();
    if constexpr (SINK) {
        if (nb > kb0) flush();  // the last range with blocks
    } else if constexpr (NS > 0) {
        flush();  // the last non-empty range; then the empty ones, as tmv_range_sum adds them
        for (; rg < NS; ++rg) each([&](int mt, int nt, int c) { acc[mt][nt][c] = __fadd_rn(acc[mt][nt][c], 0.0f); });
    }
}

// The CTA tile rows for `tiles256` tiles of 256 rows: 256 (half the activation traffic per
// weight row; measured +8% on the 20b prefill) unless that leaves the GPU short of CTAs (one per
// SM at 256, two at 128). WO_CUDA_TMM_ROWS=128 or 256 forces one (per process). Any tile shape
// gives the same bits: the order is per element.
inline int tmm_tile_rows(int64_t tiles256) {
    static const int force = [] {
        const char* e = std::getenv("WO_CUDA_TMM_ROWS");
        return e ? std::atoi(e) : 0;
    }();
    if (force == 128 || force == 256) return force;
    return tiles256 >= 256 ? 256 : 128;
}

// launch() for a tmm kernel (launch_smem: its shared memory above the 48 KB default).
template <auto Kernel, typename... A>
void launch_tmm(const char* what, size_t smem, dim3 grid, int threads, cudaStream_t s, A&&... args) {
    launch_smem<Kernel>(what, grid, threads, smem, s, std::forward<A>(args)...);
}

}  // namespace wo::cuda
