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
// - Ops are asynchronous on a device: they are ordered with each other, and only download() and
//   sync() wait. A step allocates nothing (buffers are reserved once: alloc_count() tells).
// docs/backend.md describes the step contract and how to add a backend.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/rope.h"
#include "backend/sampling.h"
#include "backend/tensor.h"

namespace wo {

// The KV cache as the model describes it; the backend lays it out (backend-owned memory).
struct KvCacheDesc {
    int n_slots = 0, n_ctx = 0;
    int max_step_tokens = 0;  // most tokens of one slot in one step (sizes the window rings)
    std::vector<int> kv_dim;  // per layer: n_head_kv * head_dim
    std::vector<int> window;  // per layer: > 0 = sliding window of that many positions
};

// One layer's cache: k and v of element type `type`, [ne0 = kv_dim, ne1 = n_rows, ne2 = n_slots].
// Position p of a slot lives in row p % n_rows: full layers have n_rows = n_ctx; a sliding-window
// layer keeps only a ring of window + max_step_tokens rows, so a whole step's keys fit beside
// the window its first token still sees.
struct KvLayer {
    Tensor k, v;
    int n_rows = 0;
};

struct AttnParams {
    int n_head = 0, n_head_kv = 0, head_dim = 0;
    float scale = 0.0f;             // applied to q·k (1/sqrt(head_dim) for every model here)
    int window = 0;                 // > 0: query at pos i sees keys j with i - window < j <= i
    const Tensor* sinks = nullptr;  // F32 [n_head]: per-head logit joined to the softmax
                                    // denominator (unscaled, unmasked, no value vector)
};

// The q/k/v projection of one attention layer: either a fused [d, q+k+v] matrix or three, each
// with an optional F32 bias.
struct QkvWeights {
    const Tensor* qkv = nullptr;
    const Tensor *q = nullptr, *k = nullptr, *v = nullptr;
    const Tensor *q_b = nullptr, *k_b = nullptr, *v_b = nullptr;
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

// Per-step tensors in backend memory. tokens/pos/slot: I32 [n]; seqs: I32 [4, n_seq] rows of
// (slot, first position, token count, first token index) for the sequences of the step, so a
// varlen attention kernel needs nothing else.
struct StepTensors {
    int64_t n = 0, n_seq = 0;
    Tensor tokens, pos, slot, seqs;
};

// Per-slot state a whole decode step needs without the host: the last sampled id of each slot
// (I32 [n_slots]), every token fed so far (I32 [n_ctx, n_slots], for the repetition penalty) and
// the sampling table (n_slots rows of SamplingParams).
struct SlotState {
    Tensor last_id, history, params;
};

// The largest step the model will run, so a backend can reserve every scratch buffer its ops
// need once (reserve_scratch) instead of inside a step.
struct StepLimits {
    int64_t max_tokens = 0, max_out_rows = 0, n_vocab = 0, n_embd = 0;
    int64_t n_expert = 0, n_expert_used = 0, n_ff = 0;  // MoE models only
    int64_t max_width = 0;                              // widest activation row
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual std::string device() const { return name(); }  // what runs it, e.g. "NVIDIA H200"
    // False once the device hit an error it cannot recover from (a GPU fault poisons the CUDA
    // context): the engine reports the worker unhealthy.
    virtual bool healthy() const { return true; }

    // ---- memory
    virtual Buffer alloc(size_t bytes, const char* what) = 0;  // VRAM_OOM error names `what`
    uint64_t alloc_count() const { return alloc_count_; }      // calls of alloc() so far (tests)
    // Makes a weight usable by this backend. The CPU backend returns a view of `host` (the GGUF
    // mapping, which must outlive the backend) in GGUF order; a GPU backend copies it to device
    // memory, possibly repacked (Tensor::layout says how).
    virtual Tensor weight(const void* host, GgmlType type, int64_t ne0, int64_t ne1, int64_t ne2,
                          const std::string& name) = 0;
    virtual uint64_t weight_bytes() const = 0;                           // bytes held resident for weights()
    virtual void upload(Tensor dst, const void* src, size_t bytes) = 0;  // dst must be contiguous
    virtual void download(void* dst, Tensor src, size_t bytes) = 0;      // src must be contiguous; waits
    virtual void zero(Tensor t) = 0;
    virtual void sync() = 0;
    // Host memory the device copies into without the host waiting (pinned on a GPU).
    virtual Buffer alloc_host(size_t bytes, const char* what) { return alloc(bytes, what); }
    // Copies src into dst (memory from alloc_host) once the ops queued so far are done; fence()
    // marks that point and wait_fence() blocks until the device has passed it.
    virtual void download_async(void* dst, Tensor src, size_t bytes) { download(dst, src, bytes); }
    virtual uint64_t fence() { return 0; }
    virtual void wait_fence(uint64_t /*fence*/) {}
    // Reserves the scratch every op needs for steps up to these limits (called once, at reserve).
    virtual void reserve_scratch(const StepLimits& /*l*/) {}
    // Lays out the KV cache (one KvLayer per entry of d.kv_dim) in the backend's element type.
    virtual std::vector<KvLayer> make_kv_cache(const KvCacheDesc& d);
    uint64_t kv_bytes() const { return kv_bytes_; }
    // Bytes alloc()'d outside the KV cache: activations, step buffers, tables, op scratch.
    virtual uint64_t buffer_bytes() const { return alloc_bytes_ > kv_bytes_ ? alloc_bytes_ - kv_bytes_ : 0; }

