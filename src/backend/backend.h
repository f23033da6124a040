// The Backend interface: coarse operations on non-owning tensor views. Architecture files write
// their forward pass as a straight list of these calls; the CPU backend (backend/cpu) is the
// readable reference and the CUDA backend must match it op by op.
//
// Conventions for every op:
// - Activations are F32 2-D views [ne0 = features, ne1 = tokens]; rows may be strided (nb1), so a
//   column range of a fused output (qkv, gate|up) is passed without a copy. Outputs may not alias
//   inputs unless the op says "in place".
// - Weights are [ne0 = n_in, ne1 = n_out] (one row per output feature, as GGUF stores them) in any
//   type quant::can_dequantize accepts; *_exps weights add ne2 = n_expert.
// - Index tensors (token ids, positions, slots, expert ids) are I32 views in backend memory.
// - Shape and type validation happens once, in the model loader; ops check invariants only.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "backend/rope.h"
#include "backend/tensor.h"

namespace wo {

// One layer's KV cache: k and v are of the backend's kv_type() (F32 on the CPU),
// [ne0 = n_head_kv*head_dim, ne1 = n_ctx, ne2 = n_slots].
struct KvLayer {
    Tensor k, v;
};

struct AttnParams {
    int n_head = 0, n_head_kv = 0, head_dim = 0;
    float scale = 0.0f;             // applied to q·k (1/sqrt(head_dim) for every model here)
    int window = 0;                 // > 0: query at pos i sees keys j with i - window < j <= i
    const Tensor* sinks = nullptr;  // F32 [n_head]: per-head logit joined to the softmax
                                    // denominator (unscaled, unmasked, no value vector)
};

enum class MoeAct { SWIGLU, SWIGLU_OAI };

// Expert weights of one MoE layer; biases are F32 [n_ff or n_embd, n_expert] or null.
struct MoeFfn {
    Tensor gate, up, down;  // [n_embd, n_ff, n_expert], [n_embd, n_ff, n_expert], [n_ff, n_embd, n_expert]
    const Tensor* gate_b = nullptr;
    const Tensor* up_b = nullptr;
    const Tensor* down_b = nullptr;
    MoeAct act = MoeAct::SWIGLU_OAI;
    float alpha = 1.702f, limit = 7.0f;  // SWIGLU_OAI constants (gpt-oss; not in GGUF metadata)
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;

    // ---- memory
    virtual Buffer alloc(size_t bytes, const char* what) = 0;  // VRAM_OOM error names `what`
    // Makes a weight usable by this backend. The CPU backend returns a view of `host` (the GGUF
    // mapping, which must outlive the backend); CUDA copies it to VRAM and keeps it.
    virtual Tensor weight(const void* host, GgmlType type, int64_t ne0, int64_t ne1, int64_t ne2,
                          const std::string& name) = 0;
    virtual uint64_t weight_bytes() const = 0;                           // bytes held resident for weights()
    virtual void upload(Tensor dst, const void* src, size_t bytes) = 0;  // dst must be contiguous
    virtual void download(void* dst, Tensor src, size_t bytes) = 0;      // src must be contiguous
    virtual void zero(Tensor t) = 0;
    // Element type of the KV cache the model allocates for this backend (the CPU keeps F32;
    // a GPU backend may choose F16). attention() must accept it in KvLayer.
    virtual GgmlType kv_type() const { return GgmlType::F32; }
    virtual void sync() = 0;

    // ---- ops (y = output; see the conventions above)
    virtual void embed(Tensor y, Tensor table, Tensor ids) = 0;      // y[i] = table[ids[i]] as F32
    virtual void embed_add(Tensor y, Tensor table, Tensor ids) = 0;  // y[i] += table[ids[i]]
    virtual void get_rows(Tensor y, Tensor x, Tensor idx) = 0;       // y[i] = x[idx[i]] (F32)
    virtual void add(Tensor y, Tensor x) = 0;                        // y += x
    virtual void rms_norm(Tensor y, Tensor x, Tensor w, float eps) = 0;
    virtual void layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) = 0;
    virtual void matmul(Tensor y, Tensor x, Tensor w, const Tensor* bias) = 0;      // y = x·wᵀ + b
    virtual void matmul_add(Tensor y, Tensor x, Tensor w, const Tensor* bias) = 0;  // y += x·wᵀ + b
    // In place on x = [n_head*head_dim (or wider, strided), n_tokens]; pos: I32 [n_tokens].
    virtual void rope(Tensor x, Tensor pos, const RopeParams& p) = 0;
    // Stores k and v of each token into the cache at (slot[i], pos[i]), then computes causal
    // attention of q over that slot's cached positions <= pos[i] (and inside the window).
    // Tokens of one slot may share a step (prefill); positions before the step must be cached.
    // q: [n_head*head_dim, n], k/v: [n_head_kv*head_dim, n], out: [n_head*head_dim, n].
    virtual void attention(Tensor out, Tensor q, Tensor k, Tensor v, KvLayer kv, Tensor pos, Tensor slot,
                           const AttnParams& p) = 0;
    virtual void gelu(Tensor x) = 0;                            // in place, tanh approximation
    virtual void swiglu(Tensor y, Tensor gate, Tensor up) = 0;  // y = silu(gate) · up
    // gpt-oss: g = min(gate, limit), u = clamp(up, -limit, limit), y = g·σ(alpha·g)·(u + 1)
    virtual void swiglu_oai(Tensor y, Tensor gate, Tensor up, float alpha, float limit) = 0;
    // Router: ids/weights I32/F32 [k, n] = the k largest logits of each row (ties: lower id
    // first), weights = softmax over those k logits only.
    virtual void topk_softmax(Tensor ids, Tensor weights, Tensor logits, int k) = 0;
    // y[i] += Σ_j weights[i][j] · (down_e · act(gate_e·x[i] + gb_e, up_e·x[i] + ub_e) + db_e),
    // e = ids[i][j]; the sum runs in j order.
    virtual void moe_ffn(Tensor y, Tensor x, Tensor ids, Tensor weights, const MoeFfn& w) = 0;

    // ---- debugging: named intermediates (WO_TAP=<dir>); a no-op unless the backend supports it.
    virtual void begin_step() {}
    virtual void tap(const char* /*name*/, int /*layer*/, Tensor /*t*/) {}
};

struct BackendOptions {
    int n_threads = 0;  // CPU: 0 = all hardware threads
    int device = 0;     // CUDA device ordinal
};

std::unique_ptr<Backend> make_cpu_backend(int n_threads);

// Backends by name ("cpu", "cuda"). The CPU backend is always present; a CUDA build registers
// "cuda" through register_backend before loading a model (static libraries drop self-registering
// objects, so registration is an explicit call).
using BackendFactory = std::function<std::unique_ptr<Backend>(const BackendOptions&)>;
inline std::map<std::string, BackendFactory>& backend_factories() {
    static std::map<std::string, BackendFactory> m;
    return m;
}
inline void register_backend(const std::string& name, BackendFactory f) {
    backend_factories()[name] = std::move(f);
}

}  // namespace wo
