// Router top-k + softmax: one warp per token. One thread per token was ~3 us of serial loads at
// batch 1 (bench/NOTES.md). The lanes go over the experts (lane e holds experts e, e + 32, ...);
// k rounds of selection in (logit desc, id asc) order with NaN ranked last, each a warp reduction
// of the lanes' best (exact: comparisons only, so any tree gives the serial loop's pick), then the
// softmax over the k chosen logits by lane 0, exactly the CPU's float formula.
#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

constexpr int kTopkWarps = 4;  // tokens per CTA

__device__ inline float rank_key(float v) { return isnan(v) ? -INFINITY : v; }

// Whether (ka, ea) ranks before (kb, eb): a larger key, or an equal key and a lower id; eb < 0 is
// no candidate.
__device__ inline bool ranks_before(float ka, int ea, float kb, int eb) {
    return ea >= 0 && (eb < 0 || ka > kb || (ka == kb && ea < eb));
}

// Every lane of the warp calls it for the same token.
__device__ inline void topk_row(const float* l, int32_t* ids, float* wr, int n_exp, int k) {
    const int lane = int(threadIdx.x & 31);
    // Round j picks the best expert ranked strictly after the previous pick.
    int prev = -1;
    float prev_key = INFINITY;
    for (int j = 0; j < k; ++j) {
        int best = -1;
        float bk = 0.0f;
        for (int e = lane; e < n_exp; e += 32) {
            const float ke = rank_key(__ldcg(l + e));
            const bool after = prev < 0 || ke < prev_key || (ke == prev_key && e > prev);
            if (after && ranks_before(ke, e, bk, best)) best = e, bk = ke;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ko = __shfl_xor_sync(0xFFFFFFFFu, bk, o);
            const int eo = __shfl_xor_sync(0xFFFFFFFFu, best, o);
            if (ranks_before(ko, eo, bk, best)) best = eo, bk = ko;
        }
        if (lane == 0) ids[j] = best;
        prev = best;
        prev_key = bk;
    }
    if (lane != 0) return;
    const float m = __ldcg(l + ids[0]);
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum += expf(__ldcg(l + ids[j]) - m);
    for (int j = 0; j < k; ++j) wr[j] = expf(__ldcg(l + ids[j]) - m) / sum;
}

__global__ void __launch_bounds__(32 * kTopkWarps)
    topk_softmax_k(Rows ids_f, Rows w, Rows logits, int64_t n, int n_exp, int k) {
    pdl_begin();
    const int64_t i = blockIdx.x * int64_t(kTopkWarps) + (threadIdx.x >> 5);
    if (i >= n) return;  // the whole warp
    topk_row(logits.row(i), reinterpret_cast<int32_t*>(ids_f.row(i)), w.row(i), n_exp, k);
}

}  // namespace

void topk_softmax(Tensor ids, Tensor weights, Tensor logits, int k, cudaStream_t s) {
    const int64_t n_exp = logits.cols();
    WO_CHECK(k >= 1 && k <= n_exp && ids.cols() == k && weights.cols() == k && ids.type == GgmlType::I32 &&
                 ids.rows() >= logits.rows() && weights.rows() >= logits.rows(),
             "topk_softmax shapes");
    const int64_t n = logits.rows();
    if (n == 0) return;
    Rows ir{static_cast<float*>(ids.data), static_cast<int64_t>(ids.nb1 / sizeof(int32_t))};
    launch("topk_softmax_k", topk_softmax_k, static_cast<unsigned>((n + kTopkWarps - 1) / kTopkWarps),
           32 * kTopkWarps, 0, s, ir, rows_of(weights), rows_of(logits), n, static_cast<int>(n_exp), k);
    check_launch("topk_softmax");
}

}  // namespace wo::cuda
