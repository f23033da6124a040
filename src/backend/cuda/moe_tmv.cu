// The MoE on tensor cores from split activations (moe.cuh): the decode path (tmv.cuh) and the
// prompt path (tmm.cuh) for Q8_0 / MXFP4 experts in the DEVICE layout.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>

#include "backend/cuda/kernels.h"
#include "backend/cuda/matvec.cuh"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/moe.cuh"
#include "backend/cuda/tmm.cuh"
#include "backend/cuda/tmm_wg.cuh"
#include "backend/cuda/tmv.cuh"

namespace wo::cuda {
namespace {

// ---- The decode path on tensor cores (tmv.cuh), for Q8_0 / MXFP4 experts in the DEVICE layout.
// A CTA's 4 warps are the 4 K ranges of one tile of 16 rows: gate_up's tile is 8 features of
// gate (A rows 0..7) and the same 8 of up (rows 8..15), so thread (g, t) ends with gate and up
// of feature f0 + g for token t and applies the activation itself; down's tile is 16 rows.
// Grouped: blockIdx.x = rank among the active experts, blockIdx.y = kTmvGroupRt tiles, the
// expert's pairs in passes of 16 (kernels for steps of more than 8 pairs per expert), 8, and 4
// for the last 1..4. FOLD (decode steps of at most kFoldTokens tokens): blockIdx.x = pair p, its
// expert from ids (no grouping; the same bits, as each column's result is its own); the fold
// down pass then adds the token's k outputs into y itself (fold_pairs_combine).

// Output rows of tile y for thread (g, t): gate_up -> gate and up row of feature 8y + g;
// down -> rows 16y + g and 16y + g + 8. `row` is the true row (may be >= n_out), rows clamped.
template <bool GATE_UP>
__device__ __forceinline__ void tmv_tile_rows(const ExpertArgs& a, int e, int64_t y, const uint8_t*& ra,
                                              const uint8_t*& rb, int64_t& row_a, int64_t& row_b) {
    const int g = (threadIdx.x & 31) >> 2;
    if constexpr (GATE_UP) {
        row_a = row_b = y * (kTmvRows / 2) + g;
        const size_t r = size_t(min(row_a, a.n_out - 1));
        ra = a.w + size_t(e) * a.nb2 + r * a.nb1;
        rb = a.w2 + size_t(e) * a.nb2_2 + r * a.nb1_2;
    } else {
        row_a = y * kTmvRows + g, row_b = row_a + kTmvRows / 2;
        ra = a.w + size_t(e) * a.nb2 + size_t(min(row_a, a.n_out - 1)) * a.nb1;
        rb = a.w + size_t(e) * a.nb2 + size_t(min(row_b, a.n_out - 1)) * a.nb1;
    }
}

// This thread's outputs of a pass (acc: tmv_range's, the ranges summed), as the CUDA-core path:
// s = dot + bias (or + 0), then gate_up's activation.
template <bool GATE_UP, int NTT>
__device__ __forceinline__ void tmv_expert_out(const ExpertArgs& a, int e, const int32_t* pairs, int32_t cnt,
                                               int32_t i0, int64_t row_a, int64_t row_b,
                                               const float (&acc)[NTT][2]) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int j = 0; j < NTT; ++j) {
        const int32_t q = i0 + kTmvToks * j + t;
        if (q >= cnt) continue;
        const int32_t p = pairs[q];
        auto out = [&](float dot, const float* bias, size_t bias_nb1, int64_t row) {
            return __fadd_rn(dot, bias ? bias[size_t(e) * bias_nb1 / 4 + row] : 0.0f);
        };
        float* o = a.out + size_t(p) * size_t(a.n_out);
        if constexpr (GATE_UP) {
            if (row_a >= a.n_out) continue;
            const float va = out(acc[j][0], a.bias, a.bias_nb1, row_a);
            const float vb = out(acc[j][1], a.bias2, a.bias2_nb1, row_a);
            o[row_a] = a.act == MoeAct::SWIGLU_OAI ? swiglu_oai(va, vb, a.alpha, a.limit) : silu_mul(va, vb);
        } else {
            if (row_a < a.n_out) o[row_a] = out(acc[j][0], a.bias, a.bias_nb1, row_a);
            if (row_b < a.n_out) o[row_b] = out(acc[j][1], a.bias, a.bias_nb1, row_b);
        }
    }
}

