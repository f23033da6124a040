// Dequantizing matrix products and embedding lookups for every weight type (kernels.h).
//
// matmul grid: one CTA of 4 warps per 8 weight rows (blockIdx.x), each warp owning 2 rows and
// carrying every token of the call through them in passes of 8 (4, 2, 1 for the rest) with the
// weight tile re-read from L1/L2. The per-element reduction order is warp_dots' (matvec.cuh):
// fixed by n_in alone, so a token's output never depends on the token count or its neighbours.
// Weights are read in their GGUF layout (repack is the identity for now).
#include <cuda_runtime.h>

#include "backend/cuda/kernels.h"
#include "backend/cuda/matvec.cuh"

namespace wo::cuda {
namespace {

struct MatmulArgs {
    const uint8_t* w;
    size_t w_nb1;
    int64_t n_in, n_out;
    const uint8_t* x;
    size_t x_nb1;
    uint8_t* y;
    size_t y_nb1;
    int64_t n_tok;
    const float* bias;
    bool accumulate, xvec;
};

template <GgmlType T, int NT>
__device__ __forceinline__ void matmul_pass(const MatmulArgs& a, int64_t r0, int64_t t0) {
    const uint8_t* w[kWarpRows];
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r)
        w[r] = a.w + size_t(r0 + r < a.n_out ? r0 + r : a.n_out - 1) * a.w_nb1;
    const float* x[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) x[t] = reinterpret_cast<const float*>(a.x + size_t(t0 + t) * a.x_nb1);
    float acc[kWarpRows][NT];
    warp_dots<T, kWarpRows, NT>(w, a.n_in, x, a.xvec, acc);
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t)
            if (lane == r * NT + t && r0 + r < a.n_out) {
                // As the CPU: s = dot + bias (or + 0), then y = s or y + s.
                const float s = __fadd_rn(acc[r][t], a.bias ? a.bias[r0 + r] : 0.0f);
                float* yp = reinterpret_cast<float*>(a.y + size_t(t0 + t) * a.y_nb1) + (r0 + r);
                *yp = a.accumulate ? __fadd_rn(*yp, s) : s;
            }
}

template <GgmlType T>
__global__ void __launch_bounds__(kBlockWarps * 32) matmul_kernel(MatmulArgs a) {
    const int64_t r0 = (int64_t(blockIdx.x) * kBlockWarps + threadIdx.x / 32) * kWarpRows;
    if (r0 >= a.n_out) return;  // whole warps only: no block-wide sync below
    int64_t t0 = 0;
    for (; t0 + 8 <= a.n_tok; t0 += 8) matmul_pass<T, 8>(a, r0, t0);
    if (t0 + 4 <= a.n_tok) matmul_pass<T, 4>(a, r0, t0), t0 += 4;
    if (t0 + 2 <= a.n_tok) matmul_pass<T, 2>(a, r0, t0), t0 += 2;
    if (t0 < a.n_tok) matmul_pass<T, 1>(a, r0, t0);
}

struct EmbedArgs {
    const uint8_t* table;
    size_t t_nb1;
    int64_t n_rows, d;
    const int32_t* ids;
    uint8_t* y;
    size_t y_nb1;
    bool add;
};

// blockIdx.y = token, one thread per 8-element unit of the row. An id outside the table gives a
// NaN row (a device op cannot throw; the NaN shows up in every test and logit downstream).
template <GgmlType T>
__global__ void embed_kernel(EmbedArgs a) {
    const int64_t u = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (8 * u >= a.d) return;
    const int32_t id = a.ids[blockIdx.y];
    float v[8];
    if (id >= 0 && id < a.n_rows) {
        Dequant<T>::unit(a.table + size_t(id) * a.t_nb1, u, a.d, v);
    } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __int_as_float(0x7FC00000);
    }
    float* y = reinterpret_cast<float*>(a.y + size_t(blockIdx.y) * a.y_nb1);
#pragma unroll
    for (int i = 0; i < 8; ++i)
        if (8 * u + i < a.d) y[8 * u + i] = a.add ? __fadd_rn(y[8 * u + i], v[i]) : v[i];
}

}  // namespace

void matmul(Tensor y, Tensor x, Tensor w, const float* bias, bool accumulate, cudaStream_t s) {
    WO_CHECK(w.layout == WeightLayout::GGUF, "cuda matmul: weight layout");
    WO_CHECK(x.type == GgmlType::F32 && y.type == GgmlType::F32 && x.cols() == w.cols() &&
                 y.rows() == x.rows() && y.cols() == w.rows(),
             "cuda matmul shapes");
    const int64_t n_out = w.rows(), n_tok = x.rows();
    if (n_tok == 0 || n_out == 0) return;
    MatmulArgs a{static_cast<const uint8_t*>(w.data),
                 w.nb1,
                 w.cols(),
                 n_out,
                 static_cast<const uint8_t*>(x.data),
                 x.nb1,
                 static_cast<uint8_t*>(y.data),
                 y.nb1,
                 n_tok,
                 bias,
                 accumulate,
                 aligned16(x.data, x.nb1)};
    const dim3 grid(static_cast<unsigned>((n_out + kBlockRows - 1) / kBlockRows));
    WO_CUDA_FOR_TYPE(w.type, "matmul", (matmul_kernel<kT><<<grid, kBlockWarps * 32, 0, s>>>(a)));
    check_launch("matmul kernel launch");
}

void embed(Tensor y, Tensor table, Tensor ids, bool add, cudaStream_t s) {
    WO_CHECK(table.layout == WeightLayout::GGUF, "cuda embed: table layout");
    WO_CHECK(y.type == GgmlType::F32 && table.cols() == y.cols() && ids.type == GgmlType::I32 &&
                 ids.cols() * ids.rows() >= y.rows(),
             "cuda embed shapes");
    const int64_t n = y.rows(), d = y.cols();
    if (n == 0 || d == 0) return;
    WO_CHECK(n <= 65535, "cuda embed: at most 65535 tokens per call");
    EmbedArgs a{static_cast<const uint8_t*>(table.data),
                table.nb1,
                table.rows(),
                d,
                static_cast<const int32_t*>(ids.data),
                static_cast<uint8_t*>(y.data),
                y.nb1,
                add};
    const int64_t units = (d + 7) / 8;
    const dim3 grid(static_cast<unsigned>((units + 127) / 128), static_cast<unsigned>(n));
    WO_CUDA_FOR_TYPE(table.type, "embed", (embed_kernel<kT><<<grid, 128, 0, s>>>(a)));
    check_launch("embed kernel launch");
}

// No repacked layout yet: every kernel reads GGUF order (issue 11 may add a DEVICE layout for
// aligned 16-byte loads; the kernels then take it through Dequant<T>).
size_t repack_bytes(const Tensor&) { return 0; }
Tensor repack(const Tensor& w, void*, cudaStream_t) { return w; }

}  // namespace wo::cuda
