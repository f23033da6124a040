// RMSNorm and LayerNorm (one block per row, double sums like the CPU reference, fixed-order
// reduction), and the row plumbing ops add and get_rows.
#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/tmv.cuh"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

constexpr int kNormThreads = 256;

// RMSNorm, one CTA per row, latency first (a decode step runs 49 of them on one row each): every
// thread loads its elements once (float4 chunks j = t, t + 1024, ... when the rows allow), sums
// their squares in double, then a fixed shuffle tree per warp and the 32 warp sums in warp order
// by warp 0: one load round and two barriers. The order depends on d alone (batch invariant).
constexpr int kRmsThreads = 1024;

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int off = 16; off >= 1; off /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
    return v;
}

// SPLIT: rows below sp.rows also get tmv_split's split (the row staged in shared memory, then
// thread u takes unit u as tmv_split_kernel does; d / 8 <= kRmsThreads): the same bits, one
// launch fewer before a tensor-core product of the row (rms_norm_split).
struct RmsSplit {
    uint4* xs;
    float* xm;
    int64_t rows;
};
template <bool SPLIT>
__global__ void __launch_bounds__(kRmsThreads)
    rms_norm_k(Rows y, Rows x, const float* w, int64_t d, float eps, bool vec, RmsSplit sp) {
    pdl_begin();
    extern __shared__ float ys[];  // SPLIT: the normalized row
    __shared__ double warp_ss[kRmsThreads / 32];
    __shared__ float inv_sh;
    const float* xr = x.row(blockIdx.x);
    float* yr = y.row(blockIdx.x);
    const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
    double ss = 0;
    if (vec) {
        for (int64_t j = t; j < d / 4; j += kRmsThreads) {
            const float4 v = reinterpret_cast<const float4*>(xr)[j];
            ss += double(v.x) * v.x + double(v.y) * v.y + double(v.z) * v.z + double(v.w) * v.w;
        }
    } else {
        for (int64_t j = t; j < d; j += kRmsThreads) ss += double(xr[j]) * xr[j];
    }
    ss = warp_sum(ss);
    if (lane == 0) warp_ss[warp] = ss;
    __syncthreads();
    if (warp == 0) {
        const double all = warp_sum(warp_ss[lane]);
        if (lane == 0) inv_sh = static_cast<float>(1.0 / sqrt(all / static_cast<double>(d) + eps));
    }
    __syncthreads();
    const float inv = inv_sh;
    if (vec) {
        for (int64_t j = t; j < d / 4; j += kRmsThreads) {
            const float4 v = reinterpret_cast<const float4*>(xr)[j],
                         g = reinterpret_cast<const float4*>(w)[j];
            const float4 o = make_float4(v.x * inv * g.x, v.y * inv * g.y, v.z * inv * g.z, v.w * inv * g.w);
            reinterpret_cast<float4*>(yr)[j] = o;
            if (SPLIT) reinterpret_cast<float4*>(ys)[j] = o;
        }
    } else {
        for (int64_t j = t; j < d; j += kRmsThreads) {
            const float o = xr[j] * inv * w[j];
            yr[j] = o;
            if (SPLIT) ys[j] = o;
        }
    }
    if constexpr (SPLIT) {
        if (int64_t(blockIdx.x) >= sp.rows) return;  // the CTA's row: every thread leaves
        __syncthreads();
        tmv_unit_split(t < d / 8 ? ys + 8 * t : nullptr, sp.xs + size_t(blockIdx.x) * size_t(d / 4),
                       sp.xm + size_t(blockIdx.x) * size_t(d / 32), t);
    }
}

__global__ void __launch_bounds__(kNormThreads)
    layer_norm_k(Rows y, Rows x, const float* w, const float* b, int64_t d, float eps) {
    pdl_begin();
    __shared__ double sh[kNormThreads];
    const float* xr = x.row(blockIdx.x);
    double s = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += xr[j];
    const double mean = block_sum(s, sh) / static_cast<double>(d);
    double v = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) v += (xr[j] - mean) * (xr[j] - mean);
    const double inv = 1.0 / sqrt(block_sum(v, sh) / static_cast<double>(d) + eps);
    float* yr = y.row(blockIdx.x);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
        yr[j] = __fadd_rn(__fmul_rn(static_cast<float>((xr[j] - mean) * inv), w[j]),
                          b[j]);  // no FMA: as the CPU rounds
}

