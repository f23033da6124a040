// The CUDA kernel families the backend (cuda_backend.cu) launches, one .cu file per family.
// Every function queues work on `s` and returns at once; none allocates or synchronizes, so all
// of them can be captured in a CUDA graph. Tensors are device views in the conventions of
// backend/backend.h. Batch invariance: the reduction order of every output element is fixed by
// the op's shapes other than the token count, so a token's result never depends on which other
// tokens share its step.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "backend/backend.h"

namespace wo::cuda {

// ---- matmul.cu (weights of every type quant/ reads, GGUF or DEVICE layout)
// y[t] = (accumulate ? y[t] : 0) + x[t]·wᵀ + bias, t < x.rows(); bias: F32 [w.rows()] or null.
// matmul is the decode path (CUDA cores, fp32 FMAs in matvec.cuh's order); matmul_mma the prompt
// path (tensor cores, split-bf16 products in mma.cuh's order). Each is batch invariant on its own;
// the backend sends a step's generated tokens to the first and its prompt tokens to the second,
// but every token to the first for weights of fewer than kMmaMinRows rows (the router's 32: one
// 64-row tile per 64 tokens leaves the GPU idle, 148 us per layer at 512 tokens on the H200).
constexpr int64_t kMmaMinRows = 128;
void matmul(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, cudaStream_t s);
void matmul_mma(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, cudaStream_t s);
// The decode path on tensor cores (tmv.cuh) for weights where matmul_tmv_weight(w): Q8_0 / MXFP4
// in the DEVICE layout with >= 1024 rows (WO_CUDA_TMV=0: none). The backend sends every decode
// row of such a weight here (batch invariant on its own). `scratch` holds
// matmul_tmv_scratch_bytes(x.rows(), x.cols()) bytes (the activations' split).
bool matmul_tmv_weight(const Tensor& w);
// The K ranges (warps of a CTA) of matmul_tmv's order for a weight of n_out rows: 16 below 16384
// rows (few tiles: more warps per tile), else 4.
int matmul_tmv_ranges(int64_t n_out);
size_t matmul_tmv_scratch_bytes(int64_t max_tokens, int64_t max_cols);
// Calls of at least this many tokens on weights of 4 ranges (the LM head) run matmul_tmv's wide
// kernel (tmm.cuh's tiles in tmv.cuh's order: the same bits, each block's codes converted once per
// 64 tokens); WO_CUDA_TMV_WIDE=n sets it per process, set_tmv_wide_min_tokens for tests (returns
// the old value).
constexpr int64_t kTmvWideMinTokens = 17;
int64_t set_tmv_wide_min_tokens(int64_t n);
// Calls of kTmvPartsMinTokens to kTmvPartsMaxTokens tokens on weights of 16 ranges (q / k / v / o)
// run matmul_tmv's parts kernels (the wide kernel's tiles split along K into groups of ranges,
// the ranges' sums added in order by a second kernel: the same bits) when the scratch holds
// matmul_tmv_parts_bytes(tokens, rows of the call) beyond matmul_tmv_scratch_bytes; 0 = never.
// From 33 tokens: +6% / +9.5% at 64 / 128 streams on the H200, and 9 lost 9% at 32 (bench/NOTES.md,
// eighteenth session). WO_CUDA_TMV_PARTS=n sets it per process (WO_CUDA_TMV_PARTS_RPC: ranges
// per CTA, 2 = 8 CTAs along K, the default; 1 or 4), set_tmv_parts_min_tokens for tests (returns
// the old value). matmul_tmv_parts_bytes is 0 while the kernels are off.
constexpr int64_t kTmvPartsMinTokens = 33, kTmvPartsMaxTokens = 128;
int64_t set_tmv_parts_min_tokens(int64_t n);
size_t matmul_tmv_parts_bytes(int64_t max_tokens, int64_t max_rows);
// A split of x's rows made before the call (rms_norm_split's, in tmv_split's layout at x.cols()),
// so the product skips tmv_split: the same operands, the same bits.
struct PreSplit {
    const uint4* xs = nullptr;
    const float* xm = nullptr;
};
void matmul_tmv(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, void* scratch, size_t bytes,
                cudaStream_t s);
void matmul_tmv_presplit(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, void* scratch,
                         size_t bytes, cudaStream_t s, PreSplit pre);
// The prompt path on tensor cores from split activations (tmm.cuh) for weights where
// tmm_weight(w): Q8_0 / MXFP4 in the DEVICE layout (WO_CUDA_TMM=0 or WO_CUDA_TMV=0: none; they
// take matmul_mma).
// The backend sends every prompt row of such a weight here; `scratch` as matmul_tmv's.
bool tmm_weight(const Tensor& w);
void matmul_tmm(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, void* scratch, size_t bytes,
                cudaStream_t s);
// Products of up to 3 weights with the same activations (the q / k / v projections) in one split
// and one launch: y[i] = (accumulate ? y[i] : 0) + x·w[i]ᵀ + bias[i] for i < n, each element's
// bits those of matmul_tmv (matmul_tmm) of its weight alone. The weights: tmv_weight, one type,
// one column count; for matmul_tmv_group also one matmul_tmv_ranges.
struct MatmulSet {
    Tensor y[3], w[3];
    const float* bias[3] = {};
    int n = 0;
    bool accumulate = false;
};
void matmul_tmv_group(const MatmulSet& m, Tensor x, void* scratch, size_t bytes, cudaStream_t s);
void matmul_tmv_group_presplit(const MatmulSet& m, Tensor x, void* scratch, size_t bytes, cudaStream_t s,
                               PreSplit pre);
void matmul_tmm_group(const MatmulSet& m, Tensor x, void* scratch, size_t bytes, cudaStream_t s);
// Tests: calls of few tokens over at least `blocks` blocks of 2 weight rows take the
// warp-per-rows kernels (matvec.cuh, warp_per_rows; the same bits either way). Returns the old value.
int64_t set_warp_min_blocks(int64_t blocks);
// Ranges per warp of the 16-range decode products (q / k / v / o): 2 (8 warps per tile, each
// walking two consecutive ranges as one stream; the default) or 1 (16 warps; the same bits).
// WO_CUDA_TMV_RPW=1 per process, set_tmv_rpw for tests (returns the old value).
int set_tmv_rpw(int rpw);
// y[i] = table[ids[i]] as F32 (add: y[i] += ...), any table type.
void embed(Tensor y, Tensor table, Tensor ids, bool add, cudaStream_t s);
// Load-time repack of a weight into a layout its matmul reads faster (may return `w` as is).
// `dst` has repack_bytes(w) bytes of device memory; `w` is in GGUF order, on the device.
size_t repack_bytes(const Tensor& w);
Tensor repack(const Tensor& w, void* dst, cudaStream_t s);

// ---- moe.cu
// Scratch bytes moe_ffn needs for steps within `l`.
size_t moe_scratch_bytes(const StepLimits& l);
// Backend::moe_ffn with expert ids that never leave the device: (token, choice) pairs grouped by
// expert on the device, each touched expert's weights read once. Tokens [0, n_decode) take the
// decode path (tensor cores for DEVICE-layout Q8_0 / MXFP4 experts, tmv.cuh; else matvec.cuh),
// the rest the prompt path (the same experts: tmm.cuh; else mma.cuh), as matmul_tmv / matmul_tmm
// or matmul / matmul_mma. The first moe_scratch_zero_bytes() of `scratch` must be zero before the
// first call (counters; every call leaves them zero again).
size_t moe_scratch_zero_bytes(int64_t d);
// pre: the split of x's decode rows, made before (rms_norm_split), for the tensor-core decode path.
void moe_ffn(Tensor y, Tensor x, Tensor ids, Tensor weights, const MoeFfn& w, void* scratch,
             size_t scratch_bytes, int64_t n_decode, cudaStream_t s, PreSplit pre = {});

// ---- norm.cu, act.cu, rope.cu, attention.cu, router.cu, sample.cu, tokens.cu
void rms_norm(Tensor y, Tensor x, Tensor w, float eps, cudaStream_t s);
// rms_norm, and rows [0, rows) of y also split for the tensor-core products (tmv_split's layout
// and bits: row r at xs + r * x.cols() / 4, xm + r * x.cols() / 32) in the same launch, when
// rms_norm_splits(x.cols()).
bool rms_norm_splits(int64_t d);
void rms_norm_split(Tensor y, Tensor x, Tensor w, float eps, uint4* xs, float* xm, int64_t rows, cudaStream_t s);
void layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps, cudaStream_t s);
void add(Tensor y, Tensor x, cudaStream_t s);
void get_rows(Tensor y, Tensor x, Tensor idx, cudaStream_t s);
void gelu(Tensor x, cudaStream_t s);
void swiglu(Tensor y, Tensor gate, Tensor up, cudaStream_t s);
void swiglu_oai(Tensor y, Tensor gate, Tensor up, float alpha, float limit, cudaStream_t s);
void rope(Tensor x, Tensor pos, const RopeParams& p, cudaStream_t s);
void kv_store(KvLayer kv, Tensor k, Tensor v, Tensor pos, Tensor slot, cudaStream_t s);
// One launch with the bits of rope(q, rq) (if rq), rope(k, rk) (if rk), then kv_store(k, v): q and
// k rotated in place, k and v stored in the cache.
void rope_kv_store(Tensor q, Tensor k, Tensor v, KvLayer kv, Tensor pos, Tensor slot, const RopeParams* rq,
                   const RopeParams* rk, cudaStream_t s);
