// The CUDA backend: every tensor resident in VRAM (weights in their stored formats), one
// non-blocking stream for all work, decode steps captured as CUDA graphs (run_step), and the
// kernels of kernels.h. Matches the CPU reference op by op (tests/cuda).
#pragma once
#include <cuda_runtime.h>

#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/kernels.h"

namespace wo::cuda {

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int device);
    ~CudaBackend() override;
    std::string name() const override { return "cuda"; }
    bool healthy() const override;

    Buffer alloc(size_t bytes, const char* what) override;
    Tensor weight(const void* host, GgmlType type, int64_t ne0, int64_t ne1, int64_t ne2,
                  const std::string& name) override;
    uint64_t weight_bytes() const override { return weight_bytes_; }
    // alloc()'d bytes outside the KV cache (activations, scratch, tables)
    uint64_t buffer_bytes() const override;
    std::string device() const override;
    void set_kv_f32(bool on) { kv_f32_ = on; }  // before make_kv_cache
    void upload(Tensor dst, const void* src, size_t bytes) override;
    void download(void* dst, Tensor src, size_t bytes) override;
    void zero(Tensor t) override;
    void sync() override;
    Buffer alloc_host(size_t bytes, const char* what) override;
    void download_async(void* dst, Tensor src, size_t bytes) override;
    uint64_t fence() override;
    void wait_fence(uint64_t f) override;
    void reserve_scratch(const StepLimits& l) override;
    uint64_t scratch_bytes(const StepLimits& l) const override;
    void check_fits(uint64_t bytes, const std::string& what) override;
    void run_step(uint64_t key, const std::function<void()>& body) override;
    int pipeline_depth() const override { return 2; }

    void resolve_tokens(Tensor tokens, Tensor in, Tensor pos, Tensor slot, SlotState st) override;
    void embed(Tensor y, Tensor table, Tensor ids) override;
    void embed_add(Tensor y, Tensor table, Tensor ids) override;
    void get_rows(Tensor y, Tensor x, Tensor idx) override;
    void add(Tensor y, Tensor x) override;
    void rms_norm(Tensor y, Tensor x, Tensor w, float eps) override;
    void layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) override;
    void matmul(Tensor y, Tensor x, Tensor w, const Tensor* bias) override;
    void matmul_add(Tensor y, Tensor x, Tensor w, const Tensor* bias) override;
    void rope(Tensor x, Tensor pos, const RopeParams& p) override;
    void kv_store(KvLayer kv, Tensor k, Tensor v, Tensor pos, Tensor slot) override;
    void attention(Tensor out, Tensor q, KvLayer kv, const StepTensors& s, const AttnParams& p) override;
    void gelu(Tensor x) override;
    void swiglu(Tensor y, Tensor gate, Tensor up) override;
    void swiglu_oai(Tensor y, Tensor gate, Tensor up, float alpha, float limit) override;
    void topk_softmax(Tensor ids, Tensor weights, Tensor logits, int k) override;
    void moe_ffn(Tensor y, Tensor x, Tensor ids, Tensor weights, const MoeFfn& w) override;
    void sample(Tensor ids, Tensor logits, Tensor slot, Tensor pos, SlotState st) override;
    // Fused ops: the default body's bits in fewer launches (the projections, then one kernel for
    // rope + rope + kv_store). router_topk keeps the default body: one kernel for the router
    // matmul and the top-k measured 24 us per layer, against ~10 us for the two, and the top-k in
    // the product's last CTA per token group no faster at batch 1, 3.7% slower at 32 streams
    // (bench/NOTES.md, nineteenth session).
    void attn_in(Tensor q, Tensor k, Tensor v, Tensor x, const QkvWeights& w, KvLayer kv,
                 const StepTensors& s, const RopeParams* rq, const RopeParams* rk) override;
    void tap(const char* name, int layer, Tensor t) override;  // synchronous; steps run eagerly then

    cudaStream_t stream() const { return stream_; }
    int graphs_captured() const { return n_captured_; }  // tests: how many keys became graphs