// The fold down pass's own split (SELF): after the PDL wait, each warp splits its K range of
// its pair's input row (G, which the gate/up pass just wrote) into shared memory with
// tmv_split_kernel's operations (tmv_unit_max, tmv_exponent, tmv_unit_terms: the same bits), so
// no split kernel runs between the two passes, and the pass's first weight copies are issued
// before the wait (the expert id is the top-k's, two kernels back). xs / xm: the warp's
// kSelfSplitMaxBlocks blocks of split row (8 uint4 each, tmv_unit_store's order) and multipliers.
constexpr int kSelfSplitMaxBlocks = 32;  // a range of at most this many blocks (2880: 24)
constexpr size_t kSelfSplitSmem = size_t(kTmvSplit) * kSelfSplitMaxBlocks * (8 * 16 + 4);

__device__ __forceinline__ void self_split(const ExpertArgs& a, int32_t p, int64_t b0, int64_t b1, uint4* xs,
                                           float* xm) {
    const int lane = threadIdx.x & 31, t = lane & 3;
    const float* row = reinterpret_cast<const float*>(a.x + size_t(p / a.x_div) * a.x_nb1);
    for (int k = 0; k < int(b1 - b0); k += 8) {  // lanes 4i..4i+3: the 4 units of block k + i
        const int bl = k + (lane >> 2);
        const bool live = b0 + bl < b1;  // every lane reaches the shuffles
        float v[8] = {};
        if (live)
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = row[32 * (b0 + bl) + 8 * t + i];
        const int s = tmv_exponent(tmv_unit_max(v));
        uint32_t hi[4], lo[4];
        tmv_unit_terms(v, s, hi, lo);
        if (live) {
            xs[8 * bl + t] = make_uint4(hi[0], hi[1], hi[2], hi[3]);
            xs[8 * bl + 4 + t] = make_uint4(lo[0], lo[1], lo[2], lo[3]);
            if (t == 0) xm[bl] = pow2f(-s);
        }
    }
    __syncwarp();
}

// A pass over pairs[i0 .. i0 + 4 * NTT) (those < cnt) of expert e, row tiles RT y .. RT y + RT - 1
// (y = blockIdx.y): warp w walks range w of all of them, then warp 0 writes out[p] for its lanes'
// (row, pair). SELF (the fold down pass, one pair): the kernel has not waited on the previous
// one yet; the pass waits once its first weight copies are issued, then splits its input
// (self_split into `xsh`: the CTA's kSelfSplitSmem bytes) and reads it from there.
template <GgmlType T, bool GATE_UP, int NTT, int RT, bool SELF = false>
__device__ __forceinline__ void tmv_expert_pass(const ExpertArgs& a, int e, const int32_t* pairs, int32_t cnt,
                                                int32_t i0, float* sh, uint8_t* ring, uint8_t* xsh = nullptr) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const uint8_t *ra[RT], *rb[RT];
    int64_t row_a[RT], row_b[RT];
#pragma unroll
    for (int r = 0; r < RT; ++r)
        tmv_tile_rows<GATE_UP>(a, e, int64_t(blockIdx.y) * RT + r, ra[r], rb[r], row_a[r], row_b[r]);
    int64_t b0, b1;
    tmv_blocks(a.n_in, warp, b0, b1);
    TmvCol col[NTT];
    float acc[RT][NTT][2];
    if constexpr (SELF) {
        static_assert(NTT == 1, "the fold pass: one pair");
        uint4* xs = reinterpret_cast<uint4*>(xsh) + warp * kSelfSplitMaxBlocks * 8;
        float* xm = reinterpret_cast<float*>(xsh + size_t(kTmvSplit) * kSelfSplitMaxBlocks * 128) +
                    warp * kSelfSplitMaxBlocks;
        // tmv_range_rt reads block b at col.xs + 8 b, col.xm + b: the range's first block at xs[0].
        col[0].xs = g < 2 ? xs + (g & 1) * 4 + t - 8 * b0 : nullptr;
        col[0].xm = t == 0 ? xm - b0 : nullptr;
        const int32_t p = pairs[0];
        const auto ready = [&] {
            pdl_begin();
            self_split(a, p, b0, b1, xs, xm);
        };
        tmv_range_rt<T, 1, RT, 4, decltype(ready), true>(ra, rb, a.n_in, b0, b1, col, acc, ring, ready);
    } else {
#pragma unroll
        for (int j = 0; j < NTT; ++j) {
            const int32_t qx = i0 + kTmvToks * j + g / 2, qm = i0 + kTmvToks * j + t;
            col[j].xs =
                qx < cnt ? a.xs + size_t(pairs[qx] / a.x_div) * size_t(a.n_in / 4) + (g & 1) * 4 + t : nullptr;
            col[j].xm = qm < cnt ? a.xm + size_t(pairs[qm] / a.x_div) * size_t(a.n_in / 32) : nullptr;
        }
        tmv_range_rt<T, NTT, RT>(ra, rb, a.n_in, b0, b1, col, acc, ring);
    }