    // ---- steps
    // Runs one step's ops. The CPU simply calls body(); a GPU backend may capture body as a graph
    // the first time it sees `key` and replay it afterwards (key 0: never captured). A body that
    // is captured must read everything that varies from backend tensors.
    virtual void run_step(uint64_t key, const std::function<void()>& body) {
        (void)key;
        body();
    }
    // How many steps the engine may submit before reading the first one's ids: 1 for a
    // synchronous backend, 2 when the device runs a step while the host reads the last one.
    virtual int pipeline_depth() const { return 1; }

    // ---- token roles: in the ops that follow, the first n rows of every activation (and the first
    // n * k pairs of moe_ffn) are generated tokens (decode), the rest prompt tokens. A backend may
    // compute the two with different kernels (CUDA: CUDA-core matvecs for decode, tensor cores for
    // prompts), each with a reduction order that does not depend on the batch, so a sequence's
    // results never depend on what else is in its step. The decoder sets it every step; until
    // then every row is a decode row.
    void set_decode_rows(int64_t n) { decode_rows_ = n; }
    int64_t decode_rows() const { return decode_rows_; }

    // ---- ops (y = output; see the conventions above)
    // tokens[i] = in[i] >= 0 ? in[i] : st.last_id[slot[i]]; then st.history[slot[i]][pos[i]] = tokens[i].
    virtual void resolve_tokens(Tensor tokens, Tensor in, Tensor pos, Tensor slot, SlotState st) = 0;
    virtual void embed(Tensor y, Tensor table, Tensor ids) = 0;      // y[i] = table[ids[i]] as F32
    virtual void embed_add(Tensor y, Tensor table, Tensor ids) = 0;  // y[i] += table[ids[i]]
    virtual void get_rows(Tensor y, Tensor x, Tensor idx) = 0;       // y[i] = x[idx[i]] (F32)
    virtual void add(Tensor y, Tensor x) = 0;                        // y += x
    virtual void rms_norm(Tensor y, Tensor x, Tensor w, float eps) = 0;
    virtual void layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) = 0;
    virtual void matmul(Tensor y, Tensor x, Tensor w, const Tensor* bias) = 0;      // y = x·wᵀ + b
    virtual void matmul_add(Tensor y, Tensor x, Tensor w, const Tensor* bias) = 0;  // y += x·wᵀ + b
    // In place on x = [n_head*head_dim (or wider, strided), n_tokens]; pos: I32 [n_tokens];
    // p.inv_freq must be set (a backend tensor built at load: rope_inv_freq()).
    virtual void rope(Tensor x, Tensor pos, const RopeParams& p) = 0;
    // Stores k and v (F32 [kv_dim, n]) of each token at (slot[i], row pos[i] % n_rows).
    virtual void kv_store(KvLayer kv, Tensor k, Tensor v, Tensor pos, Tensor slot) = 0;
    // Causal attention of each query over its slot's cached positions <= pos[i] (and inside the
    // window); every position it sees, this step's included, must already be stored.
    // q: [n_head*head_dim, n], out: [n_head*head_dim, n]; s.seqs describes the sequences.
    virtual void attention(Tensor out, Tensor q, KvLayer kv, const StepTensors& s, const AttnParams& p) = 0;
    virtual void gelu(Tensor x) = 0;                            // in place, tanh approximation
    virtual void swiglu(Tensor y, Tensor gate, Tensor up) = 0;  // y = silu(gate) · up
    // gpt-oss: g = min(gate, limit), u = clamp(up, -limit, limit), y = g·σ(alpha·g)·(u + 1)
    virtual void swiglu_oai(Tensor y, Tensor gate, Tensor up, float alpha, float limit) = 0;
    // Router: ids/weights I32/F32 [k, n] = the k largest logits of each row (ties: lower id
    // first; NaN ranks last), weights = softmax over those k logits only.
    virtual void topk_softmax(Tensor ids, Tensor weights, Tensor logits, int k) = 0;
    // y[i] += Σ_j weights[i][j] · (down_e · act(gate_e·x[i] + gb_e, up_e·x[i] + ub_e) + db_e),
    // e = ids[i][j]; the sum runs in j order.
    virtual void moe_ffn(Tensor y, Tensor x, Tensor ids, Tensor weights, const MoeFfn& w) = 0;
    // ids[r] = the token drawn for row r of logits ([n_vocab, n_rows]), sequence slot[r] whose
    // last fed token sits at pos[r]; also st.last_id[slot[r]] = ids[r]. docs/sampling.md.
    virtual void sample(Tensor ids, Tensor logits, Tensor slot, Tensor pos, SlotState st) = 0;

