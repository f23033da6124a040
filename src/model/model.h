// A loaded model: hyperparameters, weights on a backend, KV cache slots, and a forward pass
// over a batch of tokens from one or more sequences. The engine talks only to this interface;
// each architecture is one file under src/model/ plus a line in registry.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace wo {

namespace gguf {
class File;
}

struct Hparams {
    std::string arch;  // general.architecture
    int n_vocab = 0, n_ctx_train = 0, n_embd = 0, n_layer = 0;
    int n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
    int n_expert = 0, n_expert_used = 0;
    float norm_eps = 1e-5f;
};

// One token of a step. Tokens of the same slot appear in position order; `logits` asks for
// that token's next-token logits (prefill wants them for the last prompt token only).
struct BatchToken {
    int32_t token = 0;
    int32_t pos = 0;
    int32_t slot = 0;
    bool logits = false;
};

struct LoadOptions {
    std::string backend = "cpu";  // "cpu" or "cuda"
    int n_threads = 0;            // CPU: 0 = all cores
    int device = 0;               // CUDA device
    // Load progress: called with each tensor's size in the file once the backend holds it (CPU:
    // mapped in place; CUDA: copied). The calls add up to at most the file's tensor bytes.
    std::function<void(uint64_t bytes)> on_weight_bytes;
};

class Model {
public:
    virtual ~Model() = default;
    virtual const Hparams& hparams() const = 0;
    // Fixes KV memory for n_slots sequences of at most n_ctx tokens each; call once before use.
    virtual void reserve(int n_slots, int n_ctx) = 0;
    virtual void clear_slot(int slot) = 0;  // forget a slot's cached tokens
    // Runs one step; appends n_vocab floats to `logits` for each token with logits=true, in
    // batch order. Throws Error(CONTEXT_OVERFLOW) when a position is >= n_ctx.
    virtual void forward(const std::vector<BatchToken>& batch, std::vector<float>& logits) = 0;
    virtual std::string backend_name() const = 0;  // "cpu" or "cuda"
    virtual uint64_t weight_bytes() const = 0;     // bytes of weights resident on the backend
    virtual uint64_t kv_bytes() const = 0;
    virtual std::string quant_kind() const = 0;    // e.g. "MXFP4", "Q8_0", "F32", "Q4_K_M"
};

// Picks the architecture from general.architecture (Error ARCH_UNSUPPORTED names it); the File
// must outlive the model (weights are used in place from the mapping on the CPU).
std::unique_ptr<Model> load_model(std::shared_ptr<const gguf::File> file, const LoadOptions& opts);

}  // namespace wo
