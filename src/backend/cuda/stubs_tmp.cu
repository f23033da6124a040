// TEMPORARY (delete at merge): stand-ins for the matmul/embed/repack/moe kernels another branch
// implements, so this branch links. repack_bytes returns 0 ("no repack"), the rest throw.
#include "backend/cuda/kernels.h"
#include "util/error.h"

namespace wo::cuda {

void matmul(Tensor, Tensor, Tensor, const float*, bool, cudaStream_t) {
    throw Error(Code::INTERNAL, "cuda matmul: not implemented");
}
void embed(Tensor, Tensor, Tensor, bool, cudaStream_t) { throw Error(Code::INTERNAL, "cuda embed: not implemented"); }
size_t repack_bytes(const Tensor&) { return 0; }
Tensor repack(const Tensor& w, void*, cudaStream_t) { return w; }
size_t moe_scratch_bytes(const StepLimits&) { return 0; }
void moe_ffn(Tensor, Tensor, Tensor, Tensor, const MoeFfn&, void*, size_t, cudaStream_t) {
    throw Error(Code::INTERNAL, "cuda moe_ffn: not implemented");
}

}  // namespace wo::cuda