    // ---- fused ops: the default bodies compose the primitives above; a backend overrides them
    // to save launches and round trips through memory. Outputs as their primitives say.
    // q, k, v = x·W(+b); RoPE on q and k; k and v stored in the cache. k and v are scratch.
    virtual void attn_in(Tensor q, Tensor k, Tensor v, Tensor x, const QkvWeights& w, KvLayer kv,
                         const StepTensors& s, const RopeParams* rq, const RopeParams* rk);
    // logits = x·Wᵀ + b, then topk_softmax. logits is scratch [n_expert, n].
    virtual void router_topk(Tensor ids, Tensor weights, Tensor logits, Tensor x, Tensor w, const Tensor* b,
                             int k);
    // y = rms_norm(x)·w_norm, then out = y·Wᵀ (+b).
    virtual void rms_norm_matmul(Tensor out, Tensor y, Tensor x, Tensor w_norm, float eps, Tensor w,
                                 const Tensor* b);

    // ---- memory plan: what a load or a reserve will allocate, checked before any of it is, so
    // a backend with fixed memory (CUDA) fails at once with the whole bill (VRAM_OOM: the bytes
    // needed, by part, and the bytes free) instead of on whichever allocation comes last.
    virtual void check_fits(uint64_t /*bytes*/, const std::string& /*what*/) {}
    virtual uint64_t scratch_bytes(const StepLimits& /*l*/) const { return 0; }  // reserve_scratch's
    uint64_t kv_cache_bytes(const KvCacheDesc& d) const;                         // make_kv_cache's

    // ---- debugging: named intermediates written as <dir>/<step>-<name>-<layer>.npy (WO_TAP=<dir>
    // or LoadOptions::tap_dir). The backend copies the tensor to the host; off unless a dir is set.
    void set_tap_dir(const std::string& dir);
    bool tapping() const { return !tap_dir_.empty(); }
    void begin_step() { ++tap_step_; }
    virtual void tap(const char* /*name*/, int /*layer*/, Tensor /*t*/) {}

protected:
    // attn_in's q, k, v = x·W(+b), from the fused qkv weight or the three; for overrides of attn_in.
    void qkv_projections(Tensor q, Tensor k, Tensor v, Tensor x, const QkvWeights& w);
    virtual GgmlType kv_type() const { return GgmlType::F32; }
    // Writes rows x cols of F32 or I32 host data as the tap file for (name, layer) of this step.
    void write_tap(const char* name, int layer, const void* host, int64_t rows, int64_t cols, bool i32) const;
    std::string tap_dir_;
    uint64_t tap_step_ = 0;
    uint64_t alloc_count_ = 0;  // incremented by alloc()
    uint64_t alloc_bytes_ = 0;  // added to by alloc()
    uint64_t kv_bytes_ = 0;
    int64_t decode_rows_ = INT64_MAX;
    std::vector<Buffer> kv_mem_;
};

struct BackendOptions {
    int n_threads = 0;  // CPU: 0 = all hardware threads
    int device = 0;     // CUDA device ordinal
    bool kv_f32 = false;  // keep the KV cache in F32 where the backend defaults to F16 (exactness tests)
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
