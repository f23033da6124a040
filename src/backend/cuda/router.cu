// Router top-k + softmax: one thread per token (n_expert is small), k rounds of selection in
// (logit desc, id asc) order with NaN ranked last, softmax over the k chosen logits, exactly
// the CPU's float formula.
// router_topk fuses the decode rows' router matmul in front of it: the CTAs of matmul's decode
// kernel (kWarpRows experts each, cta_dots of matvec.cuh, so the logits are matmul's bits), and
// the last CTA to finish ranks every token with the same topk_row as topk_softmax.
#include <cmath>

#include "backend/cuda/kernels.h"
#include "backend/cuda/matvec.cuh"  // cta_dots, check_launch (not check.h: it declares check_launch too)
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

__device__ inline float rank_key(float v) { return isnan(v) ? -INFINITY : v; }

// Logit e of a row: a plain load, or (L2) one that skips L1, for logits other CTAs of the same
// launch wrote (L1 is not coherent between SMs).
template <bool L2>
__device__ __forceinline__ float logit(const float* l, int e) {
    if constexpr (L2)
        return __ldcg(l + e);
    else
        return l[e];
}

// One token's top-k and softmax: the single body behind topk_softmax and router_topk, so both
// give the same bits.
template <bool L2>
__device__ __forceinline__ void topk_row(const float* l, int32_t* ids, float* wr, int n_exp, int k) {
    // Round j picks the best expert ranked strictly after the previous pick.
    int prev = -1;
    float prev_key = INFINITY;
    for (int j = 0; j < k; ++j) {
        int best = -1;
        float bk = 0.0f;
        for (int e = 0; e < n_exp; ++e) {
            const float ke = rank_key(logit<L2>(l, e));
            const bool after = prev < 0 || ke < prev_key || (ke == prev_key && e > prev);
            if (after && (best < 0 || ke > bk)) best = e, bk = ke;  // ties keep the lower id
        }
        ids[j] = best;
        prev = best;
        prev_key = bk;
    }
    const float m = logit<L2>(l, ids[0]);
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum += expf(logit<L2>(l, ids[j]) - m);
    for (int j = 0; j < k; ++j) wr[j] = expf(logit<L2>(l, ids[j]) - m) / sum;
}

__global__ void topk_softmax_k(Rows ids_f, Rows w, Rows logits, int64_t n, int n_exp, int k) {
    pdl_begin();
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    topk_row<false>(logits.row(i), reinterpret_cast<int32_t*>(ids_f.row(i)), w.row(i), n_exp, k);
}

struct RouterArgs {
    const uint8_t* w;
    size_t w_nb1;
    int64_t n_in, n_exp;
    const uint8_t* x;
    size_t x_nb1;
    Rows logits, ids, weights;
    int64_t n_tok;
    const float* bias;
    bool xvec;
    int k;
    unsigned* done;  // CTAs finished in this launch; 0 between launches
};

// blockIdx.x = block of kWarpRows experts, as matmul_kernel: each token's logits are those of
// matmul_pass<T, P, 1> (same rows, same cta_dots call, same bias add). Then the threadfence
// reduction pattern: every CTA publishes its logits and counts itself done; the last one, which
// sees all of them, ranks every token and resets the counter for the next launch (graph replays
// included: the launches of one stream never overlap).
template <GgmlType T, bool P>
__global__ void __launch_bounds__(kBlockThreads) router_topk_kernel(RouterArgs a) {
    pdl_begin();
    __shared__ float sh[kSplit * kWarpRows];
    __shared__ bool last;
    const int64_t r0 = int64_t(blockIdx.x) * kWarpRows;
    const uint8_t* w[kWarpRows];
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r)
        w[r] = a.w + size_t(r0 + r < a.n_exp ? r0 + r : a.n_exp - 1) * a.w_nb1;
    for (int64_t t = 0; t < a.n_tok; ++t) {
        const float* x[1] = {reinterpret_cast<const float*>(a.x + size_t(t) * a.x_nb1)};
        const float dot = cta_dots<T, P, kWarpRows, 1>(w, a.n_in, x, a.xvec, sh);
        if (threadIdx.x < kWarpRows) {
            const int64_t r = r0 + threadIdx.x;
            // As matmul: s = dot + bias (or + 0).
            if (r < a.n_exp) a.logits.row(t)[r] = __fadd_rn(dot, a.bias ? a.bias[r] : 0.0f);
        }
    }
    __threadfence();  // this CTA's logits visible device-wide before it counts itself done
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(a.done, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int64_t t = threadIdx.x; t < a.n_tok; t += blockDim.x)
        topk_row<true>(a.logits.row(t), reinterpret_cast<int32_t*>(a.ids.row(t)), a.weights.row(t),
                       static_cast<int>(a.n_exp), a.k);
    if (threadIdx.x == 0) *a.done = 0;
}

Rows i32_rows(const Tensor& t) {
    return {static_cast<float*>(t.data), static_cast<int64_t>(t.nb1 / sizeof(int32_t))};
}

void check_topk(const Tensor& ids, const Tensor& weights, int64_t n_exp, int64_t n, int k) {
    WO_CHECK(k >= 1 && k <= n_exp && ids.cols() == k && weights.cols() == k && ids.type == GgmlType::I32 &&
                 ids.rows() >= n && weights.rows() >= n,
             "topk_softmax shapes");
}

}  // namespace

void topk_softmax(Tensor ids, Tensor weights, Tensor logits, int k, cudaStream_t s) {
    const int64_t n_exp = logits.cols(), n = logits.rows();
    check_topk(ids, weights, n_exp, n, k);
    if (n == 0) return;
    launch("topk_softmax_k", topk_softmax_k, static_cast<unsigned>((n + 127) / 128), 128, 0, s, i32_rows(ids),
           rows_of(weights), rows_of(logits), n, static_cast<int>(n_exp), k);
    check_launch("topk_softmax");
}

void router_topk(Tensor ids, Tensor weights, Tensor logits, Tensor x, Tensor w, const float* bias, int k,
                 unsigned* done, cudaStream_t s) {
    const int64_t n_exp = w.rows(), n = x.rows();
    WO_CHECK(x.type == GgmlType::F32 && logits.type == GgmlType::F32 && x.cols() == w.cols() &&
                 logits.cols() == n_exp && logits.rows() >= n && w.mats() == 1 && done,
             "router_topk shapes");
    check_topk(ids, weights, n_exp, n, k);
    if (n == 0) return;
    // Any n_expert works: the ranking is one thread per token over all experts, as topk_softmax.
    WO_CHECK(n_exp < (int64_t(1) << 31), "router_topk: too many experts");
    const RouterArgs a{static_cast<const uint8_t*>(w.data),
                       w.nb1,
                       w.cols(),
                       n_exp,
                       static_cast<const uint8_t*>(x.data),
                       x.nb1,
                       rows_of(logits),
                       i32_rows(ids),
                       rows_of(weights),
                       n,
                       bias,
                       aligned16(x.data, x.nb1),
                       k,
                       done};
    const dim3 grid(static_cast<unsigned>((n_exp + kWarpRows - 1) / kWarpRows));
    WO_CUDA_FOR_WEIGHT(
        w, "router_topk",
        (launch("router_topk_kernel", router_topk_kernel<kT, kP>, grid, kBlockThreads, 0, s, a)));
    check_launch("router_topk");
}

}  // namespace wo::cuda