#pragma unroll
    for (int r = 0; r < RT; ++r) {
        tmv_range_sum<NTT>(acc[r], sh, 0);
        if (warp == 0) tmv_expert_out<GATE_UP, NTT>(a, e, pairs, cnt, i0, row_a[r], row_b[r], acc[r]);
    }
}

// Dynamic shared memory: a code ring per warp and row tile (tmv.cuh), sized for chunks of 4.
template <GgmlType T, int RT = 1>
constexpr size_t kTmvExpertSmem = size_t(kTmvSplit) * RT * tmv_ring_bytes(T, 4);

// The fold down pass by pairs, after the pass wrote O_p for this CTA's (pair p = i * k + j, its RT
// tiles): the last of the token's k CTAs of those tiles to arrive adds w[i][j] * O_{i*k+j} for j
// in order into y, as combine_kernel does, and resets their counter.
template <int RT>
__device__ __forceinline__ void fold_pairs_combine(const ExpertArgs& a, int32_t p) {
    __shared__ bool last;
    const int64_t i = p / a.k;
    int32_t* cnt = a.cnt + i * int64_t(gridDim.y) + blockIdx.y;
    __threadfence();  // this CTA's O rows, before its arrival is counted
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(cnt, 1) == a.k - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();  // the other CTAs' O rows, after their arrivals
    const int64_t row = int64_t(blockIdx.y) * RT * kTmvRows + threadIdx.x;
    if (threadIdx.x < RT * kTmvRows && row < a.n_out) {
        const float* wts = reinterpret_cast<const float*>(a.wts + size_t(i) * a.wts_nb1);
        float* y = reinterpret_cast<float*>(a.y + size_t(i) * a.y_nb1) + row;
        float acc_y = *y;
        for (int jj = 0; jj < a.k; ++jj)
            acc_y = __fadd_rn(
                acc_y, __fmul_rn(wts[jj], __ldcg(a.out + size_t(i * a.k + jj) * size_t(a.n_out) + row)));
        *y = acc_y;
    }
    if (threadIdx.x == 0) *cnt = 0;
}

