// RoPE (NORM and NEOX pairs; angles pos·inv_freq in f32 from the load-time table) and the KV
// store (F32 k/v rounded to the F16 cache at row pos % n_rows of the token's slot), and both in
// one launch for attn_in (rope_kv_store: the same device functions, so the same bits).
#include <cuda_fp16.h>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

// One RoPE'd row set as the kernels see it (n_head = 0: nothing to rotate).
struct RopeArgs {
    Rows x;
    const float* inv;
    int n_head, head_dim, half;
    bool neox;
    float mscale;
};

RopeArgs rope_args(Tensor x, const RopeParams* p) {
    if (!p) return RopeArgs{rows_of(x), nullptr, 0, 0, 0, false, 1.0f};
    WO_CHECK(p->n_dims % 2 == 0 && p->n_dims <= p->head_dim &&
                 x.cols() >= static_cast<int64_t>(p->n_head) * p->head_dim &&
                 p->inv_freq.cols() == p->n_dims / 2 && p->inv_freq.data,
             "rope shapes");
    return RopeArgs{rows_of(x),          static_cast<const float*>(p->inv_freq.data),
                    p->n_head,           p->head_dim,
                    p->n_dims / 2,       p->mode == RopeMode::NEOX,
                    rope_attn_factor(*p)};
}

// Rotates pair j of head h of row t in place and returns the pair's column indices in the row:
// the one formula of rope and rope_kv_store, so both give the same bits.
__device__ __forceinline__ int2 rope_pair(const RopeArgs& r, int64_t t, int h, int j, int32_t pos) {
    const float theta = static_cast<float>(pos) * r.inv[j];  // f32 like the CPU and HF
    const float co = cosf(theta) * r.mscale, si = sinf(theta) * r.mscale;
    float* v = r.x.row(t) + static_cast<int64_t>(h) * r.head_dim;
    const int ia = r.neox ? j : 2 * j, ib = r.neox ? j + r.half : 2 * j + 1;
    const float a = v[ia], c = v[ib];
    // Explicit roundings: an FMA here would differ from the CPU by an ulp.
    v[ia] = __fsub_rn(__fmul_rn(a, co), __fmul_rn(c, si));
    v[ib] = __fadd_rn(__fmul_rn(c, co), __fmul_rn(a, si));
    return make_int2(h * r.head_dim + ia, h * r.head_dim + ib);
}

__global__ void rope_k(RopeArgs r, const int32_t* pos, int64_t n) {
    pdl_begin();
    const int64_t total = n * r.n_head * r.half;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int j = static_cast<int>(i % r.half);
        const int h = static_cast<int>((i / r.half) % r.n_head);
        const int64_t t = i / (static_cast<int64_t>(r.half) * r.n_head);
        rope_pair(r, t, h, j, pos[t]);
    }
}

__device__ __forceinline__ void put(__half* p, float x) { *p = __float2half_rn(x); }
__device__ __forceinline__ void put(float* p, float x) { *p = x; }

// The cache as the store kernels see it: element (slot, row, col) at slot * slot_ld + row * row_ld + col.
template <typename C>
struct Cache {
    C *k, *v;
    int64_t row_ld, slot_ld;
    int n_rows, n_slots;
    // Offset of column 0 of token t's row; traps on a broken invariant (the CPU aborts too).
    __device__ int64_t at(const int32_t* pos, const int32_t* slot, int64_t t) const {
        const int32_t ps = pos[t], sl = slot[t];
        if (ps < 0 || sl < 0 || sl >= n_slots) __trap();
        return sl * slot_ld + static_cast<int64_t>(ps % n_rows) * row_ld;
    }
};

template <typename C>
__global__ void kv_store_k(Cache<C> kc, Rows k, Rows v, const int32_t* pos, const int32_t* slot,
                           int64_t kv_dim, int64_t n) {
    pdl_begin();
    const int64_t total = n * kv_dim;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = i / kv_dim, c = i % kv_dim;
        const int64_t off = kc.at(pos, slot, t) + c;
        put(kc.k + off, k.row(t)[c]);
        put(kc.v + off, v.row(t)[c]);
    }
}

