// The prompt products of tmm.cuh on Hopper's warpgroup MMAs (wgmma.mma_async, sm_90a).
//
// Operands: A = the weights' exact f16 codes, converted by each warp from the raw codes in
// shared memory into registers (tmv_halves: per warp, the A fragment of an m64n64k16 wgmma is
// that of mma.sync's m16n8k16); B = the tokens' split activations, read by the tensor cores from
// shared memory through a matrix descriptor. The split (tmv_split, wg) scales a whole row by one
// power of two 2^s (its largest |x| into [2^14, 2^15)) instead of one per block: hi + lo keeps
// 22 bits of each element, and an element far below the row's largest loses at most 2^-39 of
// it (f16 subnormals), tmm.cuh's error bound; the block's fold then needs no per-token factor.
//
// Order (batch invariance). Per (row, token) and 32-element block b in increasing order: four
// MMAs (hi then lo of pairs 0-1, then of pairs 2-3) chained into a fresh accumulator (scale-d =
// 0 on the first), then acc = fma(part, scale_b * 2^kPre, acc); at the end dot = acc * 2^-s
// (exact), then the caller's bias. An MMA's output element depends only on its row of A, its
// column of B and its accumulator: nothing on the token count or a token's neighbours.
//
// Tile: a CTA of TM / 64 warpgroups (2 TM threads) computes TM weight rows x 64 tokens; warp w
// holds tile rows 16w + [0, 16), all 64 tokens (32 accumulators). The K loop walks tmm.cuh's
// stages (2 blocks) through a cp.async ring (kTmwStages deep, loaded 2 ahead); each block's
// MMAs run in the tensor cores while the warp converts the next block's codes (the next stage's
// after its barrier), and only the fold waits for them. The codes and scale words sit as in
// tmm.cuh, the activations as wgmma's K-major, unswizzled core matrices: 16-byte column c of the stage
// (8 j + 4 term + pair) holds, per token n, at 1024 c + 16 n, the word of each unit t of
// block j's term (tmv_split's wg order), so a k16 slice is two columns (LBO 1024, SBO 128).
// Logical k 2t + e of a slice is element 8t + pair + 4e: the pairs tmv_halves gives thread t.
// H200, gpt-oss-20b prefill (bench/NOTES.md, thirteenth and fourteenth sessions): pp2048
// 13.7k tok/s on tmm.cuh -> 15.4k (one block's MMAs, then its fold) -> 19.4k (the next block
// converted while the MMAs run, the scales decoded at the fold, refills after the conversion).
#pragma once
#include "backend/cuda/tmm.cuh"
#include "backend/cuda/wgmma.cuh"

namespace wo::cuda {

constexpr int kTmwCols = 16;  // 16-byte columns of a stage's activations
// The ring's depth (WO_TMW_STAGES overrides it at build time: scripts/gpu-check AB_CUDA_FLAGS).
#ifndef WO_TMW_STAGES
#define WO_TMW_STAGES 4
#endif
static_assert(WO_TMW_STAGES >= 3 && WO_TMW_STAGES <= 6, "tmm_wg ring: 3 to 6 stages");

template <GgmlType T, int TM>
struct TmwStage {
    uint8_t w[TM * kTmmWStride<T>];
    uint32_t ws[TM];
    uint4 x[kTmwCols][kTmmToks];
};
// The ring's depth: WO_TMW_STAGES, or fewer where 128-row tiles (2 CTAs per SM) would not fit
// twice in the SM's 228 KB (with the kernels' few static bytes). The barrier entering stage s
// refills the buffer of stage s - 2, whose MMAs every warp has waited for (stage s - 1's last
// block may still be in the tensor cores), so the ring holds kAhead = stages - 2 stages in
// flight.
template <GgmlType T, int TM>
constexpr int kTmwStages = TM == 128 && 2 * WO_TMW_STAGES * sizeof(TmwStage<T, TM>) > 224 * 1024
                               ? 3
                               : WO_TMW_STAGES;
template <GgmlType T, int TM>
constexpr size_t tmw_smem_bytes() {
    return sizeof(TmwStage<T, TM>) * kTmwStages<T, TM>;
}

// The descriptor of a K-major, unswizzled B operand at p: 8-token core matrices 128 bytes apart
// (SBO), the two 8-element halves of a k16 slice 1024 bytes apart (LBO).
__device__ __forceinline__ uint64_t tmw_desc(const void* p) {
    return wgmma_desc(static_cast<uint32_t>(__cvta_generic_to_shared(p)), 1024, 128);
}

// d = A · B (acc = 0) or d += A · B (acc = 1): m64n64k16, f16 in, fp32 out; A from registers.
__device__ __forceinline__ void wgmma_64x64(float (&d)[32], uint32_t a0, uint32_t a1, uint32_t a2,
                                            uint32_t a3, uint64_t desc, int acc) {
#ifdef WO_TMM_WG_ARCH
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),
          "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),
          "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),
          "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc), "r"(acc));
#endif
}