// RT: row tiles per CTA and NT: the most token tiles of a pass (grouped passes; a fold CTA has
// one token tile and fold_rt's 1 or 2 row tiles). CTAs per SM: 6 at one row tile (80 registers), fewer at more: 4 for the default
// grouped kernel (RT 2, NT 2: 124 registers, no spills; 5, at 96 registers and a few spills,
// measured the same: bench/NOTES.md, seventeenth session).
// SELF (the fold down pass only): the pass splits its own input (tmv_expert_pass) after its first
// weight copies, and the kernel's wait is there; the dynamic shared memory then ends with
// kSelfSplitSmem bytes for that split.
template <GgmlType T, bool GATE_UP, bool FOLD, int RT = 1, int NT = 2, bool SELF = false>
__global__ void __launch_bounds__(kTmvThreads, RT * NT <= 2 ? 6 : (RT * NT <= 4 ? 4 : 3))
    tmv_expert_kernel(ExpertArgs a) {
    static_assert(!SELF || (FOLD && !GATE_UP), "SELF: the fold down pass");
    // SELF reads only the expert id before its pass's wait: the top-k wrote it before the gate/up
    // pass, which started (and so released this grid) only after the top-k had completed. __ldcg:
    // from L2, never a line this SM's L1 kept from an earlier layer.
    if constexpr (!SELF) pdl_begin();
    __shared__ float sh[(kTmvSplit - 1) * NT * 2 * 32];
    extern __shared__ __align__(16) uint8_t smem[];
    uint8_t* ring = smem + (threadIdx.x >> 5) * RT * tmv_ring_bytes(T, 4);
    int32_t e, cnt, one;
    const int32_t* pairs;
    if constexpr (FOLD) {
        one = int32_t(blockIdx.x);
        const int32_t* ids = reinterpret_cast<const int32_t*>(a.ids + size_t(one / a.k) * a.ids_nb1);
        e = SELF ? __ldcg(ids + one % a.k) : ids[one % a.k];
        if (e < 0 || e >= a.n_exp) {
            if constexpr (SELF) pdl_begin();
            if constexpr (GATE_UP) {
                return;  // the whole CTA; the fold down pass gives the token NaN
            } else {     // O_p = NaN: the token's rows of the tile become NaN
                const int64_t row = int64_t(blockIdx.y) * RT * kTmvRows + threadIdx.x;
                if (threadIdx.x < RT * kTmvRows && row < a.n_out)
                    a.out[size_t(one) * size_t(a.n_out) + row] = __int_as_float(0x7FC00000);
                fold_pairs_combine<RT>(a, one);
                return;
            }
        }
        cnt = 1, pairs = &one;
    } else {
        e = a.gr.active[blockIdx.x];
        if (e < 0) return;
        cnt = a.gr.counts[e], pairs = a.gr.list + a.gr.offsets[e];
    }
    if constexpr (SELF) {
        tmv_expert_pass<T, false, 1, RT, true>(a, e, pairs, cnt, 0, sh, ring,
                                               smem + size_t(kTmvSplit) * RT * tmv_ring_bytes(T, 4));
    } else {
        for (int32_t i = 0; i < cnt;) {
            if (!FOLD && NT == 4 && cnt - i > 2 * kTmvToks) {
                tmv_expert_pass<T, GATE_UP, NT, RT>(a, e, pairs, cnt, i, sh, ring);
                i += NT * kTmvToks;
            } else if (!FOLD && cnt - i > kTmvToks) {  // (a fold CTA has one pair)
                tmv_expert_pass<T, GATE_UP, 2, RT>(a, e, pairs, cnt, i, sh, ring);
                i += 2 * kTmvToks;
            } else {
                tmv_expert_pass<T, GATE_UP, 1, RT>(a, e, pairs, cnt, i, sh, ring);
                i += kTmvToks;
            }
        }
    }
    if constexpr (FOLD && !GATE_UP) fold_pairs_combine<RT>(a, one);
}

// The grouped mma.sync passes: 2 row tiles per CTA (sharing each block's activation loads; 1 or 4
// measured slower on the H200, bench/NOTES.md sixteenth session), passes of up to 16 tokens when
// the step averages more than 8 pairs per expert (the conversions of a block's codes then serve
// up to 4 token tiles), else of up to 8 (a kernel for 16 holds more registers: fewer CTAs per SM).
// Which kernel runs changes no bits.
constexpr int kTmvGroupRt = 2;

template <GgmlType T, bool GATE_UP, int NT>
void launch_tmv_grouped(const ExpertArgs& a, unsigned slots, unsigned tiles, cudaStream_t s) {
    constexpr int RT = kTmvGroupRt;
    launch_smem<tmv_expert_kernel<T, GATE_UP, false, RT, NT>>(
        "tmv_expert_kernel", dim3(slots, (tiles + RT - 1) / RT), kTmvThreads, kTmvExpertSmem<T, RT>, s, a);
}
template <GgmlType T, bool GATE_UP>
void launch_tmv_grouped(const ExpertArgs& a, unsigned slots, unsigned tiles, int64_t pairs, cudaStream_t s) {
    (pairs > 2 * kTmvToks * std::min<int64_t>(a.n_exp, pairs) ? launch_tmv_grouped<T, GATE_UP, 4>
                                                              : launch_tmv_grouped<T, GATE_UP, 2>)(a, slots, tiles, s);
}

