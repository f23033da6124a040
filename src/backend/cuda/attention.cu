// Attention over the F16 KV cache: one block per (token, head), keys in chunks of one per thread,
// online softmax in f32, sinks joined at the end, GQA by head group, sliding window by position.
// A token's reduction order depends only on its own span of keys (never on the batch).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

constexpr int kThreads = 128;  // also the keys per chunk
constexpr int kMaxHeadDim = 256;
constexpr int kAcc = 2;  // output elements per thread: head_dim * parts <= kThreads * kAcc

__device__ __forceinline__ float get(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float get(const float* p) { return *p; }

template <typename C>
struct AttnArgs {
    Rows out, q;
    const C *k, *v;
    int64_t row_ld, slot_ld;  // in halves
    int n_rows, n_slots;
    const int32_t *pos, *slot;
    int n_head, group, hd, parts;
    float scale;
    int window;
    const float* sinks;
};

template <typename C>
__global__ void __launch_bounds__(kThreads) attention_k(AttnArgs<C> a) {
    extern __shared__ float sm[];
    float* qs = sm;                // [hd]
    float* ps = qs + a.hd;         // [kThreads] probabilities of the chunk
    float* red = ps + kThreads;    // [kThreads] reductions
    float* part = red + kThreads;  // [parts * hd] per-part outputs
    const int t = threadIdx.x;
    const int64_t i = blockIdx.x / a.n_head;
    const int h = static_cast<int>(blockIdx.x % a.n_head);
    const int32_t p = a.pos[i], sl = a.slot[i];
    if (p < 0 || sl < 0 || sl >= a.n_slots) __trap();
    const int32_t j0 = a.window > 0 ? max(0, p - a.window + 1) : 0;
    const int len = p - j0 + 1;
    if (len > a.n_rows) __trap();  // the cache no longer holds keys this query must see
    const float* qh = a.q.row(i) + static_cast<int64_t>(h) * a.hd;
    for (int c = t; c < a.hd; c += kThreads) qs[c] = qh[c];
    const int64_t head_off = sl * a.slot_ld + static_cast<int64_t>(h / a.group) * a.hd;
    const C* K = a.k + head_off;
    const C* V = a.v + head_off;
    __syncthreads();

    float m = -INFINITY, l = 0.0f;
    float acc[kAcc] = {0.0f, 0.0f};
    const int n_el = a.hd * a.parts;
    for (int c0 = 0; c0 < len; c0 += kThreads) {
        const int nc = min(kThreads, len - c0);
        float sc = -INFINITY;
        if (t < nc) {
            const C* kr = K + static_cast<int64_t>((j0 + c0 + t) % a.n_rows) * a.row_ld;
            float d = 0.0f;
            for (int e = 0; e < a.hd / 2; ++e) d += qs[2 * e] * get(kr + 2 * e) + qs[2 * e + 1] * get(kr + 2 * e + 1);
            sc = d * a.scale;
        }
        const float cmax = block_max(sc, red);
        const float m_new = fmaxf(m, cmax);
        const float alpha = m == -INFINITY ? 0.0f : expf(m - m_new);
        const float pr = sc == -INFINITY ? 0.0f : expf(sc - m_new);
        ps[t] = pr;
        l = l * alpha + block_sum(pr, red);  // block_sum synchronizes, so ps is complete
        m = m_new;
        for (int r = 0; r < kAcc; ++r) {
            const int e = t + r * kThreads;
            if (e >= n_el) break;
            const int c = e % a.hd, pt = e / a.hd;
            float s = 0.0f;
            for (int jj = pt; jj < nc; jj += a.parts)
                s += ps[jj] * get(V + static_cast<int64_t>((j0 + c0 + jj) % a.n_rows) * a.row_ld + c);
            acc[r] = acc[r] * alpha + s;
        }
        __syncthreads();  // ps is rewritten by the next chunk
    }
    // The sink joins the denominator only (it has no value vector).
    if (a.sinks) {
        const float sk = a.sinks[h];
        const float mf = fmaxf(m, sk);
        const float corr = expf(m - mf);
        l = l * corr + expf(sk - mf);
        for (float& x : acc) x *= corr;
    }
    for (int r = 0; r < kAcc; ++r) {
        const int e = t + r * kThreads;
        if (e < n_el) part[e] = acc[r];
    }
    __syncthreads();
    float* o = a.out.row(i) + static_cast<int64_t>(h) * a.hd;
    for (int c = t; c < a.hd; c += kThreads) {
        float s = 0.0f;
        for (int pt = 0; pt < a.parts; ++pt) s += part[pt * a.hd + c];
        o[c] = s / l;
    }
}

}  // namespace

template <typename C>
void launch(Tensor out, Tensor q, KvLayer kv, const StepTensors& st, const AttnParams& p, cudaStream_t s);

void attention(Tensor out, Tensor q, KvLayer kv, const StepTensors& st, const AttnParams& p, cudaStream_t s) {
    const int64_t n = q.rows(), hd = p.head_dim;
    WO_CHECK(p.n_head_kv > 0 && p.n_head % p.n_head_kv == 0 && q.cols() == p.n_head * hd &&
                 kv.k.cols() == p.n_head_kv * hd &&
                 (kv.k.type == GgmlType::F16 || kv.k.type == GgmlType::F32) && kv.v.type == kv.k.type && out.cols() == p.n_head * hd && n == st.n && hd % 2 == 0 &&
                 hd <= kMaxHeadDim && kv.k.nb1 == kv.v.nb1 && kv.k.nb2 == kv.v.nb2 &&
                 (!p.sinks || p.sinks->cols() >= p.n_head),
             "attention shapes");
    if (n == 0) return;
    if (kv.k.type == GgmlType::F16)
        launch<__half>(out, q, kv, st, p, s);
    else
        launch<float>(out, q, kv, st, p, s);
}

template <typename C>
void launch(Tensor out, Tensor q, KvLayer kv, const StepTensors& st, const AttnParams& p, cudaStream_t s) {
    const int64_t n = q.rows(), hd = p.head_dim;
    AttnArgs<C> a;
    a.out = rows_of(out);
    a.q = rows_of(q);
    a.k = static_cast<const C*>(kv.k.data);
    a.v = static_cast<const C*>(kv.v.data);
    a.row_ld = static_cast<int64_t>(kv.k.nb1 / sizeof(C));
    a.slot_ld = static_cast<int64_t>(kv.k.nb2 / sizeof(C));
    a.n_rows = kv.n_rows;
    a.n_slots = static_cast<int>(kv.k.mats());
    a.pos = i32_of(st.pos);
    a.slot = i32_of(st.slot);
    a.n_head = p.n_head;
    a.group = p.n_head / p.n_head_kv;
    a.hd = static_cast<int>(hd);
    a.parts = std::max(1, kThreads / a.hd);
    a.scale = p.scale;
    a.window = p.window;
    a.sinks = p.sinks ? static_cast<const float*>(p.sinks->data) : nullptr;
    WO_CHECK(a.hd * a.parts <= kThreads * kAcc, "attention head_dim");
    const size_t smem =
        sizeof(float) * (static_cast<size_t>(a.hd) + 2 * kThreads + static_cast<size_t>(a.hd * a.parts));
    attention_k<C><<<static_cast<unsigned>(n * p.n_head), kThreads, smem, s>>>(a);
    check_launch("attention");
}

}  // namespace wo::cuda
