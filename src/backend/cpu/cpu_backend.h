// The CPU reference backend: plain loops, f32 accumulation, weights read in their stored
// formats (one row at a time dequantized into a per-thread buffer), multithreaded by rows.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/thread_pool.h"

namespace wo::cpu {

// Dot product with eight independent accumulators (lets the compiler vectorize and keeps the
// summation order fixed, so a row's result never depends on the batch it is in).
float dot(const float* a, const float* b, int64_t n);

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(int n_threads);
    std::string name() const override { return "cpu"; }

    Buffer alloc(size_t bytes, const char* what) override;
    Tensor weight(const void* host, GgmlType type, int64_t ne0, int64_t ne1, int64_t ne2,
                  const std::string& name) override;
    uint64_t weight_bytes() const override { return weight_bytes_; }
    void upload(Tensor dst, const void* src, size_t bytes) override;
    void download(void* dst, Tensor src, size_t bytes) override;
    void zero(Tensor t) override;
    void sync() override {}

    void resolve_tokens(Tensor tokens, Tensor in, Tensor pos, Tensor slot, SlotState st) override;
    void sample(Tensor ids, Tensor logits, Tensor slot, Tensor pos, SlotState st) override;
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

    void tap(const char* name, int layer, Tensor t) override;

    ThreadPool& pool() { return pool_; }

private:
    // y[y_rows[i]] (+)= x[x_rows[i]] · wᵀ + bias for i < n (row lists null = identity). Each
    // weight row is dequantized once and used for every token of the call.
    void matmul_rows(Tensor y, const int32_t* y_rows, Tensor x, const int32_t* x_rows, int64_t n, Tensor w,
                     const float* bias, bool accumulate);
    float* scratch(int thread, size_t n_floats);  // per-thread buffer, grown on demand

    ThreadPool pool_;
    std::vector<std::vector<float>> scratch_;
    uint64_t weight_bytes_ = 0;
    std::vector<float> moe_gate_, moe_up_, moe_out_;  // reused across calls
};

}  // namespace wo::cpu