// Row tiles per CTA of the fold passes: 2 for steps of kFoldRt2MinTokens to kFoldTokens tokens
// (half the CTAs, twice the bytes in flight per warp), else 1. On the H200 (bench/NOTES.md,
// eighteenth session), 2 against 1: -3% at one token (2,880 CTAs of one tile already fill the
// GPU), -2% at 2, +0.9% at 3, +3.6% at 4. WO_CUDA_TMV_FOLD_RT2=n moves the threshold
// (kFoldTokens + 1: never). Which changes no bits (tmv_range_rt), so it may follow the step's
// token count.
constexpr int64_t kFoldRt2MinTokens = 3;
int fold_rt(int64_t n_dec) {
    static const int64_t min_tokens = [] {
        const char* e = std::getenv("WO_CUDA_TMV_FOLD_RT2");
        return e ? int64_t(std::atoll(e)) : kFoldRt2MinTokens;
    }();
    return n_dec >= min_tokens ? 2 : 1;
}
template <GgmlType T, bool GATE_UP, int RT, bool SELF = false>
void launch_tmv_fold(const ExpertArgs& a, unsigned pairs, unsigned tiles, cudaStream_t s) {
    launch_smem<tmv_expert_kernel<T, GATE_UP, true, RT, 2, SELF>>(
        "tmv_expert_kernel", dim3(pairs, (tiles + RT - 1) / RT), kTmvThreads,
        kTmvExpertSmem<T, RT> + (SELF ? kSelfSplitSmem : 0), s, a);
}
template <GgmlType T, bool GATE_UP, bool SELF = false>
void launch_tmv_fold(const ExpertArgs& a, int64_t n_dec, unsigned pairs, unsigned tiles, cudaStream_t s) {
    (fold_rt(n_dec) == 2 ? launch_tmv_fold<T, GATE_UP, 2, SELF> : launch_tmv_fold<T, GATE_UP, 1, SELF>)(
        a, pairs, tiles, s);
}

// Whether the fold down pass splits its own input (SELF): its ranges fit the shared split, and
// WO_CUDA_FOLD_SPLIT=0 is not set (the split kernel then runs between the passes, for measuring
// the difference). Either gives the same bits.
bool fold_self_split(int64_t n_in) {
    static const bool on = [] {
        const char* e = std::getenv("WO_CUDA_FOLD_SPLIT");
        return !(e && std::string(e) == "0");
    }();
    return on && tmv_range_blocks(n_in) <= kSelfSplitMaxBlocks;
}

template <GgmlType TG, GgmlType TD>
void tmv_decode(ExpertArgs gu, ExpertArgs dn, const Tensor& x, int64_t n_dec, bool fold, uint4* xs, float* xm,
                uint4* gs, float* gm, cudaStream_t s, bool presplit) {
    const int64_t dec_pairs = n_dec * gu.k;
    gu.xs = xs, gu.xm = xm, dn.xs = gs, dn.xm = gm;
    const unsigned tiles_gu = static_cast<unsigned>((gu.n_out + kTmvRows / 2 - 1) / (kTmvRows / 2));
    const unsigned tiles_dn = static_cast<unsigned>((dn.n_out + kTmvRows - 1) / kTmvRows);
    const unsigned slots = static_cast<unsigned>(std::min<int64_t>(gu.n_exp, dec_pairs));
    if (!presplit) tmv_split(x, 0, n_dec, xs, xm, s);
    if (fold)
        launch_tmv_fold<TG, true>(gu, n_dec, unsigned(dec_pairs), tiles_gu, s);
    else
        launch_tmv_grouped<TG, true>(gu, slots, tiles_gu, dec_pairs, s);
    check_launch("moe gate/up tmv kernel launch");
    if (fold && fold_self_split(dn.n_in)) {
        launch_tmv_fold<TD, false, true>(dn, n_dec, unsigned(dec_pairs), tiles_dn, s);
        check_launch("moe down tmv kernel launch");
        return;
    }
    Tensor g;
    g.type = GgmlType::F32, g.data = const_cast<uint8_t*>(dn.x);
    g.ne[0] = dn.n_in, g.ne[1] = dec_pairs, g.nb1 = dn.x_nb1;
    tmv_split(g, 0, dec_pairs, gs, gm, s);
    if (fold)
        launch_tmv_fold<TD, false>(dn, n_dec, unsigned(dec_pairs), tiles_dn, s);
    else
        launch_tmv_grouped<TD, false>(dn, slots, tiles_dn, dec_pairs, s);
    check_launch("moe down tmv kernel launch");
}

// ---- The prompt path (tmm.cuh). blockIdx.x = work tile (expert e, its pairs [64j, 64j + 64)),
// -1 past the last; blockIdx.y = block of TM output rows. gate_up: MMA tile i of the CTA holds
// features f0 + 8i + [0, 8) of gate (A rows 0-7) and the same of up (rows 8-15), so thread
// (g, t) ends with gate and up of one (feature, pair) and applies the activation itself; down:
// TM rows of down_e.
static_assert(kTmmToks == kMmaToks, "the group kernel lists tiles of kMmaToks pairs");

