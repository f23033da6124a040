// The MoE expert FFN with expert ids that stay on the device (kernels.h, Backend::moe_ffn).
//
// A step's tokens [0, n_decode) take the decode path and the rest the prompt path; each path's
// launches have grids fixed by the token counts (never by the routing), so the sequence is
// capturable in a CUDA graph:
//  1. group:   one CTA counts the path's (token, choice) pairs p = i*k + j per expert, scans the
//              counts into offsets and scatters the pair ids into `list`, grouped by expert (the
//              order inside a group is whatever the atomics give: it decides only where a pair's
//              dot is computed, never its value); it lists the touched experts in id order
//              (`active`) and, for the prompt path, the tiles of 64 pairs of each (`tiles`).
//  2. gate_up: decode: grid (min(n_expert, pairs), n_ff/2): CTA x takes the x-th touched expert e
//              (or exits if fewer are touched); it owns 2 rows of gate and up and runs every pair
//              of e through them (passes of 8 tokens, weights re-read from L1/L2). When few
//              tokens decode and the blocks fill the GPU, a warp owns the 2 rows instead
//              (expert_warp_kernel: the same bits, no barrier).
//              prompt: grid (tiles, n_ff/32): tensor-core tiles of 32 features of gate and up x
//              64 pairs of one expert (mma.cuh). Both write G[p] = act(g + gb, u + ub).
//  3. down:    the same two ways: O[p] = down_e · G[p] + db.
//  4. combine: y[i] += w[i][j] · O[i*k+j] for j = 0..k-1 in order, one thread per column.
// A decode path of at most kFoldTokens tokens on the warp kernels skips 1 and 4: gate_up takes
// each pair's expert from ids, and down walks a token's choices in order and does the combine
// itself (fold_gate_up_kernel, fold_down_kernel: 2 launches instead of 4, the same bits).
// Experts of Q8_0 / MXFP4 in the DEVICE layout (as the loader repacks them) take both paths on
// tensor cores from split activations instead (moe_tmv.cu; decode: tmv.cuh, the same steps,
// folded or grouped; prompt: tmm.cuh, the same tiles of 64 pairs, 128 or 256 rows per CTA);
// other types take the CUDA-core kernels here, whose every dot is cta_dots' (matvec.cuh), the
// same order as matmul, and for prompts mma.cuh's, as matmul_mma. So a pair's result depends on
// nothing but its token, its expert, the experts' type and its token's path. An out-of-range
// expert id cannot throw on the device: its pair is left out of every group and contributes NaN
// to y in the combine.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/kernels.h"
#include "backend/cuda/matvec.cuh"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/moe.cuh"
#include "backend/cuda/tmv.cuh"

