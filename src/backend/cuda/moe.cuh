// What moe.cu (the MoE FFN's paths and launches) and moe_tmv.cu (its decode path on tensor
// cores) share: the expert passes' arguments, the activations and the tensor-core decode entry.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"

namespace wo::cuda {

// The (token, choice) pairs of one path grouped by expert: counts, offsets (n_exp + 1), the
// touched experts in id order (-1 after the last), the pair ids grouped by expert, and for the
// prompt path the work tiles: expert e << 16 | tile j for each kMmaToks pairs of e (-1 after).
struct Groups {
    int32_t *counts, *offsets, *active, *list, *tiles;
};

// The arguments of one expert pass (gate_up or down) of moe_ffn.
struct ExpertArgs {
    // weights of the pass (gate_up: w = gate, w2 = up; down: w only), per expert at e * nb2
    const uint8_t *w, *w2;
    size_t nb1, nb2, nb1_2, nb2_2;
    const float *bias, *bias2;  // [n_out, n_exp] F32 or null
    size_t bias_nb1, bias2_nb1;
    int64_t n_in, n_out;
    // input row of pair p: x + (p / x_div) * x_nb1 (x_div = k for the token rows, 1 for G)
    const uint8_t* x;
    size_t x_nb1;
    int x_div;
    bool xvec;
    float* out;  // [n_out] per pair, row p at out + p * n_out
    // The tensor-core decode's input: split row of pair p at xs + (p / x_div) * n_in / 4, its
    // multipliers at xm + (p / x_div) * n_in / 32 (tmv.cuh).
    const uint4* xs;
    const float* xm;
    Groups gr;
    // The routing, for the fold kernels: ids/weights [k] per token, y [n_out] per token.
    const uint8_t *ids, *wts;
    size_t ids_nb1, wts_nb1;
    uint8_t* y;
    size_t y_nb1;
    int k, n_exp;
    MoeAct act;
    float alpha, limit;
    // The tensor-core fold down pass by pairs: per (token, tile of 16 rows) an arrival counter,
    // zero between launches (the last CTA of a tile resets it).
    int32_t* cnt;
};

__device__ __forceinline__ float silu_mul(float g, float u) {
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}
// backend/cpu/row.h swiglu_oai_1, with std::min / std::clamp's NaN behaviour (a NaN passes).
__device__ __forceinline__ float swiglu_oai(float g, float u, float alpha, float limit) {
    g = limit < g ? limit : g;
    u = u < -limit ? -limit : (limit < u ? limit : u);
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(__fmul_rn(-alpha, g)))), __fadd_rn(u, 1.0f));
}

// The decode path of at most kFoldTokens tokens may skip the grouping (the "fold" kernels).
constexpr int64_t kFoldTokens = 4;
// The tensor-core fold passes take at most this many choices per token.
constexpr int kTmvFoldMaxK = 4;

// The decode path on tensor cores (moe_tmv.cu) for Q8_0 / MXFP4 experts in the DEVICE layout:
// split x's rows [0, n_dec) into xs / xm (unless `presplit`: xs / xm hold it), gate_up into
// gu.out (G), split G into gs / gm, then
// down: fold (n_dec <= kFoldTokens, k <= kTmvFoldMaxK: no grouping, the combine into y done by
// the down pass) or grouped (after group_kernel filled gu.gr / dn.gr: into dn.out (O), for
// combine_kernel). tg / td: the gate/up and down types.
void moe_tmv_decode(ExpertArgs gu, ExpertArgs dn, const Tensor& x, int64_t n_dec, bool fold, GgmlType tg,
                    GgmlType td, uint4* xs, float* xm, uint4* gs, float* gm, cudaStream_t s, bool presplit = false);
// Entries of ExpertArgs::cnt the tensor-core fold down pass needs for d output rows: a CTA per
// (pair, tile of 16 rows), the last of a token's k CTAs of a tile adding them into y.
inline int64_t moe_fold_counters(int64_t d) { return kFoldTokens * ((d + 15) / 16); }
// The prompt path on tensor cores from split activations (moe_tmv.cu, tmm.cuh), after
// group_kernel filled gu.gr / dn.gr with `tiles` work tiles for the pairs of tokens [n_dec,
// x.rows()): split those tokens' rows of x, gate_up into G, split their G rows, down into O.
void moe_tmm_prompt(ExpertArgs gu, ExpertArgs dn, const Tensor& x, int64_t n_dec, int64_t tiles, GgmlType tg,
                    GgmlType td, uint4* xs, float* xm, uint4* gs, float* gm, cudaStream_t s);

}  // namespace wo::cuda
