// Router top-k + softmax: one warp per token (topk.cuh's topk_row). One thread per token was
// ~3 us of serial loads at batch 1 (bench/NOTES.md).
#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/topk.cuh"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

constexpr int kTopkWarps = 4;  // tokens per CTA

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
