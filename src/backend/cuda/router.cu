// Router top-k + softmax: one thread per token (n_expert is small), k rounds of selection in
// (logit desc, id asc) order with NaN ranked last, softmax over the k chosen logits, exactly
// the CPU's float formula.
#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

__device__ inline float rank_key(float v) { return isnan(v) ? -INFINITY : v; }

__global__ void topk_softmax_k(Rows ids_f, Rows w, Rows logits, int64_t n, int n_exp, int k) {
    pdl_begin();
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const float* l = logits.row(i);
    int32_t* ids = reinterpret_cast<int32_t*>(ids_f.row(i));
    float* wr = w.row(i);
    // Round j picks the best expert ranked strictly after the previous pick.
    int prev = -1;
    float prev_key = INFINITY;
    for (int j = 0; j < k; ++j) {
        int best = -1;
        float bk = 0.0f;
        for (int e = 0; e < n_exp; ++e) {
            const float ke = rank_key(l[e]);
            const bool after = prev < 0 || ke < prev_key || (ke == prev_key && e > prev);
            if (after && (best < 0 || ke > bk)) best = e, bk = ke;  // ties keep the lower id
        }
        ids[j] = best;
        prev = best;
        prev_key = bk;
    }
    const float m = l[ids[0]];
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum += expf(l[ids[j]] - m);
    for (int j = 0; j < k; ++j) wr[j] = expf(l[ids[j]] - m) / sum;
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
    launch("topk_softmax_k", topk_softmax_k, static_cast<unsigned>((n + 127) / 128), 128, 0, s, ir,
           rows_of(weights), rows_of(logits), n, static_cast<int>(n_exp), k);
    check_launch("topk_softmax");
}

}  // namespace wo::cuda