__global__ void add_k(Rows y, Rows x, int64_t cols, int64_t n) {
    pdl_begin();
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        y.row(r)[c] += x.row(r)[c];
    }
}

__global__ void get_rows_k(Rows y, Rows x, const int32_t* idx, int64_t x_rows, int64_t cols, int64_t n) {
    pdl_begin();
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        const int32_t s = idx[r];
        if (s < 0 || s >= x_rows) __trap();  // a broken invariant (the CPU aborts the same way)
        y.row(r)[c] = x.row(s)[c];
    }
}

}  // namespace

void rms_norm(Tensor y, Tensor x, Tensor w, float eps, cudaStream_t s) {
    rms_norm_split(y, x, w, eps, nullptr, nullptr, 0, s);
}

bool rms_norm_splits(int64_t d) { return d % 32 == 0 && d / 8 <= kRmsThreads && d * sizeof(float) <= 48 * 1024; }

void rms_norm_split(Tensor y, Tensor x, Tensor w, float eps, uint4* xs, float* xm, int64_t rows, cudaStream_t s) {
    const int64_t d = x.cols();
    WO_CHECK(w.type == GgmlType::F32 && w.cols() == d && y.cols() == d && y.rows() >= x.rows(),
             "rms_norm shapes");
    WO_CHECK(rows == 0 || (xs && xm && rows <= x.rows() && rms_norm_splits(d)), "rms_norm_split shapes");
    if (x.rows() == 0) return;
    const bool vec =
        d % 4 == 0 && aligned16(x.data, x.nb1) && aligned16(y.data, y.nb1) && aligned16(w.data, 0);
    const RmsSplit sp{xs, xm, rows};
    if (rows > 0)
        launch("rms_norm_k", rms_norm_k<true>, static_cast<unsigned>(x.rows()), kRmsThreads, size_t(d) * sizeof(float),
               s, rows_of(y), rows_of(x), static_cast<const float*>(w.data), d, eps, vec, sp);
    else
        launch("rms_norm_k", rms_norm_k<false>, static_cast<unsigned>(x.rows()), kRmsThreads, 0, s, rows_of(y),
               rows_of(x), static_cast<const float*>(w.data), d, eps, vec, sp);
    check_launch("rms_norm");
}

void layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps, cudaStream_t s) {
    const int64_t d = x.cols();
    WO_CHECK(
        w.type == GgmlType::F32 && b.type == GgmlType::F32 && w.cols() == d && b.cols() == d && y.cols() == d,
        "layer_norm shapes");
    if (x.rows() == 0) return;
    launch("layer_norm_k", layer_norm_k, static_cast<unsigned>(x.rows()), kNormThreads, 0, s, rows_of(y),
           rows_of(x), static_cast<const float*>(w.data), static_cast<const float*>(b.data), d, eps);
    check_launch("layer_norm");
}

void add(Tensor y, Tensor x, cudaStream_t s) {
    WO_CHECK(y.cols() == x.cols() && y.rows() == x.rows(), "add shapes");
    const int64_t n = y.rows() * y.cols();
    if (n == 0) return;
    launch("add_k", add_k, grid_for(n, 256), 256, 0, s, rows_of(y), rows_of(x), y.cols(), n);
    check_launch("add");
}

void get_rows(Tensor y, Tensor x, Tensor idx, cudaStream_t s) {
    WO_CHECK(y.cols() == x.cols() && idx.cols() >= y.rows(), "get_rows shapes");
    const int64_t n = y.rows() * y.cols();
    if (n == 0) return;
    launch("get_rows_k", get_rows_k, grid_for(n, 256), 256, 0, s, rows_of(y), rows_of(x), i32_of(idx),
           x.rows(), y.cols(), n);
    check_launch("get_rows");
}

}  // namespace wo::cuda