protected:
    GgmlType kv_type() const override { return kv_f32_ ? GgmlType::F32 : GgmlType::F16; }

private:
    void bind() const;  // makes device_ current on this thread
    // Rows [0, decode_split(n)) of an n-row op take the decode kernels, the rest the prompt
    // (tensor-core) kernels; WO_CUDA_MMA=0 sends every row to the decode kernels.
    int64_t decode_split(int64_t n) const;
    void matmul_rows(Tensor y, Tensor x, Tensor w, const Tensor* bias, bool accumulate);
    // attn_in's q / k / v products as one group (false: the weights do not qualify).
    bool qkv_group(Tensor q, Tensor k, Tensor v, Tensor x, const QkvWeights& w);
    void* device_alloc(size_t bytes, const char* what);  // cudaMalloc or VRAM_OOM
    struct Counters {
        uint64_t alloc_bytes = 0;
    };
    struct Graph {
        int seen = 0;
        cudaGraphExec_t exec = nullptr;
    };

    int device_ = 0;
    bool kv_f32_ = false;
    cudaStream_t stream_ = nullptr;
    std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
    uint64_t weight_bytes_ = 0;
    std::vector<Buffer> weights_;  // owned here: the model keeps views
    // Pinned staging for weight uploads: one buffer in flight per event.
    static constexpr size_t kStageBytes = size_t{64} << 20;
    static constexpr int kStages = 3;
    std::array<void*, kStages> stage_{};
    std::array<cudaEvent_t, kStages> stage_ev_{};
    uint64_t n_chunks_ = 0;
    // Fences: a ring of events; a fence id older than the ring waits on a later point (safe).
    static constexpr int kFences = 16;
    std::array<cudaEvent_t, kFences> fence_ev_{};
    uint64_t n_fences_ = 0;
    Buffer moe_scratch_, sample_scratch_, tmv_scratch_, attn_scratch_;
    // The split of an op's output's decode rows, made by the op itself (rms_norm_split, and the
    // decode attention's merge: up to kNormSplitRows rows of at most norm_split_cols_ columns),
    // which the tensor-core products over those rows read instead of splitting again (one launch
    // fewer per product: WO_CUDA_NORM_SPLIT=0 turns it off). Valid from the op until an op writes
    // its output (wrote()), another op splits into the buffer, or the step ends.
    static constexpr int64_t kNormSplitRows = 256;
    Buffer norm_split_;
    int64_t norm_split_cols_ = 0, norm_split_rows_ = 0;  // the buffer's room
    size_t norm_split_xm_ = 0;  // the multipliers' offset in norm_split_
    struct NormSplit {
        const uint8_t* src = nullptr;  // the norm's output rows [src, end)
        const uint8_t* end = nullptr;
        size_t nb1 = 0;
        int64_t rows = 0, cols = 0;  // split rows [0, rows)
    } norm_split_at_;
    // Room in norm_split_ for the split of `rows` rows of `cols` (its multipliers at norm_split_xm_).
    bool norm_split_room(int64_t rows, int64_t cols) const {
        return norm_split_.bytes > 0 && rows > 0 && rows <= norm_split_rows_ && cols <= norm_split_cols_ && cols % 32 == 0;
    }
    PreSplit presplit_for(const Tensor& x, int64_t nd) const;
    void wrote(const Tensor& y);                        // forgets a split whose rows y overlaps
    void forget_split(const void* data, size_t bytes);  // ... whose rows these bytes overlap
    void made_split(const Tensor& y, int64_t rows, int64_t nd);  // y's rows [0, nd) of `rows` split
    static size_t tmv_scratch_bytes(const StepLimits& l);
    bool graphs_ = true;
    std::unordered_map<uint64_t, Graph> graphs_by_key_;
    int n_captured_ = 0;
    std::unique_ptr<class OpProfile> prof_;  // WO_CUDA_PROFILE=1
};

// The factory register_backend() installs under "cuda".
std::unique_ptr<Backend> make_backend(int device, bool kv_f32 = false);

}  // namespace wo::cuda
