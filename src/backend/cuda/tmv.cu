// The activation split of the tensor-core decode path (tmv.cuh).
#include "backend/cuda/matvec.cuh"
#include "backend/cuda/tmv.cuh"

namespace wo::cuda {
namespace {

struct SplitArgs {
    const uint8_t* x;
    size_t x_nb1;
    int64_t n;
    uint4* xs;
    int32_t* exps;
    bool xvec;
};

// One CTA per row: the largest |x| (a NaN anywhere stays NaN in the terms), its exponent s,
// then each unit's 8 elements times 2^s (exact) as hi = f16(x') and lo = f16(x' - hi), stored
// as the pairs (j, j + 4) of tmv.cuh's k order.
__global__ void __launch_bounds__(256) tmv_split_kernel(SplitArgs a) {
    pdl_begin();
    __shared__ float sh[256];
    const float* x = reinterpret_cast<const float*>(a.x + size_t(blockIdx.x) * a.x_nb1);
    float m = 0.0f;
    for (int64_t i = threadIdx.x; i < a.n; i += blockDim.x) m = fmaxf(m, fabsf(x[i]));
    m = block_max(m, sh);
    const int s = tmv_exponent(m);
    const float p = pow2f(s);
    if (threadIdx.x == 0) a.exps[blockIdx.x] = s;
    uint4* out = a.xs + size_t(blockIdx.x) * size_t(a.n / 4);
    for (int64_t u = threadIdx.x; u < a.n / 8; u += blockDim.x) {
        float v[8];
        load_x8(x, u, a.n, a.xvec, v);
        uint32_t hi[4], lo[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float x0 = __fmul_rn(v[j], p), x1 = __fmul_rn(v[j + 4], p);
            const __half2 h = __floats2half2_rn(x0, x1);
            const float2 f = __half22float2(h);
            const __half2 l = __floats2half2_rn(__fsub_rn(x0, f.x), __fsub_rn(x1, f.y));
            hi[j] = *reinterpret_cast<const uint32_t*>(&h);
            lo[j] = *reinterpret_cast<const uint32_t*>(&l);
        }
        const int64_t b = u / 4, t = u % 4;
        out[8 * b + t] = make_uint4(hi[0], hi[1], hi[2], hi[3]);
        out[8 * b + 4 + t] = make_uint4(lo[0], lo[1], lo[2], lo[3]);
    }
}

}  // namespace

void tmv_split(const Tensor& x, int64_t rows, uint4* xs, int32_t* exps, cudaStream_t s) {
    WO_CHECK(x.type == GgmlType::F32 && x.cols() % 32 == 0 && rows <= x.rows() && rows < (int64_t(1) << 31),
             "cuda tmv_split shapes");
    if (rows == 0) return;
    const SplitArgs a{static_cast<const uint8_t*>(x.data), x.nb1, x.cols(), xs, exps, aligned16(x.data, x.nb1)};
    launch("tmv_split_kernel", tmv_split_kernel, dim3(static_cast<unsigned>(rows)), 256, 0, s, a);
    check_launch("tmv split kernel launch");
}

}  // namespace wo::cuda