// The K loop of one CTA tile (tmm_mainloop's contract): row(i) the DEVICE row of tile row i;
// this thread copies the codes of rows tid / CPR + k * 2TM / CPR, the scale word of row tid
// (tid < TM), columns tid / 64 + k * 2TM / 64 of token tid % 64's split row (`xs`, null past
// the last token); `xm` is unused (the caller applies the row's 2^-s). acc[i][c]: tile row
// 16 warp + g + 8 (c >= 2), token 8i + 2t + (c & 1).
template <GgmlType T, int TM, typename RowFn>
__device__ __forceinline__ void tmw_mainloop(uint8_t* smem, RowFn row, const uint4* xs, const float* xm,
                                             int64_t n_in, float (&acc)[1][8][4]) {
    (void)xm;
    constexpr int NTH = 2 * TM, CB = kTmmCode<T>, WS = kTmmWStride<T>, CPR = 2 * CB / 16, NW = TM * CPR / NTH;
    constexpr int NX = kTmwCols * kTmmToks / NTH;  // activation columns copied per thread
    constexpr int kStages = kTmwStages<T, TM>, kAhead = kStages - 2;
    auto* st = reinterpret_cast<TmwStage<T, TM>*>(smem);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int64_t nb = n_in / 32, n_stages = (nb + 1) / 2;
    const uint8_t* wrow[NW];
#pragma unroll
    for (int k = 0; k < NW; ++k) wrow[k] = row(tid / CPR + k * (NTH / CPR));
    const uint8_t* srow = row(tid < TM ? tid : 0);
    const int xn = tid % kTmmToks;
    auto load = [&](int64_t s, TmwStage<T, TM>& S) {
        const int64_t b0 = 2 * s;
        {
            const int c = tid % CPR, j = c / (CB / 16), h = c % (CB / 16);
            const bool ok = b0 + j < nb;
#pragma unroll
            for (int k = 0; k < NW; ++k) {
                const int r = tid / CPR + k * (NTH / CPR);
                cp_async<16>(&S.w[r * WS + j * CB + 16 * h], wrow[k] + size_t(b0 + j) * CB + 16 * h, ok);
            }
        }
        if (tid < TM) {
            const size_t off = T == GgmlType::MXFP4 ? size_t(n_in / 2) + size_t(b0 & ~int64_t(3))
                                                    : size_t(n_in) + 2 * size_t(b0);
            cp_async<4>(&S.ws[tid], srow + off, true);
        }
#pragma unroll
        for (int k = 0; k < NX; ++k) {
            const int col = tid / kTmmToks + k * (NTH / kTmmToks);
            const bool ok = xs && b0 + col / 8 < nb;
            const uint4* src = ok ? xs + 8 * size_t(b0) + col : reinterpret_cast<const uint4*>(srow);
            cp_async<16>(&S.x[col][xn], src, ok);
        }
    };
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[0][i][c] = 0.0f;
#pragma unroll
    for (int s = 0; s < kAhead; ++s) {
        if (s < n_stages) load(s, st[s]);
        cp_async_commit();
    }
    const int r = 16 * warp + g;
    constexpr uint64_t kCol = 1024 >> 4;  // one column, in the descriptor's 16-byte units
    float d[32];
    // Block j of stage S: its A fragments (rows r, r + 8) and scale words; its four MMAs; the fold.
    struct Blk {
        uint32_t ha[4], hb[4], wa, wb;  // A fragments; the rows' scale words
    };
    const auto convert = [&](const TmwStage<T, TM>& S, int j, Blk& k) {
        k.wa = S.ws[r], k.wb = S.ws[r + 8];
        tmv_halves<T>(reinterpret_cast<const TmvRaw<T>*>(&S.w[r * WS + j * CB])[t], k.ha);
        tmv_halves<T>(reinterpret_cast<const TmvRaw<T>*>(&S.w[(r + 8) * WS + j * CB])[t], k.hb);
    };
    const auto mma = [&](const TmwStage<T, TM>& S, int j, const Blk& k) {
        const uint64_t desc = tmw_desc(&S.x[8 * j][0]);
        wgmma_fence();
        wgmma_64x64(d, k.ha[0], k.hb[0], k.ha[1], k.hb[1], desc, 0);             // hi, pairs 0-1
        wgmma_64x64(d, k.ha[0], k.hb[0], k.ha[1], k.hb[1], desc + 4 * kCol, 1);  // lo, pairs 0-1
        wgmma_64x64(d, k.ha[2], k.hb[2], k.ha[3], k.hb[3], desc + 2 * kCol, 1);  // hi, pairs 2-3
        wgmma_64x64(d, k.ha[2], k.hb[2], k.ha[3], k.hb[3], desc + 6 * kCol, 1);  // lo, pairs 2-3
        wgmma_commit();
#pragma unroll
        for (int i = 0; i < 32; ++i) asm volatile("" : "+f"(d[i])::"memory");
    };
    // Block b's scales from the words its conversion loaded (long landed), then its MMAs.
    const auto fold = [&](const Blk& k, int64_t b) {
        const float sa = tmm_scale<T>(k.wa, b), sb = tmm_scale<T>(k.wb, b);
        wgmma_wait0();
#pragma unroll
        for (int i = 0; i < 32; ++i) asm volatile("" : "+f"(d[i])::"memory");
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            acc[0][i][0] = __fmaf_rn(d[4 * i + 0], sa, acc[0][i][0]);
            acc[0][i][1] = __fmaf_rn(d[4 * i + 1], sa, acc[0][i][1]);
            acc[0][i][2] = __fmaf_rn(d[4 * i + 2], sb, acc[0][i][2]);
            acc[0][i][3] = __fmaf_rn(d[4 * i + 3], sb, acc[0][i][3]);
        }
    };
    // Stage s is in once this thread's copies of it landed (kAhead - 1 younger groups may
    // still fly), they are visible to the tensor cores, and every thread got there; the same
    // barrier frees stage s + kAhead's buffer, last read by stage s - 2's MMAs, which every
    // warp waited for before it.
    const auto arrive = [&]() {
        cp_async_wait<kAhead - 1>();
        fence_proxy_async();
        __syncthreads();
    };
    // The copies of stage s + kAhead, issued after the stage's first conversion (whose shared
    // loads then do not queue behind them).
    const auto refill = [&](int64_t s) {
        if (s + kAhead < n_stages) load(s + kAhead, st[(s + kAhead) % kStages]);
        cp_async_commit();
    };
    // Each block's MMAs run while the warp converts the next block (the next stage's first
    // after the stage barrier): only the fold waits for them.
    Blk cur, nxt;
    arrive();
    convert(st[0], 0, cur);
    refill(0);
    for (int64_t s = 0; s < n_stages; ++s) {
        const TmwStage<T, TM>& S = st[s % kStages];
        mma(S, 0, cur);
        const bool two = 2 * s + 1 < nb;  // (only the last stage may hold one block)
        if (two) convert(S, 1, nxt);
        fold(cur, 2 * s);
        if (!two) break;
        mma(S, 1, nxt);
        if (s + 1 < n_stages) {
            arrive();
            convert(st[(s + 1) % kStages], 0, cur);
            refill(s + 1);
        }
        fold(nxt, 2 * s + 1);
    }
    cp_async_wait<0>();
}