namespace wo::cuda {
namespace {

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// At most n_pairs / kMmaToks + (touched experts) tiles: one partial tile per expert.
int64_t max_tiles(int64_t n_exp, int64_t n_pairs) {
    return (n_pairs + kMmaToks - 1) / kMmaToks + std::min(n_exp, n_pairs);
}

// Scratch layout for n_tok tokens of k choices (n_pairs = n_tok * k) over n_exp experts: decode
// groups, prompt groups, G and O, and the tensor-core decode's split rows (tmv.cuh) of x and G
// with their multipliers.
struct MoeScratch {
    size_t group[2][5] = {}, g = 0, o = 0, xs = 0, xm = 0, gs = 0, gm = 0, cnt = 0, total = 0;
    MoeScratch(int64_t n_exp, int64_t n_tok, int64_t k, int64_t n_ff, int64_t d) {
        const int64_t n_pairs = n_tok * k;
        // The fold counters first: at the same place for every call (zero between calls).
        size_t at = align256(sizeof(int32_t) * size_t(moe_fold_counters(d)));
        for (auto& gr : group) {
            const int64_t n[5] = {n_exp, n_exp + 1, n_exp + 1, n_pairs, max_tiles(n_exp, n_pairs)};
            for (int i = 0; i < 5; ++i) gr[i] = at, at += align256(sizeof(int32_t) * size_t(n[i]));
        }
        g = at, at += align256(sizeof(float) * size_t(n_pairs) * size_t(n_ff));
        o = at, at += align256(sizeof(float) * size_t(n_pairs) * size_t(d));
        xs = at, at += align256(tmv_split_bytes(n_tok, d));
        xm = at, at += align256(tmv_mult_bytes(n_tok, d));
        gs = at, at += align256(tmv_split_bytes(n_pairs, n_ff));
        gm = at, at += align256(tmv_mult_bytes(n_pairs, n_ff));
        total = at;
    }
    Groups groups(uint8_t* base, int path) const {
        auto at = [&](int i) { return reinterpret_cast<int32_t*>(base + group[path][i]); };
        return {at(0), at(1), at(2), at(3), at(4)};
    }
};

struct GroupArgs {
    const uint8_t* ids;
    size_t ids_nb1;
    int k, n_exp;
    int64_t p0, p1;  // the pairs [p0, p1) of this path
    Groups gr;
    int64_t n_tiles;  // entries of gr.tiles (0: no tile list)
};

// One CTA; shared memory: 2 * n_exp ints (counts, then cursors).
__global__ void group_kernel(GroupArgs a) {
    pdl_begin();
    extern __shared__ int32_t sh[];
    int32_t* cnt = sh;
    int32_t* cur = sh + a.n_exp;
    for (int e = threadIdx.x; e < a.n_exp; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (int64_t p = a.p0 + threadIdx.x; p < a.p1; p += blockDim.x) {
        const int32_t e = reinterpret_cast<const int32_t*>(a.ids + size_t(p / a.k) * a.ids_nb1)[p % a.k];
        if (e >= 0 && e < a.n_exp) atomicAdd(&cnt[e], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t run = 0, n_active = 0;
        int64_t n_tiles = 0;
        for (int e = 0; e < a.n_exp; ++e) {
            cur[e] = run;
            a.gr.offsets[e] = run;
            a.gr.counts[e] = cnt[e];
            run += cnt[e];
            if (cnt[e] > 0) a.gr.active[n_active++] = e;
            if (a.n_tiles > 0)
                for (int32_t j = 0; j * kMmaToks < cnt[e]; ++j) a.gr.tiles[n_tiles++] = (e << 16) | j;
        }
        a.gr.offsets[a.n_exp] = run;
        for (int e = n_active; e < a.n_exp; ++e) a.gr.active[e] = -1;  // CTAs past the active ones exit
        for (int64_t t = n_tiles; t < a.n_tiles; ++t) a.gr.tiles[t] = -1;
    }
    __syncthreads();
    for (int64_t p = a.p0 + threadIdx.x; p < a.p1; p += blockDim.x) {
        const int32_t e = reinterpret_cast<const int32_t*>(a.ids + size_t(p / a.k) * a.ids_nb1)[p % a.k];
        if (e >= 0 && e < a.n_exp) a.gr.list[atomicAdd(&cur[e], 1)] = int32_t(p);
    }
}

template <GgmlType T, bool P, int NT, bool GATE_UP>
__device__ __forceinline__ void expert_pass(const ExpertArgs& a, int e, int64_t r0, const int32_t* pairs,
                                            float* sh) {
    const uint8_t* w[kWarpRows];
    const uint8_t* w2[kWarpRows];
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r) {
        const size_t row = size_t(r0 + r < a.n_out ? r0 + r : a.n_out - 1);
        w[r] = a.w + size_t(e) * a.nb2 + row * a.nb1;
        w2[r] = GATE_UP ? a.w2 + size_t(e) * a.nb2_2 + row * a.nb1_2 : nullptr;
    }
    const float* x[NT];
    int32_t p[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        p[t] = pairs[t];
        x[t] = reinterpret_cast<const float*>(a.x + size_t(p[t] / a.x_div) * a.x_nb1);
    }
    float g, u = 0.0f;
    if constexpr (GATE_UP && NT == 1) {
        // One walk over the gate and up rows together (x loaded once, one reduction); the
        // order of each row's dot is cta_dots' either way. Lane r < kWarpRows of warp 0 gets
        // gate row r, lane kWarpRows + r up row r.
        const uint8_t* w4[2 * kWarpRows];
#pragma unroll
        for (int r = 0; r < kWarpRows; ++r) w4[r] = w[r], w4[kWarpRows + r] = w2[r];
        g = cta_dots<T, P, 2 * kWarpRows, 1>(w4, a.n_in, x, a.xvec, sh);
        u = __shfl_down_sync(0xFFFFFFFFu, g, kWarpRows);
    } else {
        g = cta_dots<T, P, kWarpRows, NT>(w, a.n_in, x, a.xvec, sh);
        if constexpr (GATE_UP) u = cta_dots<T, P, kWarpRows, NT>(w2, a.n_in, x, a.xvec, sh);
    }
    const int lane = threadIdx.x & 31;
    if (threadIdx.x < 32 && lane < kWarpRows * NT) {
        const int64_t row = r0 + lane / NT;
        const int t = lane % NT;
        if (row < a.n_out) {
            // As the CPU's matmul_rows: s = dot + bias (or + 0).
            const float v = __fadd_rn(g, a.bias ? a.bias[size_t(e) * a.bias_nb1 / 4 + row] : 0.0f);
            float res = v;
            if constexpr (GATE_UP) {
                const float uu = __fadd_rn(u, a.bias2 ? a.bias2[size_t(e) * a.bias2_nb1 / 4 + row] : 0.0f);
                res = a.act == MoeAct::SWIGLU_OAI ? swiglu_oai(v, uu, a.alpha, a.limit) : silu_mul(v, uu);
            }
            a.out[size_t(p[t]) * size_t(a.n_out) + size_t(row)] = res;
        }
    }
}

// blockIdx.x = rank among the step's active experts, blockIdx.y = block of kWarpRows output rows;
// the CTA's warps split each row's units (matvec.cuh).
// WIDE as matmul_kernel: the host takes the one-pair-per-pass kernel when at most
// narrow_max_tokens() tokens decode (then no expert has more pairs), the same order either way.
template <GgmlType T, bool P, bool GATE_UP, bool WIDE>
__global__ void __launch_bounds__(kBlockThreads, WIDE ? 1 : 8) expert_kernel(ExpertArgs a) {
    pdl_begin();
    __shared__ float sh[kSplit * kWarpRows * 8];
    const int e = a.gr.active[blockIdx.x];
    if (e < 0) return;  // the whole CTA: no thread reaches a barrier
    const int32_t cnt = a.gr.counts[e];
    const int64_t r0 = int64_t(blockIdx.y) * kWarpRows;
    const int32_t* pairs = a.gr.list + a.gr.offsets[e];
    int32_t t0 = 0;
    if constexpr (WIDE) {
        for (; t0 + 8 <= cnt; t0 += 8) expert_pass<T, P, 8, GATE_UP>(a, e, r0, pairs + t0, sh);
        if (t0 + 4 <= cnt) expert_pass<T, P, 4, GATE_UP>(a, e, r0, pairs + t0, sh), t0 += 4;
        if (t0 + 2 <= cnt) expert_pass<T, P, 2, GATE_UP>(a, e, r0, pairs + t0, sh), t0 += 2;
    }
    for (; t0 < cnt; ++t0) expert_pass<T, P, 1, GATE_UP>(a, e, r0, pairs + t0, sh);
}

// One warp, one block of kWarpRows rows of expert e (rows r0, r0 + 1) and the input rows of NT
// pairs p[t]: the dots in warp_cta_dots_nt's order, which gives the bits of expert_pass<.., 1, ..>
// (gate_up walks its 2 gate and 2 up rows together). Lane r * NT + t gets row r0 + r's output
// for pair t: dot + bias (or + 0), then for gate_up the activation of gate and up; other lanes
// get 0. All lanes must call it.
template <GgmlType T, bool P, bool GATE_UP, int NT>
__device__ __forceinline__ float warp_expert_rows(const ExpertArgs& a, int e, int64_t r0,
                                                  const int64_t (&p)[NT]) {
    constexpr int R = GATE_UP ? 2 * kWarpRows : kWarpRows;
    const uint8_t* w[R];
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r) {
        const size_t row = size_t(r0 + r < a.n_out ? r0 + r : a.n_out - 1);
        w[r] = a.w + size_t(e) * a.nb2 + row * a.nb1;
        if constexpr (GATE_UP) w[kWarpRows + r] = a.w2 + size_t(e) * a.nb2_2 + row * a.nb1_2;
    }
    const float* x[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t)
        x[t] = reinterpret_cast<const float*>(a.x + size_t(p[t] / a.x_div) * a.x_nb1);
    float dot[R][NT];
    warp_cta_dots_nt<T, P, R, NT>(w, a.n_in, x, a.xvec, dot);
    const int lane = threadIdx.x & 31;
    float res = 0.0f;
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            const int64_t row = r0 + r;
            if (lane != r * NT + t || row >= a.n_out) continue;
            // As expert_pass: s = dot + bias (or + 0), then the activation for gate_up.
            const float v = __fadd_rn(dot[r][t], a.bias ? a.bias[size_t(e) * a.bias_nb1 / 4 + row] : 0.0f);
            res = v;
            if constexpr (GATE_UP) {
                const float uu = __fadd_rn(dot[kWarpRows + r][t],
                                           a.bias2 ? a.bias2[size_t(e) * a.bias2_nb1 / 4 + row] : 0.0f);
                res = a.act == MoeAct::SWIGLU_OAI ? swiglu_oai(v, uu, a.alpha, a.limit) : silu_mul(v, uu);
            }
        }
    return res;
}
template <GgmlType T, bool P, bool GATE_UP>
__device__ __forceinline__ float warp_expert_rows(const ExpertArgs& a, int e, int64_t r0, int64_t p) {
    const int64_t ps[1] = {p};
    return warp_expert_rows<T, P, GATE_UP, 1>(a, e, r0, ps);
}

// A pass of NT of expert e's pairs (list[0..NT)) through the warp's rows.
template <GgmlType T, bool P, bool GATE_UP, int NT>
__device__ __forceinline__ void expert_warp_pass(const ExpertArgs& a, int e, int64_t r0,
                                                 const int32_t* list) {
    int64_t p[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) p[t] = list[t];
    const float res = warp_expert_rows<T, P, GATE_UP, NT>(a, e, r0, p);
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        const int64_t row = r0 + lane / NT;
        if (lane % NT == t && lane < kWarpRows * NT && row < a.n_out)
            a.out[size_t(p[t]) * size_t(a.n_out) + size_t(row)] = res;
    }
}