template <GgmlType T, bool GATE_UP, int TM, bool WG>
__global__ void __launch_bounds__(TmmTile<TM, WG>::THREADS, TM == 128 ? 2 : 1)
    tmm_expert_kernel(ExpertArgs a) {
    using Tile = TmmTile<TM, WG>;
    pdl_begin();
    extern __shared__ __align__(16) uint8_t smem[];
    const int32_t item = a.gr.tiles[blockIdx.x];
    if (item < 0) return;  // the whole CTA
    const int e = item >> 16, jt = item & 0xFFFF;
    const int32_t* pairs = a.gr.list + a.gr.offsets[e] + jt * kTmmToks;
    const int n_cols = min(kTmmToks, a.gr.counts[e] - jt * kTmmToks);
    const int64_t f0 = int64_t(blockIdx.y) * (GATE_UP ? TM / 2 : TM);
    const auto row = [&](int i) {  // the weight row of tile row i, clamped to a real one
        if constexpr (GATE_UP) {
            const size_t f = size_t(min(f0 + 8 * (i / 16) + i % 8, a.n_out - 1));
            return i % 16 < 8 ? a.w + size_t(e) * a.nb2 + f * a.nb1
                              : a.w2 + size_t(e) * a.nb2_2 + f * a.nb1_2;
        } else {
            return a.w + size_t(e) * a.nb2 + size_t(min(f0 + i, a.n_out - 1)) * a.nb1;
        }
    };
    const int tid = int(threadIdx.x), cx = Tile::x_tok(tid), cm = tid % kTmmToks;
    // The epilogue's per-token values (pair id; the warpgroup path's 2^-s of its input row) and
    // per-row biases in shared memory, fetched before the K loop (whose first barrier publishes
    // them): the epilogue then does no dependent global loads between its stores.
    __shared__ int32_t tok_pair[kTmmToks];
    __shared__ float tok_m[kTmmToks];
    if (tid < kTmmToks) {
        const int32_t p = tid < n_cols ? pairs[tid] : 0;
        tok_pair[tid] = p;
        tok_m[tid] = WG && tid < n_cols ? a.xm[size_t(p / a.x_div) * size_t(a.n_in / 32)] : 1.0f;
    }
    const auto feature = [&](int tr) { return GATE_UP ? f0 + 8 * (tr / 16) + tr % 8 : f0 + tr; };
    // s = dot + bias (or + 0), as the CUDA-core path; gate_up: tile rows i % 16 < 8 gate's bias.
    __shared__ float row_bias[TM];
    if (tid < TM) {
        const int64_t r = feature(tid);
        const bool up = GATE_UP && tid % 16 >= 8;
        const float* b = up ? a.bias2 : a.bias;
        row_bias[tid] = b && r < a.n_out ? b[size_t(e) * (up ? a.bias2_nb1 : a.bias_nb1) / 4 + r] : 0.0f;
    }
    typename Tile::Acc acc;
    tmm_run<T, TM, WG>(
        smem, row, cx < n_cols ? a.xs + size_t(pairs[cx] / a.x_div) * size_t(a.n_in / 4) : nullptr,
        tid < kTmmToks && cm < n_cols ? a.xm + size_t(pairs[cm] / a.x_div) * size_t(a.n_in / 32) : nullptr,
        a.n_in, acc, n_cols);
#pragma unroll
    for (int mt = 0; mt < Tile::MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < Tile::NT; ++nt)
#pragma unroll
            for (int c = 0; c < (GATE_UP ? 2 : 4); ++c) {
                const int tt = Tile::tok(nt, c), tr = Tile::row(mt, c);
                const int64_t r = feature(tr);
                if (tt >= n_cols || r >= a.n_out) continue;
                float* o = a.out + size_t(tok_pair[tt]) * size_t(a.n_out) + size_t(r);
                // The warpgroup path's dots are in the input row's split units: times its 2^-s.
                const float m = tok_m[tt];
                const auto dot = [&](float v) { return WG ? __fmul_rn(v, m) : v; };
                if constexpr (GATE_UP) {
                    const float gv = __fadd_rn(dot(acc[mt][nt][c]), row_bias[tr]);
                    const float uv = __fadd_rn(dot(acc[mt][nt][c + 2]), row_bias[tr + 8]);
                    *o =
                        a.act == MoeAct::SWIGLU_OAI ? swiglu_oai(gv, uv, a.alpha, a.limit) : silu_mul(gv, uv);
                } else {
                    *o = __fadd_rn(dot(acc[mt][nt][c]), row_bias[tr]);
                }
            }
}