// Per token: q's pairs (rotated in place), k's pairs (rotated in place and both results stored),
// then one item per cache column (v always; k unless a pair item of k owns it). No item reads
// what another writes, so one launch does what rope, rope, kv_store do in three.
template <typename C>
__global__ void rope_kv_store_k(RopeArgs q, RopeArgs kr, Cache<C> kc, Rows v, const int32_t* pos,
                                const int32_t* slot, int64_t kv_dim, int64_t n) {
    pdl_begin();
    const int64_t qp = static_cast<int64_t>(q.n_head) * q.half,
                  kp = static_cast<int64_t>(kr.n_head) * kr.half;
    const int64_t per = qp + kp + kv_dim, total = n * per;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = i / per;
        int64_t r = i % per;
        if (r < qp) {
            rope_pair(q, t, static_cast<int>(r / q.half), static_cast<int>(r % q.half), pos[t]);
            continue;
        }
        r -= qp;
        const int64_t off = kc.at(pos, slot, t);
        if (r < kp) {
            const int2 c =
                rope_pair(kr, t, static_cast<int>(r / kr.half), static_cast<int>(r % kr.half), pos[t]);
            const float* kt = kr.x.row(t);
            put(kc.k + off + c.x, kt[c.x]);
            put(kc.k + off + c.y, kt[c.y]);
            continue;
        }
        const int64_t c = r - kp;
        const bool rotated =
            c < static_cast<int64_t>(kr.n_head) * kr.head_dim && c % kr.head_dim < 2 * kr.half;
        if (!rotated) put(kc.k + off + c, kr.x.row(t)[c]);
        put(kc.v + off + c, v.row(t)[c]);
    }
}

template <typename C>
Cache<C> cache_of(const KvLayer& kv) {
    const int64_t es = sizeof(C);
    return Cache<C>{static_cast<C*>(kv.k.data),
                    static_cast<C*>(kv.v.data),
                    static_cast<int64_t>(kv.k.nb1 / es),
                    static_cast<int64_t>(kv.k.nb2 / es),
                    kv.n_rows,
                    static_cast<int>(kv.k.mats())};
}

void check_kv(const KvLayer& kv, const Tensor& k, const Tensor& v) {
    const int64_t kv_dim = kv.k.cols();
    WO_CHECK(k.cols() == kv_dim && v.cols() == kv_dim && v.rows() == k.rows() &&
                 (kv.k.type == GgmlType::F16 || kv.k.type == GgmlType::F32) && kv.v.type == kv.k.type &&
                 kv.n_rows == kv.k.rows() && kv.k.nb1 == kv.v.nb1 && kv.k.nb2 == kv.v.nb2,
             "kv_store shapes");
}

}  // namespace

void rope(Tensor x, Tensor pos, const RopeParams& p, cudaStream_t s) {
    const RopeArgs r = rope_args(x, &p);
    const int64_t total = x.rows() * r.n_head * r.half;
    if (total == 0) return;
    launch("rope_k", rope_k, grid_for(total, 256), 256, 0, s, r, i32_of(pos), x.rows());
    check_launch("rope");
}

void kv_store(KvLayer kv, Tensor k, Tensor v, Tensor pos, Tensor slot, cudaStream_t s) {
    check_kv(kv, k, v);
    const int64_t kv_dim = kv.k.cols(), total = k.rows() * kv_dim;
    if (total == 0) return;
    if (kv.k.type == GgmlType::F16)
        launch("kv_store_k", kv_store_k<__half>, grid_for(total, 256), 256, 0, s, cache_of<__half>(kv),
               rows_of(k), rows_of(v), i32_of(pos), i32_of(slot), kv_dim, k.rows());
    else
        launch("kv_store_k", kv_store_k<float>, grid_for(total, 256), 256, 0, s, cache_of<float>(kv),
               rows_of(k), rows_of(v), i32_of(pos), i32_of(slot), kv_dim, k.rows());
    check_launch("kv_store");
}

void rope_kv_store(Tensor q, Tensor k, Tensor v, KvLayer kv, Tensor pos, Tensor slot, const RopeParams* rq,
                   const RopeParams* rk, cudaStream_t s) {
    check_kv(kv, k, v);
    const int64_t n = k.rows(), kv_dim = kv.k.cols();
    WO_CHECK(!rq || q.rows() == n, "rope_kv_store: q and k rows");
    const RopeArgs qa = rope_args(q, rq), ka = rope_args(k, rk);
    const int64_t per =
        static_cast<int64_t>(qa.n_head) * qa.half + static_cast<int64_t>(ka.n_head) * ka.half + kv_dim;
    const int64_t total = n * per;
    if (total == 0) return;
    if (kv.k.type == GgmlType::F16)
        launch("rope_kv_store_k", rope_kv_store_k<__half>, grid_for(total, 256), 256, 0, s, qa, ka,
               cache_of<__half>(kv), rows_of(v), i32_of(pos), i32_of(slot), kv_dim, n);
    else
        launch("rope_kv_store_k", rope_kv_store_k<float>, grid_for(total, 256), 256, 0, s, qa, ka,
               cache_of<float>(kv), rows_of(v), i32_of(pos), i32_of(slot), kv_dim, n);
    check_launch("rope_kv_store");
}

}  // namespace wo::cuda