// The kernel with a warp per block of kWarpRows rows (warp_per_rows, as matmul_warp_kernel):
// blockIdx.x = rank among the active experts, warp w of CTA blockIdx.y owns rows block
// kCtaWarps * blockIdx.y + w and runs every pair of e through them, in passes of up to MAXNT.
template <GgmlType T, bool P, bool GATE_UP, int MAXNT>
__global__ void __launch_bounds__(kBlockThreads, (kWarpKernelCtas<T, P, MAXNT>))
    expert_warp_kernel(ExpertArgs a) {
    pdl_begin();
    const int e = a.gr.active[blockIdx.x];
    if (e < 0) return;
    const int64_t r0 = (int64_t(blockIdx.y) * kCtaWarps + threadIdx.x / 32) * kWarpRows;
    if (r0 >= a.n_out) return;  // the whole warp; no barrier follows
    const int32_t cnt = a.gr.counts[e];
    const int32_t* pairs = a.gr.list + a.gr.offsets[e];
    int32_t i = 0;
    if constexpr (MAXNT >= 4)
        for (; i + 4 <= cnt; i += 4) expert_warp_pass<T, P, GATE_UP, 4>(a, e, r0, pairs + i);
    if constexpr (MAXNT >= 2)
        for (; i + 2 <= cnt; i += 2) expert_warp_pass<T, P, GATE_UP, 2>(a, e, r0, pairs + i);
    for (; i < cnt; ++i) expert_warp_pass<T, P, GATE_UP, 1>(a, e, r0, pairs + i);
}