template <GgmlType TG, GgmlType TD, int TM, bool WG>
void tmm_prompt(ExpertArgs gu, ExpertArgs dn, const Tensor& x, int64_t n_dec, int64_t tiles, uint4* xs,
                float* xm, uint4* gs, float* gm, cudaStream_t s) {
    using Tile = TmmTile<TM, WG>;
    const int64_t n = x.rows();
    gu.xs = xs, gu.xm = xm, dn.xs = gs, dn.xm = gm;
    tmv_split(x, n_dec, n, xs, xm, s, WG);
    const dim3 grid_gu(static_cast<unsigned>(tiles),
                       static_cast<unsigned>((gu.n_out + TM / 2 - 1) / (TM / 2)));
    launch_tmm<tmm_expert_kernel<TG, true, TM, WG>>("tmm_expert_kernel", Tile::smem(TG), grid_gu,
                                                    Tile::THREADS, s, gu);
    check_launch("moe gate/up tmm kernel launch");
    Tensor g;
    g.type = GgmlType::F32, g.data = const_cast<uint8_t*>(dn.x);
    g.ne[0] = dn.n_in, g.ne[1] = n * gu.k, g.nb1 = dn.x_nb1;
    tmv_split(g, n_dec * gu.k, n * gu.k, gs, gm, s, WG);
    const dim3 grid_dn(static_cast<unsigned>(tiles), static_cast<unsigned>((dn.n_out + TM - 1) / TM));
    launch_tmm<tmm_expert_kernel<TD, false, TM, WG>>("tmm_expert_kernel", Tile::smem(TD), grid_dn,
                                                     Tile::THREADS, s, dn);
    check_launch("moe down tmm kernel launch");
}

template <int TM, bool WG>
void tmm_prompt_types(ExpertArgs gu, ExpertArgs dn, const Tensor& x, int64_t n_dec, int64_t tiles,
                      GgmlType tg, GgmlType td, uint4* xs, float* xm, uint4* gs, float* gm, cudaStream_t s) {
    constexpr GgmlType M = GgmlType::MXFP4, Q = GgmlType::Q8_0;
    const bool gmx = tg == M, dmx = td == M;
    (gmx ? (dmx ? tmm_prompt<M, M, TM, WG> : tmm_prompt<M, Q, TM, WG>)
         : (dmx ? tmm_prompt<Q, M, TM, WG> : tmm_prompt<Q, Q, TM, WG>))(gu, dn, x, n_dec, tiles, xs, xm, gs,
                                                                        gm, s);
}

}  // namespace

void moe_tmm_prompt(ExpertArgs gu, ExpertArgs dn, const Tensor& x, int64_t n_dec, int64_t tiles, GgmlType tg,
                    GgmlType td, uint4* xs, float* xm, uint4* gs, float* gm, cudaStream_t s) {
    WO_CHECK(tiles < (int64_t(1) << 31) && (gu.n_out + 63) / 64 <= 65535, "cuda moe_ffn: grid limits");
    const int64_t tiles256 = tiles * ((dn.n_out + 255) / 256);  // down's: the fewer
    const bool r256 = tmm_tile_rows(tiles256) == 256;
    (tmm_wg() ? (r256 ? tmm_prompt_types<256, true> : tmm_prompt_types<128, true>)
              : (r256 ? tmm_prompt_types<256, false> : tmm_prompt_types<128, false>))(
        gu, dn, x, n_dec, tiles, tg, td, xs, xm, gs, gm, s);
}

void moe_tmv_decode(ExpertArgs gu, ExpertArgs dn, const Tensor& x, int64_t n_dec, bool fold, GgmlType tg,
                    GgmlType td, uint4* xs, float* xm, uint4* gs, float* gm, cudaStream_t s, bool presplit) {
    WO_CHECK(!fold || gu.k <= kTmvFoldMaxK, "cuda moe_tmv_decode: fold with k > 4");
    constexpr GgmlType M = GgmlType::MXFP4, Q = GgmlType::Q8_0;
    const bool gmx = tg == M, dmx = td == M;
    (gmx ? (dmx ? tmv_decode<M, M> : tmv_decode<M, Q>) : (dmx ? tmv_decode<Q, M> : tmv_decode<Q, Q>))(
        gu, dn, x, n_dec, fold, xs, xm, gs, gm, s, presplit);
}

}  // namespace wo::cuda
