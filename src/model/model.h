// A loaded model: hyperparameters, weights on a backend, KV cache slots, and a forward pass
// over a batch of tokens from one or more sequences. The engine talks only to this interface;
// each architecture is one file under src/model/ plus a line in registry.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/sampling.h"

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

// One token of a step. Tokens of the same slot appear in position order; `logits` asks for a
// sampled next token (and, when the step wants them, that token's logits): prefill wants it for
// the last prompt token only. A token < 0 (kLastSampled) is the id the slot's previous step
// sampled, which never leaves the device. `generated` marks a token the model generated (fed
// back by id, e.g. a test script's); kLastSampled tokens are generated ones by definition.
// A step's leading generated tokens with `logits` take the backend's decode path and every other
// token its prompt path (Backend::set_decode_rows): the engine puts its generated tokens first.
constexpr int32_t kLastSampled = -1;
struct BatchToken {
    int32_t token = 0;
    int32_t pos = 0;
    int32_t slot = 0;
    bool logits = false;
    bool generated = false;
};

// Sizes fixed once by reserve(): every buffer a step uses is allocated there.
struct ReserveOptions {
    int n_slots = 1;
    int n_ctx = 0;
    int max_step_tokens = 0;  // tokens in one step; 0 = min(n_ctx, 512)
    int max_out_rows = 0;     // tokens with logits=true in one step; 0 = max_step_tokens
};

// What a step produced: one sampled id per token with logits=true, in batch order, and their
// logits (n_vocab each) when the step asked for them.
struct StepResult {
    std::vector<int32_t> ids;
    std::vector<float> logits;
};

struct LoadOptions {
    std::string backend = "cpu";  // "cpu" or "cuda"
    int n_threads = 0;            // CPU: 0 = all cores
    int device = 0;               // CUDA device
    std::string kv_type;          // "f32" keeps the KV cache in F32 on a backend that defaults to F16
    std::string tap_dir;          // debugging: write named intermediates here (default: $WO_TAP)
    // Load progress: called with each tensor's size in the file once the backend holds it (CPU:
    // mapped in place; CUDA: copied). The calls add up to at most the file's tensor bytes.
    std::function<void(uint64_t bytes)> on_weight_bytes;
};

class Model {
public:
    virtual ~Model() = default;
    virtual const Hparams& hparams() const = 0;
    // Fixes KV memory and step buffers; call once before use.
    virtual void reserve(const ReserveOptions& r) = 0;
    void reserve(int n_slots, int n_ctx) { reserve(ReserveOptions{n_slots, n_ctx, 0, 0}); }
    virtual void clear_slot(int slot) = 0;  // forget a slot's cached tokens
    // The slot's sampling parameters from its next step on.
    virtual void set_sampling(int slot, const SamplingParams& p) = 0;
    // Queues one step. Throws Error(CONTEXT_OVERFLOW) when a position is >= n_ctx, and
    // INVALID_REQUEST for a batch that breaks the slot bookkeeping (nothing changes then).
    virtual void submit(const std::vector<BatchToken>& batch, bool want_logits) = 0;
    // Results of the oldest submitted step not yet waited for (blocks until it is done).
    virtual StepResult wait() = 0;
    // Steps that may be in flight before wait(): 1 on a synchronous backend.
    virtual int pipeline_depth() const { return 1; }
    virtual std::string backend_name() const = 0;  // "cpu" or "cuda"
    virtual bool healthy() const { return true; }  // false after an unrecoverable device error
    virtual uint64_t weight_bytes() const = 0;     // bytes of weights resident on the backend
    virtual uint64_t kv_bytes() const = 0;
    virtual uint64_t buffer_bytes() const { return 0; }  // step buffers and op scratch
    virtual std::string device() const { return backend_name(); }
    virtual std::string quant_kind() const = 0;    // e.g. "MXFP4", "Q8_0", "F32", "Q4_K_M"

    // One step, waited for, its logits appended (tests and tools): the sampled ids are returned.
    std::vector<int32_t> forward(const std::vector<BatchToken>& batch, std::vector<float>& logits) {
        submit(batch, true);
        StepResult r = wait();
        logits.insert(logits.end(), r.logits.begin(), r.logits.end());
        return r.ids;
    }
};

// "auto" is "cuda" when the build has the CUDA backend and a GPU is present, else "cpu"; other
// names are returned as they are.
std::string resolve_backend(const std::string& name);

// Picks the architecture from general.architecture (Error ARCH_UNSUPPORTED names it); the File
// must outlive the model (weights are used in place from the mapping on the CPU).
std::unique_ptr<Model> load_model(std::shared_ptr<const gguf::File> file, const LoadOptions& opts);

}  // namespace wo