// Steps of at most kFoldTokens decode tokens (when the warp kernels apply) skip the grouping:
// fold_gate_up_kernel takes pair p = blockIdx.x and its expert straight from ids (a token's k
// experts are distinct, so grouping would save no weight reads); fold_down_kernel computes a
// token's k choices for a block of rows in one CTA and adds w_j * O_j into y in j order exactly
// as combine_kernel does. group_kernel, the O buffer and combine_kernel drop out (2
// launches instead of 4), and every value is the grouped path's, bit for bit.
template <GgmlType T, bool P>
__global__ void __launch_bounds__(kBlockThreads, (kWarpKernelCtas<T, P>)) fold_gate_up_kernel(ExpertArgs a) {
    pdl_begin();
    const int64_t p = blockIdx.x;
    const int32_t e = reinterpret_cast<const int32_t*>(a.ids + size_t(p / a.k) * a.ids_nb1)[p % a.k];
    if (e < 0 || e >= a.n_exp) return;  // fold_down_kernel gives the token NaN, as combine does
    const int64_t r0 = (int64_t(blockIdx.y) * kCtaWarps + threadIdx.x / 32) * kWarpRows;
    if (r0 >= a.n_out) return;
    const float res = warp_expert_rows<T, P, true>(a, e, r0, p);
    const int lane = threadIdx.x & 31;
    if (lane < kWarpRows && r0 + lane < a.n_out) a.out[size_t(p) * size_t(a.n_out) + size_t(r0 + lane)] = res;
}

// blockIdx.x = token i, blockIdx.y = block of kWarpRows rows; warp j (of k) computes choice j's
// down rows (as expert_warp_kernel would for pair i*k + j), then lane r of warp 0 adds
// w[i][j] * O_j for j = 0..k-1 in order into y (an out-of-range expert gives O_j = NaN), as
// combine_kernel does. k warps per CTA keep the grid's warps those of the grouped kernel.
constexpr int kFoldMaxK = 8;
template <GgmlType T, bool P>
__global__ void __launch_bounds__(32 * kFoldMaxK, (kWarpKernelCtas<T, P>) / 2)
    fold_down_kernel(ExpertArgs a) {
    pdl_begin();
    __shared__ float o_sh[kFoldMaxK][kWarpRows];
    const int64_t i = blockIdx.x, r0 = int64_t(blockIdx.y) * kWarpRows;
    const int j = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int32_t* ids = reinterpret_cast<const int32_t*>(a.ids + size_t(i) * a.ids_nb1);
    const int32_t e = ids[j];  // the same for the whole warp
    const float o = e >= 0 && e < a.n_exp ? warp_expert_rows<T, P, false>(a, e, r0, i * a.k + j)
                                          : __int_as_float(0x7FC00000);
    if (lane < kWarpRows) o_sh[j][lane] = o;
    __syncthreads();
    if (j == 0 && lane < kWarpRows && r0 + lane < a.n_out) {
        const float* wts = reinterpret_cast<const float*>(a.wts + size_t(i) * a.wts_nb1);
        float* y = reinterpret_cast<float*>(a.y + size_t(i) * a.y_nb1) + r0 + lane;
        float acc = *y;
        for (int jj = 0; jj < a.k; ++jj) acc = __fadd_rn(acc, __fmul_rn(wts[jj], o_sh[jj][lane]));
        *y = acc;
    }
}