// A prompt-product kernel's tile: tmm.cuh's (WG = false) or the one above. Acc = the
// accumulators; row(mt, c) / tok(nt, c): the tile row and token of acc[mt][nt][c]; x_tok(tid):
// the tile token whose split row thread tid copies.
template <int TM, bool WG>
struct TmmTile {
    static constexpr int MT = WG ? 1 : 2, NT = WG ? 8 : TmmShape<TM>::NT, THREADS = WG ? 2 * TM : kTmmThreads;
    using Acc = float[MT][NT][4];
    __device__ static int row(int mt, int c) {
        if constexpr (WG)
            return 16 * int(threadIdx.x >> 5) + int(threadIdx.x & 31) / 4 + (c >= 2 ? 8 : 0);
        else
            return tmm_row<TM>(mt, c);
    }
    __device__ static int tok(int nt, int c) {
        if constexpr (WG)
            return 8 * nt + 2 * int(threadIdx.x & 3) + (c & 1);
        else
            return tmm_tok<TM>(nt, c);
    }
    __device__ static int x_tok(int tid) { return WG ? tid % kTmmToks : tid / 4; }
    static constexpr size_t smem(GgmlType t) {
        return t == GgmlType::MXFP4
                   ? (WG ? tmw_smem_bytes<GgmlType::MXFP4, TM>() : tmm_smem_bytes<GgmlType::MXFP4, TM>())
                   : (WG ? tmw_smem_bytes<GgmlType::Q8_0, TM>() : tmm_smem_bytes<GgmlType::Q8_0, TM>());
    }
};

template <GgmlType T, int TM, bool WG, int NS = 0, typename RowFn>
__device__ __forceinline__ void tmm_run(uint8_t* smem, RowFn row, const uint4* xs, const float* xm,
                                        int64_t n_in, typename TmmTile<TM, WG>::Acc& acc, int n_live = kTmmToks) {
    static_assert(!WG || NS == 0, "tmv.cuh's order (NS > 0) on the mma.sync tiles only");
    if constexpr (WG)
        tmw_mainloop<T, TM>(smem, row, xs, xm, n_in, acc);
    else
        tmm_mainloop<T, TM, NS>(smem, row, xs, xm, n_in, acc, n_live);
}

// Whether the prompt products take the warpgroup kernels: this build has them (CMake's
// CMAKE_CUDA_ARCHITECTURES holds 90a), the device is a Hopper (9.0) and WO_CUDA_TMM_WG is not 0
// (per process: the A/B against tmm.cuh's mma.sync kernels, which give other bits).
bool tmm_wg();

}  // namespace wo::cuda
