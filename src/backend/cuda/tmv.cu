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
};

// Thread i of CTA (r, c) takes unit 256c + i (8 elements) of row r0 + r (tmv_split_unit).
__global__ void __launch_bounds__(256) tmv_split_kernel(SplitArgs a) {
    pdl_begin();
    const int64_t u = int64_t(blockIdx.y) * blockDim.x + threadIdx.x, row = a.r0 + blockIdx.x;
    const bool live = u < a.n / 8;  // the warp's lanes all reach the shuffles
    const float* x = reinterpret_cast<const float*>(a.x + size_t(row) * a.x_nb1);
    float v[8] = {};
    if (live) load_x8(x, u, a.n, a.xvec, v);
    tmv_split_unit(v, live, u, a.xs + size_t(row) * size_t(a.n / 4), a.xm + size_t(row) * size_t(a.n / 32));
}

}  // namespace

void tmv_split(const Tensor& x, int64_t r0, int64_t r1, uint4* xs, float* xm, cudaStream_t s) {
    WO_CHECK(x.type == GgmlType::F32 && x.cols() % 32 == 0 && 0 <= r0 && r0 <= r1 && r1 <= x.rows() &&
                 r1 - r0 < (int64_t(1) << 31) && x.cols() / 8 <= 65535 * 256,
             "cuda tmv_split shapes");
    if (r1 == r0) return;
    const SplitArgs a{
        static_cast<const uint8_t*>(x.data), x.nb1, x.cols(), xs, xm, r0, aligned16(x.data, x.nb1)};
    const dim3 grid(static_cast<unsigned>(r1 - r0), static_cast<unsigned>((x.cols() / 8 + 255) / 256));
    launch("tmv_split_kernel", tmv_split_kernel, grid, 256, 0, s, a);
    check_launch("tmv split kernel launch");
}

}  // namespace wo::cuda