// The prompt path on tensor cores (mma.cuh). blockIdx.x = work tile (expert e, its pairs
// [64j, 64j + 64)), -1 past the last; blockIdx.y = block of output rows. gate_up: a tile's 64
// weight rows are 32 features of gate and the same 32 of up, so each thread holds g and u of the
// same (feature, pair): warp rows 32w' + [0, 16) are gate features f0 + 16w' + [0, 16), rows
// 32w' + [16, 32) are up's. down: 64 rows of down_e.
template <GgmlType T, bool P, bool GATE_UP>
__global__ void __launch_bounds__(kMmaThreads) expert_mma_kernel(ExpertArgs a) {
    pdl_begin();
    __shared__ MmaSmem<kWTerms<T>> sh;
    const int32_t item = a.gr.tiles[blockIdx.x];
    if (item < 0) return;  // the whole CTA
    const int e = item >> 16, j = item & 0xFFFF;
    const int32_t* pairs = a.gr.list + a.gr.offsets[e] + j * kMmaToks;
    const int n_cols = min(kMmaToks, a.gr.counts[e] - j * kMmaToks);
    const int64_t f0 = int64_t(blockIdx.y) * (GATE_UP ? kMmaRows / 2 : kMmaRows);
    auto feature = [&](int tile_row) {  // output row of tile row i
        return GATE_UP ? f0 + (tile_row / 32) * 16 + tile_row % 16 : f0 + tile_row;
    };
    const uint8_t* w[2];
#pragma unroll
    for (int jj = 0; jj < 2; ++jj) {
        const int i = int(threadIdx.x) / 4 + 32 * jj;
        int64_t r = feature(i);
        r = r < a.n_out ? r : a.n_out - 1;
        const bool up = GATE_UP && (i / 16) % 2 == 1;
        w[jj] = up ? a.w2 + size_t(e) * a.nb2_2 + size_t(r) * a.nb1_2
                   : a.w + size_t(e) * a.nb2 + size_t(r) * a.nb1;
    }
    const int col = int(threadIdx.x) / 2;
    const float* x =
        col < n_cols ? reinterpret_cast<const float*>(a.x + size_t(pairs[col] / a.x_div) * a.x_nb1) : nullptr;
    MmaAcc acc;
    mma_mainloop<T, P>(sh, w, x, a.n_in, a.xvec, acc);
#pragma unroll
    for (int mt = 0; mt < (GATE_UP ? 1 : 2); ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int64_t row = feature(mma_row(mt, c));
                const int t = mma_tok(nt, c);
                if (row >= a.n_out || t >= n_cols) continue;
                const int32_t p = pairs[t];
                // As the CPU's matmul_rows: s = dot + bias (or + 0).
                const float v =
                    __fadd_rn(acc[mt][nt][c], a.bias ? a.bias[size_t(e) * a.bias_nb1 / 4 + row] : 0.0f);
                float res = v;
                if constexpr (GATE_UP) {
                    const float uu =
                        __fadd_rn(acc[1][nt][c], a.bias2 ? a.bias2[size_t(e) * a.bias2_nb1 / 4 + row] : 0.0f);
                    res = a.act == MoeAct::SWIGLU_OAI ? swiglu_oai(v, uu, a.alpha, a.limit) : silu_mul(v, uu);
                }
                a.out[size_t(p) * size_t(a.n_out) + size_t(row)] = res;
            }
}

struct CombineArgs {
    uint8_t* y;
    size_t y_nb1;
    const uint8_t *ids, *wts;
    size_t ids_nb1, wts_nb1;
    const float* o;
    int64_t d;
    int k, n_exp;
    int64_t i0;  // the first token combined here (tokens before it were folded into fold_down_kernel)
};

// blockIdx.y = token - i0; y[c] += w[j] * O[i*k+j][c] for j in order (the CPU's loop, same roundings).
__global__ void combine_kernel(CombineArgs a) {
    pdl_begin();
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= a.d) return;
    const int64_t i = a.i0 + blockIdx.y;
    const int32_t* ids = reinterpret_cast<const int32_t*>(a.ids + size_t(i) * a.ids_nb1);
    const float* wts = reinterpret_cast<const float*>(a.wts + size_t(i) * a.wts_nb1);
    float* y = reinterpret_cast<float*>(a.y + size_t(i) * a.y_nb1) + c;
    float acc = *y;
    for (int j = 0; j < a.k; ++j) {
        const int32_t e = ids[j];
        const float o = (e >= 0 && e < a.n_exp) ? a.o[(size_t(i) * a.k + j) * size_t(a.d) + size_t(c)]
                                                : __int_as_float(0x7FC00000);
        acc = __fadd_rn(acc, __fmul_rn(wts[j], o));
    }
    *y = acc;
}

}  // namespace

