// TEMPORARY (branch cuda-mm only; drop at merge): the kernels of kernels.h another helper writes,
// defined as throwing so test_cuda links before their files exist.
#include "backend/cuda/kernels.h"
#include "util/error.h"

namespace wo::cuda {
namespace {
[[noreturn]] void nyi(const char* what) { throw Error(Code::INTERNAL, std::string(what) + ": not implemented"); }
}  // namespace

void rms_norm(Tensor, Tensor, Tensor, float, cudaStream_t) { nyi("rms_norm"); }
void layer_norm(Tensor, Tensor, Tensor, Tensor, float, cudaStream_t) { nyi("layer_norm"); }
void add(Tensor, Tensor, cudaStream_t) { nyi("add"); }
void get_rows(Tensor, Tensor, Tensor, cudaStream_t) { nyi("get_rows"); }
void gelu(Tensor, cudaStream_t) { nyi("gelu"); }
void swiglu(Tensor, Tensor, Tensor, cudaStream_t) { nyi("swiglu"); }
void swiglu_oai(Tensor, Tensor, Tensor, float, float, cudaStream_t) { nyi("swiglu_oai"); }
void rope(Tensor, Tensor, const RopeParams&, cudaStream_t) { nyi("rope"); }
void kv_store(KvLayer, Tensor, Tensor, Tensor, Tensor, cudaStream_t) { nyi("kv_store"); }
void attention(Tensor, Tensor, KvLayer, const StepTensors&, const AttnParams&, cudaStream_t) { nyi("attention"); }
void topk_softmax(Tensor, Tensor, Tensor, int, cudaStream_t) { nyi("topk_softmax"); }
size_t sample_scratch_bytes(const StepLimits&) { nyi("sample_scratch_bytes"); }
void sample(Tensor, Tensor, Tensor, Tensor, SlotState, void*, size_t, cudaStream_t) { nyi("sample"); }
void resolve_tokens(Tensor, Tensor, Tensor, Tensor, SlotState, cudaStream_t) { nyi("resolve_tokens"); }

}  // namespace wo::cuda