// Rows [0, n_decode) are decode rows (16 warps per (token, head); an F16 cache with head_dim 64:
// tensor cores split over the keys once `scratch` is reserved, attention_scratch_bytes, rows
// going through it in batches of what it holds), the rest prompt rows (8 warps; F16 / head_dim
// 64: tensor cores, attention_mma.cu).
size_t attention_scratch_bytes(const StepLimits& l);
// split_xs / xm (optional): room for the split of out's decode rows (tmv_split's layout at
// out.cols()), written by the tensor-core decode rows' merge; returns whether it was written.
bool attention(Tensor out, Tensor q, KvLayer kv, const StepTensors& st, const AttnParams& p, int64_t n_decode,
               void* scratch, size_t scratch_bytes, cudaStream_t s, uint4* split_xs = nullptr,
               float* split_xm = nullptr);
void topk_softmax(Tensor ids, Tensor weights, Tensor logits, int k, cudaStream_t s);
size_t sample_scratch_bytes(const StepLimits& l);
void sample(Tensor ids, Tensor logits, Tensor slot, Tensor pos, SlotState st, void* scratch,
            size_t scratch_bytes, cudaStream_t s);
void resolve_tokens(Tensor tokens, Tensor in, Tensor pos, Tensor slot, SlotState st, cudaStream_t s);

}  // namespace wo::cuda
