// RoPE (NORM and NEOX pairs; angles pos·inv_freq in f32 from the load-time table) and the KV
// store (F32 k/v rounded to the F16 cache at row pos % n_rows of the token's slot).
#include <cuda_fp16.h>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

__global__ void rope_k(Rows x, const int32_t* pos, const float* inv, int64_t n, int n_head, int head_dim,
                       int half, bool neox, float mscale) {
    const int64_t total = n * n_head * half;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int j = static_cast<int>(i % half);
        const int h = static_cast<int>((i / half) % n_head);
        const int64_t t = i / (static_cast<int64_t>(half) * n_head);
        const float theta = static_cast<float>(pos[t]) * inv[j];  // f32 like the CPU and HF
        const float co = cosf(theta) * mscale, si = sinf(theta) * mscale;
        float* v = x.row(t) + static_cast<int64_t>(h) * head_dim;
        const int ia = neox ? j : 2 * j, ib = neox ? j + half : 2 * j + 1;
        const float a = v[ia], c = v[ib];
        // Explicit roundings: an FMA here would differ from the CPU by an ulp.
        v[ia] = __fsub_rn(__fmul_rn(a, co), __fmul_rn(c, si));
        v[ib] = __fadd_rn(__fmul_rn(c, co), __fmul_rn(a, si));
    }
}

__device__ __forceinline__ void put(__half* p, float x) { *p = __float2half_rn(x); }
__device__ __forceinline__ void put(float* p, float x) { *p = x; }

template <typename C>
__global__ void kv_store_k(C* kc, C* vc, int64_t row_ld, int64_t slot_ld, int n_rows, int n_slots,
                           Rows k, Rows v, const int32_t* pos, const int32_t* slot, int64_t kv_dim,
                           int64_t n) {
    const int64_t total = n * kv_dim;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = i / kv_dim, c = i % kv_dim;
        const int32_t ps = pos[t], sl = slot[t];
        if (ps < 0 || sl < 0 || sl >= n_slots) __trap();  // broken invariant (the CPU aborts too)
        const int64_t off = sl * slot_ld + static_cast<int64_t>(ps % n_rows) * row_ld + c;
        put(kc + off, k.row(t)[c]);
        put(vc + off, v.row(t)[c]);
    }
}

}  // namespace

void rope(Tensor x, Tensor pos, const RopeParams& p, cudaStream_t s) {
    WO_CHECK(p.n_dims % 2 == 0 && p.n_dims <= p.head_dim &&
                 x.cols() >= static_cast<int64_t>(p.n_head) * p.head_dim &&
                 p.inv_freq.cols() == p.n_dims / 2 && p.inv_freq.data,
             "rope shapes");
    const int half = p.n_dims / 2;
    const int64_t total = x.rows() * p.n_head * half;
    if (total == 0) return;
    rope_k<<<grid_for(total, 256), 256, 0, s>>>(
        rows_of(x), i32_of(pos), static_cast<const float*>(p.inv_freq.data), x.rows(), p.n_head, p.head_dim,
        half, p.mode == RopeMode::NEOX, rope_attn_factor(p));
    check_launch("rope");
}

void kv_store(KvLayer kv, Tensor k, Tensor v, Tensor pos, Tensor slot, cudaStream_t s) {
    const int64_t kv_dim = kv.k.cols();
    WO_CHECK(k.cols() == kv_dim && v.cols() == kv_dim && v.rows() == k.rows() &&
                 (kv.k.type == GgmlType::F16 || kv.k.type == GgmlType::F32) && kv.v.type == kv.k.type &&
                 kv.n_rows == kv.k.rows() && kv.k.nb1 == kv.v.nb1 &&
                 kv.k.nb2 == kv.v.nb2,
             "kv_store shapes");
    const int64_t total = k.rows() * kv_dim;
    if (total == 0) return;
    const int64_t es = kv.k.type == GgmlType::F16 ? 2 : 4;
    if (es == 2)
        kv_store_k<<<grid_for(total, 256), 256, 0, s>>>(
            static_cast<__half*>(kv.k.data), static_cast<__half*>(kv.v.data), static_cast<int64_t>(kv.k.nb1 / es),
            static_cast<int64_t>(kv.k.nb2 / es), kv.n_rows, static_cast<int>(kv.k.mats()), rows_of(k), rows_of(v),
            i32_of(pos), i32_of(slot), kv_dim, k.rows());
    else
        kv_store_k<<<grid_for(total, 256), 256, 0, s>>>(
            static_cast<float*>(kv.k.data), static_cast<float*>(kv.v.data), static_cast<int64_t>(kv.k.nb1 / es),
            static_cast<int64_t>(kv.k.nb2 / es), kv.n_rows, static_cast<int>(kv.k.mats()), rows_of(k), rows_of(v),
            i32_of(pos), i32_of(slot), kv_dim, k.rows());
    check_launch("kv_store");
}

}  // namespace wo::cuda
