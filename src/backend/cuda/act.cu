// Element-wise activations, the same float formulas as the CPU reference (backend/cpu/row.h).
#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

enum class Act { GELU, SWIGLU, SWIGLU_OAI };

template <Act A>
__global__ void act_k(Rows y, Rows g, Rows u, int64_t cols, int64_t n, float alpha, float limit) {
    pdl_begin();
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        const float a = g.row(r)[c];
        float o;
        if constexpr (A == Act::GELU) {
            const float k = sqrtf(2.0f / static_cast<float>(M_PI));  // the CPU's float constant, bit for bit
            o = 0.5f * a * (1.0f + tanhf(k * __fadd_rn(a, 0.044715f * a * a * a)));  // no FMA, as the CPU
        } else if constexpr (A == Act::SWIGLU) {
            o = a / (1.0f + expf(-a)) * u.row(r)[c];
        } else {
            // std::min / std::clamp semantics (a NaN passes through), not fminf's
            const float gg = limit < a ? limit : a;
            const float uv = u.row(r)[c];
            const float uu = uv < -limit ? -limit : (limit < uv ? limit : uv);
            o = gg / (1.0f + expf(-alpha * gg)) * (uu + 1.0f);
        }
        y.row(r)[c] = o;
    }
}

template <Act A>
void launch(Tensor y, Tensor g, Tensor u, float alpha, float limit, cudaStream_t s, const char* name) {
    WO_CHECK(g.cols() == y.cols() && u.cols() == y.cols() && g.rows() >= y.rows() && u.rows() >= y.rows(),
             name);
    const int64_t n = y.rows() * y.cols();
    if (n == 0) return;
    launch("act_k", act_k<A>, grid_for(n, 256), 256, 0, s, rows_of(y), rows_of(g), rows_of(u), y.cols(), n,
           alpha, limit);
    check_launch(name);
}

}  // namespace

void gelu(Tensor x, cudaStream_t s) { launch<Act::GELU>(x, x, x, 0, 0, s, "gelu"); }
void swiglu(Tensor y, Tensor gate, Tensor up, cudaStream_t s) {
    launch<Act::SWIGLU>(y, gate, up, 0, 0, s, "swiglu");
}
void swiglu_oai(Tensor y, Tensor gate, Tensor up, float alpha, float limit, cudaStream_t s) {
    launch<Act::SWIGLU_OAI>(y, gate, up, alpha, limit, s, "swiglu_oai");
}

}  // namespace wo::cuda
