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
    float* xm;
    int64_t r0;
    bool xvec;
    bool wg;  // tmm_wg.cuh's split: one exponent per row; each block's 4x4 words (unit, pair) pair-major
};

// Thread i of CTA (r, c) takes unit 256c + i (8 elements) of row r0 + r; the 4 lanes of a block find
// its largest |x| (a NaN stays NaN in its own terms), its exponent s, then each scales its
// elements by 2^s (exact) and stores hi = f16(x') and lo = f16(x' - hi) as the pairs (j, j + 4)
// of tmv.cuh's k order; lane 0 of the block stores 2^-s. With a.wg, s comes from the whole row's
// largest |x| (every CTA of the row reads all of it) and every block of the row stores that 2^-s.
__global__ void __launch_bounds__(256) tmv_split_kernel(SplitArgs a) {
    pdl_begin();
    const int64_t u = int64_t(blockIdx.y) * blockDim.x + threadIdx.x, row = a.r0 + blockIdx.x;
    const bool live = u < a.n / 8;  // the warp's lanes all reach the shuffles
    const float* x = reinterpret_cast<const float*>(a.x + size_t(row) * a.x_nb1);
    float v[8] = {};
    if (live) load_x8(x, u, a.n, a.xvec, v);
    float m = tmv_unit_max(v);
    if (a.wg) {  // the row's largest |x|: fmaxf skips NaNs, which stay NaN in their own terms
        __shared__ float part[8];
        float r = 0.0f;
        for (int64_t i = threadIdx.x; i < a.n; i += blockDim.x) r = fmaxf(r, fabsf(x[i]));
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) r = fmaxf(r, __shfl_xor_sync(0xFFFFFFFFu, r, o));
        if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = r;
        __syncthreads();
        m = 0.0f;
        for (int w = 0; w < int(blockDim.x >> 5); ++w) m = fmaxf(m, part[w]);
    }
    const int s = tmv_exponent(m);
    uint32_t hi[4], lo[4];
    tmv_unit_terms(v, s, hi, lo);
    if (!live) return;
    uint4* out = a.xs + size_t(row) * size_t(a.n / 4);
    if (a.wg) {  // word (term, pair j, unit t) at 16 (8b + 4 term + j) + 4t bytes
        const int64_t b = u / 4, t = u % 4;
        uint32_t* o = reinterpret_cast<uint32_t*>(out + 8 * b);
#pragma unroll
        for (int j = 0; j < 4; ++j) o[4 * j + t] = hi[j], o[16 + 4 * j + t] = lo[j];
        if (t == 0) a.xm[size_t(row) * size_t(a.n / 32) + size_t(b)] = pow2f(-s);
    } else {
        tmv_unit_store(out, a.xm + size_t(row) * size_t(a.n / 32), u, s, hi, lo);
    }
}

}  // namespace

void tmv_split(const Tensor& x, int64_t r0, int64_t r1, uint4* xs, float* xm, cudaStream_t s, bool wg) {
    WO_CHECK(x.type == GgmlType::F32 && x.cols() % 32 == 0 && 0 <= r0 && r0 <= r1 && r1 <= x.rows() &&
                 r1 - r0 < (int64_t(1) << 31) && x.cols() / 8 <= 65535 * 256,
             "cuda tmv_split shapes");
    if (r1 == r0) return;
    const SplitArgs a{
        static_cast<const uint8_t*>(x.data), x.nb1, x.cols(), xs, xm, r0, aligned16(x.data, x.nb1), wg};
    const dim3 grid(static_cast<unsigned>(r1 - r0), static_cast<unsigned>((x.cols() / 8 + 255) / 256));
    launch("tmv_split_kernel", tmv_split_kernel, grid, 256, 0, s, a);
    check_launch("tmv split kernel launch");
}

}  // namespace wo::cuda
