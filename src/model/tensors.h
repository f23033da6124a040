// The weight tensors of an architecture, declared once beside its forward pass (gpt_oss.cpp,
// gpt2.cpp, llama.cpp) and read by the loader (which fetches and shape-checks each), `synth` and
// the test model writers (which write each).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/types.h"
#include "model/model.h"

namespace wo {

// What a tensor is for: the loader widens the small ones (NORM, BIAS, SINKS) to F32 and keeps the
// rest in their stored type; writers pick a type by role (writer_type).
enum class TensorRole { EMBEDDING, OUTPUT, MATRIX, EXPERTS, ROUTER, NORM, BIAS, SINKS };

struct TensorSpec {
    std::string name;            // GGUF name, e.g. blk.3.attn_q.weight
    std::vector<int64_t> shape;  // ggml order (ne0 first)
    TensorRole role;
};

// The variants one architecture's files come in. The loader reads them off the file (layout_of:
// from output.weight and block 0, so every block must agree); writers use the architecture's
// own (default_layout). Each architecture reads only the flags it has.
struct TensorLayout {
    bool tied = false;           // no output.weight: the LM head is token_embd
    bool fused_qkv = false;      // attn_qkv instead of attn_q/k/v (phi3)
    bool qkv_bias = false;       // attn_q/k/v biases (qwen2)
    bool out_bias = false;       // attn_output.bias
    bool fused_gate_up = false;  // no ffn_gate: ffn_up holds gate|up (phi3)
};

TensorLayout layout_of(const gguf::File& f);
TensorLayout default_layout(const std::string& arch);  // ARCH_UNSUPPORTED for an unknown arch

// Every tensor of hp.arch with these hyperparameters and layout, in the order writers write them.
std::vector<TensorSpec> tensor_specs(const Hparams& hp, const TensorLayout& l);

// The type synth and the test writers give a role: 2-D weights `matrix`, experts `experts`,
// everything else (norms, biases, sinks, the router) F32 as in the ggml-org files.
inline GgmlType writer_type(TensorRole r, GgmlType matrix, GgmlType experts) {
    switch (r) {
        case TensorRole::EMBEDDING:
        case TensorRole::OUTPUT:
        case TensorRole::MATRIX: return matrix;
        case TensorRole::EXPERTS: return experts;
        default: return GgmlType::F32;
    }
}

}  // namespace wo