size_t moe_scratch_zero_bytes(int64_t d) { return sizeof(int32_t) * size_t(moe_fold_counters(d)); }

size_t moe_scratch_bytes(const StepLimits& l) {
    if (l.n_expert <= 0 || l.n_expert_used <= 0) return 0;
    return MoeScratch(l.n_expert, l.max_tokens, l.n_expert_used, l.n_ff, l.n_embd).total;
}

void moe_ffn(Tensor y, Tensor x, Tensor ids, Tensor weights, const MoeFfn& w, void* scratch,
             size_t scratch_bytes, int64_t n_decode, cudaStream_t s, PreSplit pre) {
    const int64_t n = x.rows(), d = x.cols(), k = ids.cols();
    const int64_t n_ff = w.gate.rows(), n_exp = w.gate.mats();
    WO_CHECK(w.gate.cols() == d && w.up.cols() == d && w.up.rows() == n_ff && w.down.cols() == n_ff &&
                 w.down.rows() == d && w.up.mats() == n_exp && w.down.mats() == n_exp && y.cols() == d &&
                 y.rows() == n && ids.rows() >= n && weights.rows() >= n && weights.cols() == k &&
                 x.type == GgmlType::F32 && y.type == GgmlType::F32 && ids.type == GgmlType::I32 &&
                 weights.type == GgmlType::F32,
             "cuda moe_ffn shapes");
    WO_CHECK(w.gate.layout == w.up.layout && w.gate.nb1 == w.up.nb1,
             "cuda moe_ffn: gate and up layouts differ");
    if (n == 0 || k == 0) return;
    if (w.up.type != w.gate.type)
        throw Error(Code::DTYPE_UNSUPPORTED,
                    std::string("moe_ffn: gate (") + std::string(type_name(w.gate.type)) + ") and up (" +
                        std::string(type_name(w.up.type)) + ") experts of different types");
    WO_CHECK(n_exp < 32768 && (n_ff + kWarpRows - 1) / kWarpRows <= 65535 &&
                 (d + kWarpRows - 1) / kWarpRows <= 65535 && n <= 65535,
             "cuda moe_ffn: grid limits");
    const int64_t n_pairs = n * k;
    const MoeScratch L(n_exp, n, k, n_ff, d);
    if (L.total > scratch_bytes)
        throw Error(Code::INTERNAL, "moe_ffn: scratch of " + std::to_string(scratch_bytes) + " bytes, " +
                                        std::to_string(L.total) + " needed (reserve with moe_scratch_bytes)");
    uint8_t* base = static_cast<uint8_t*>(scratch);
    auto* G = reinterpret_cast<float*>(base + L.g);
    auto* O = reinterpret_cast<float*>(base + L.o);
    const int64_t n_dec = std::clamp<int64_t>(n_decode, 0, n);
    const int64_t dec_pairs = n_dec * k;

    auto bias_ptr = [](const Tensor* b) { return b ? static_cast<const float*>(b->data) : nullptr; };
    auto bias_nb1 = [](const Tensor* b) { return b ? b->nb1 : size_t(0); };
    ExpertArgs gu{};
    gu.w = static_cast<const uint8_t*>(w.gate.data), gu.nb1 = w.gate.nb1, gu.nb2 = w.gate.nb2;
    gu.w2 = static_cast<const uint8_t*>(w.up.data), gu.nb1_2 = w.up.nb1, gu.nb2_2 = w.up.nb2;
    gu.bias = bias_ptr(w.gate_b), gu.bias_nb1 = bias_nb1(w.gate_b);
    gu.bias2 = bias_ptr(w.up_b), gu.bias2_nb1 = bias_nb1(w.up_b);
    gu.n_in = d, gu.n_out = n_ff;
    gu.x = static_cast<const uint8_t*>(x.data), gu.x_nb1 = x.nb1, gu.x_div = int(k),
    gu.xvec = aligned16(x.data, x.nb1);
    gu.out = G;
    gu.act = w.act, gu.alpha = w.alpha, gu.limit = w.limit;
    gu.ids = static_cast<const uint8_t*>(ids.data), gu.ids_nb1 = ids.nb1;
    gu.wts = static_cast<const uint8_t*>(weights.data), gu.wts_nb1 = weights.nb1;
    gu.y = static_cast<uint8_t*>(y.data), gu.y_nb1 = y.nb1;
    gu.k = int(k), gu.n_exp = int(n_exp);
    gu.cnt = reinterpret_cast<int32_t*>(base + L.cnt);
    ExpertArgs dn = gu;
    dn.w = static_cast<const uint8_t*>(w.down.data), dn.nb1 = w.down.nb1, dn.nb2 = w.down.nb2;
    dn.w2 = nullptr, dn.bias2 = nullptr;
    dn.bias = bias_ptr(w.down_b), dn.bias_nb1 = bias_nb1(w.down_b);
    dn.n_in = n_ff, dn.n_out = d;
    dn.x = reinterpret_cast<const uint8_t*>(G), dn.x_nb1 = sizeof(float) * size_t(n_ff), dn.x_div = 1;
    dn.xvec = aligned16(G, dn.x_nb1);
    dn.out = O;

    const int64_t blocks_gu = (n_ff + kWarpRows - 1) / kWarpRows, blocks_dn = (d + kWarpRows - 1) / kWarpRows;
    const auto ctas = [](int64_t blocks) {
        return static_cast<unsigned>((blocks + kCtaWarps - 1) / kCtaWarps);
    };
    // The decode path on tensor cores (tmv.cuh) when every expert matrix has a DEVICE layout of
    // Q8_0 / MXFP4 (a property of the weights, so every decode step takes it).
    const bool tmv = tmv_weight(w.gate) && tmv_weight(w.up) && tmv_weight(w.down);
    // The prompt path on tensor cores from split activations (tmm.cuh) for the same weights.
    const bool tmm = tmm_weight(w.gate) && tmm_weight(w.up) && tmm_weight(w.down);
    // A decode path of at most kFoldTokens tokens (whose blocks fill the GPU, on the CUDA cores):
    // no grouping, and the combine done by the down pass.
    const bool fold = n_dec > 0 && n_dec <= kFoldTokens &&
                      (tmv ? k <= kTmvFoldMaxK : k <= kFoldMaxK && warp_per_rows(dec_pairs * blocks_gu));

    // Groups the pairs [p0, p1) of a path by expert (group_kernel).
    auto group = [&](int path, int64_t p0, int64_t p1) {
        const Groups gr = L.groups(base, path);
        const int64_t tiles = path == 1 ? max_tiles(n_exp, p1 - p0) : 0;
        GroupArgs ga{static_cast<const uint8_t*>(ids.data), ids.nb1, int(k), int(n_exp), p0, p1, gr, tiles};
        launch("group_kernel", group_kernel, 1, 1024, 2 * sizeof(int32_t) * size_t(n_exp), s, ga);
        check_launch("moe group kernel launch");
        return gr;
    };
    // Each path: group its pairs, then gate/up and down. Grids depend on the token counts alone
    // (never on the routing), so the launches are capturable in a CUDA graph.
    for (int path = 0; path < 2; ++path) {
        const int64_t p0 = path == 0 ? 0 : dec_pairs, p1 = path == 0 ? dec_pairs : n_pairs;
        if (p1 == p0) continue;
        if (path == 0 && tmv) {
            if (!fold) gu.gr = dn.gr = group(path, p0, p1);
            // x's split: rms_norm_split's (read only), or made here into the scratch.
            uint4* xs = pre.xs ? const_cast<uint4*>(pre.xs) : reinterpret_cast<uint4*>(base + L.xs);
            float* xm = pre.xs ? const_cast<float*>(pre.xm) : reinterpret_cast<float*>(base + L.xm);
            moe_tmv_decode(gu, dn, x, n_dec, fold, w.gate.type, w.down.type, xs, xm,
                           reinterpret_cast<uint4*>(base + L.gs), reinterpret_cast<float*>(base + L.gm), s,
                           pre.xs != nullptr);
            continue;
        }
        if (path == 0 && fold) {
            WO_CUDA_FOR_WEIGHT(
                w.gate, "moe_ffn gate/up",
                (launch("fold_gate_up_kernel", fold_gate_up_kernel<kT, kP>,
                        dim3(static_cast<unsigned>(dec_pairs), ctas(blocks_gu)), kBlockThreads, 0, s, gu)));
            WO_CUDA_FOR_WEIGHT(w.down, "moe_ffn down",
                               (launch("fold_down_kernel", fold_down_kernel<kT, kP>,
                                       dim3(static_cast<unsigned>(n_dec), static_cast<unsigned>(blocks_dn)),
                                       static_cast<unsigned>(32 * k), 0, s, dn)));
            continue;
        }
        const int64_t tiles = path == 1 ? max_tiles(n_exp, p1 - p0) : 0;
        gu.gr = dn.gr = group(path, p0, p1);
        if (path == 0) {
            // At most min(n_exp, pairs) experts are touched: CTAs for those only.
            const unsigned n_slots_exp = static_cast<unsigned>(std::min<int64_t>(n_exp, p1 - p0));
            const dim3 grid_gu(n_slots_exp, static_cast<unsigned>((n_ff + kWarpRows - 1) / kWarpRows));
            const dim3 grid_dn(n_slots_exp, static_cast<unsigned>((d + kWarpRows - 1) / kWarpRows));
            if (warp_per_rows(int64_t(n_slots_exp) * blocks_gu) && (n_dec == 1 || warp_passes())) {
                // gate_up: passes of 2 (4 rows x 2 tokens x 4 ranges accumulators); down: of 4.
                const dim3 g_gu(n_slots_exp, ctas(blocks_gu)), g_dn(n_slots_exp, ctas(blocks_dn));
                if (n_dec == 1) {
                    WO_CUDA_FOR_WEIGHT(w.gate, "moe_ffn gate/up",
                                       (launch("expert_warp_kernel", expert_warp_kernel<kT, kP, true, 1>,
                                               g_gu, kBlockThreads, 0, s, gu)));
                    WO_CUDA_FOR_WEIGHT(w.down, "moe_ffn down",
                                       (launch("expert_warp_kernel", expert_warp_kernel<kT, kP, false, 1>,
                                               g_dn, kBlockThreads, 0, s, dn)));
                } else {
                    WO_CUDA_FOR_WEIGHT(w.gate, "moe_ffn gate/up",
                                       (launch("expert_warp_kernel", expert_warp_kernel<kT, kP, true, 2>,
                                               g_gu, kBlockThreads, 0, s, gu)));
                    WO_CUDA_FOR_WEIGHT(
                        w.down, "moe_ffn down",
                        (launch("expert_warp_kernel", expert_warp_kernel<kT, kP, false, kWarpPassTokens>,
                                g_dn, kBlockThreads, 0, s, dn)));
                }
            } else if (n_dec <= narrow_max_tokens()) {
                WO_CUDA_FOR_WEIGHT(w.gate, "moe_ffn gate/up",
                                   (launch("expert_kernel", expert_kernel<kT, kP, true, false>, grid_gu,
                                           kBlockThreads, 0, s, gu)));
                WO_CUDA_FOR_WEIGHT(w.down, "moe_ffn down",
                                   (launch("expert_kernel", expert_kernel<kT, kP, false, false>, grid_dn,
                                           kBlockThreads, 0, s, dn)));
            } else {
                WO_CUDA_FOR_WEIGHT(w.gate, "moe_ffn gate/up",
                                   (launch("expert_kernel", expert_kernel<kT, kP, true, true>, grid_gu,
                                           kBlockThreads, 0, s, gu)));
                WO_CUDA_FOR_WEIGHT(w.down, "moe_ffn down",
                                   (launch("expert_kernel", expert_kernel<kT, kP, false, true>, grid_dn,
                                           kBlockThreads, 0, s, dn)));
            }
            check_launch("moe down kernel launch");
        } else if (tmm) {
            moe_tmm_prompt(gu, dn, x, n_dec, tiles, w.gate.type, w.down.type,
                           reinterpret_cast<uint4*>(base + L.xs), reinterpret_cast<float*>(base + L.xm),
                           reinterpret_cast<uint4*>(base + L.gs), reinterpret_cast<float*>(base + L.gm), s);
        } else {
            WO_CHECK(tiles < (int64_t(1) << 31), "cuda moe_ffn: grid limits");
            const dim3 grid_gu(static_cast<unsigned>(tiles), static_cast<unsigned>((n_ff + 31) / 32));
            WO_CUDA_FOR_WEIGHT(w.gate, "moe_ffn gate/up",
                               (launch("expert_mma_kernel", expert_mma_kernel<kT, kP, true>, grid_gu,
                                       kMmaThreads, 0, s, gu)));
            check_launch("moe gate/up mma kernel launch");
            const dim3 grid_dn(static_cast<unsigned>(tiles),
                               static_cast<unsigned>((d + kMmaRows - 1) / kMmaRows));
            WO_CUDA_FOR_WEIGHT(w.down, "moe_ffn down",
                               (launch("expert_mma_kernel", expert_mma_kernel<kT, kP, false>, grid_dn,
                                       kMmaThreads, 0, s, dn)));
            check_launch("moe down mma kernel launch");
        }
    }

    CombineArgs ca{static_cast<uint8_t*>(y.data),
                   y.nb1,
                   static_cast<const uint8_t*>(ids.data),
                   static_cast<const uint8_t*>(weights.data),
                   ids.nb1,
                   weights.nb1,
                   O,
                   d,
                   int(k),
                   int(n_exp),
                   fold ? n_dec : 0};
    if (ca.i0 == n) return;  // every token's combine was folded into the down pass
    launch("combine_kernel", combine_kernel,
           dim3(static_cast<unsigned>((d + 255) / 256), static_cast<unsigned>(n - ca.i0)), 256, 0, s, ca);
    check_launch("moe combine kernel launch");
}

}  // namespace wo::cuda
