// Llama family: llama, qwen2 (q/k/v biases), phi3 (fused attn_qkv and ffn_up = gate|up).
// RMSNorm, RoPE (llama: adjacent pairs, the converter permuted Q/K; qwen2/phi3: NeoX halves),
// GQA, SwiGLU; tied embeddings when output.weight is absent. Facts: shared/MODELS.md §6.
#include <cmath>

#include "gguf/gguf.h"
#include "model/decoder.h"
#include "model/loader.h"
#include "model/registry.h"

namespace wo {
namespace {

struct LlamaLayer {  // shapes: llama_tensors
    Tensor attn_norm, ffn_norm;
    std::optional<Tensor> attn_qkv;  // phi3: q|k|v in one matrix
    Tensor attn_q, attn_k, attn_v;
    std::optional<Tensor> attn_q_b, attn_k_b, attn_v_b, attn_out_b;
    Tensor attn_out;
    std::optional<Tensor> ffn_gate;  // absent for phi3 (gate|up are ffn_up)
    Tensor ffn_up, ffn_down;
};

const Tensor* ptr(const std::optional<Tensor>& t) { return t ? &*t : nullptr; }

class Llama final : public DecoderModel {
public:
    Llama(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> backend, const std::string& arch)
        : DecoderModel(f, std::move(backend)) {
        WeightLoader w(*f, be(), arch);
        hp_ = read_hparams(w, "attention.layer_norm_rms_epsilon");
        rope_.mode = arch == "llama" ? RopeMode::NORM : RopeMode::NEOX;
        rope_.head_dim = hp_.head_dim;
        rope_.n_dims = static_cast<int>(w.opt_int("rope.dimension_count").value_or(hp_.head_dim));
        if (rope_.n_dims < 2 || rope_.n_dims > hp_.head_dim || rope_.n_dims % 2)
            w.fail("rope.dimension_count " + std::to_string(rope_.n_dims) +
                   " is inconsistent with head_dim " + std::to_string(hp_.head_dim));
        rope_.freq_base = static_cast<float>(w.opt_float("rope.freq_base").value_or(10000.0));
        if (!(rope_.freq_base > 0) || !std::isfinite(rope_.freq_base))
            w.fail("metadata key " + w.key("rope.freq_base") + " = " + std::to_string(rope_.freq_base) + " must be > 0");
        const std::string scaling = w.opt_string("rope.scaling.type").value_or("none");
        if (scaling == "linear" || scaling == "yarn") {
            rope_.scaling = scaling == "linear" ? RopeScaling::LINEAR : RopeScaling::YARN;
            rope_.factor = static_cast<float>(w.req_float("rope.scaling.factor"));
            rope_.orig_ctx =
                static_cast<int>(w.opt_int("rope.scaling.original_context_length").value_or(hp_.n_ctx_train));
            if (!(rope_.factor > 0.0f) || !std::isfinite(rope_.factor))
                w.fail("metadata key " + w.key("rope.scaling.factor") + " must be > 0");
        } else if (scaling != "none") {
            w.fail("rope.scaling.type '" + scaling + "' is not supported");
        }
        if (w.has("rope_factors_long.weight") || w.has("rope_factors_short.weight"))
            w.fail("LongRoPE (rope_factors_long/short) is not supported");
        if (auto ff = w.opt_host_f32("rope_freqs.weight", {rope_.n_dims / 2})) {  // Llama 3.1 per-pair divisors
            rope_.freq_factors = std::move(*ff);
        }
        swa_ = static_cast<int>(w.opt_int("attention.sliding_window").value_or(0));

        const TensorLayout layout = layout_of(*f);
        if (layout.fused_qkv && w.has("blk.0.attn_qkv.bias")) w.fail("tensor blk.0.attn_qkv.bias is not supported");
        auto t = w.load(llama_tensors(hp_, layout));
        token_embd_ = t.at("token_embd.weight");
        output_norm_ = t.at("output_norm.weight");
        output_ = layout.tied ? token_embd_ : t.at("output.weight");
        layers_.resize(static_cast<size_t>(hp_.n_layer));
        for (int il = 0; il < hp_.n_layer; ++il) {
            const std::string p = "blk." + std::to_string(il) + ".";
            auto T = [&](const char* n) { return t.at(p + n); };
            auto opt = [&](const char* n) { return t.count(p + n) ? std::optional(T(n)) : std::nullopt; };
            LlamaLayer& L = layers_[static_cast<size_t>(il)];
            L.attn_norm = T("attn_norm.weight"), L.attn_qkv = opt("attn_qkv.weight");
            if (!L.attn_qkv) L.attn_q = T("attn_q.weight"), L.attn_k = T("attn_k.weight"), L.attn_v = T("attn_v.weight");
            L.attn_q_b = opt("attn_q.bias"), L.attn_k_b = opt("attn_k.bias"), L.attn_v_b = opt("attn_v.bias");
            L.attn_out = T("attn_output.weight"), L.attn_out_b = opt("attn_output.bias");
            L.ffn_norm = T("ffn_norm.weight"), L.ffn_gate = opt("ffn_gate.weight");
            L.ffn_up = T("ffn_up.weight"), L.ffn_down = T("ffn_down.weight");
        }
        storage_ = w.storage();
        quant_kind_ = quant_kind_of(*f);
        upload_rope(rope_);
    }

private:
    std::vector<std::pair<std::string, int64_t>> activations() const override {
        const int64_t d = hp_.n_embd, q_dim = int64_t{hp_.n_head} * hp_.head_dim,
                      kv_dim = int64_t{hp_.n_head_kv} * hp_.head_dim;
        return {{"x", d},          {"h", d},   {"att", q_dim}, {"qkv", q_dim + 2 * kv_dim},
                {"gate_up", 2 * hp_.n_ff}, {"ffn", hp_.n_ff}, {"out_rows_h", d}};
    }
    int layer_window(int) const override { return swa_; }

    void run(const Step& s, Tensor logits) override {
        Backend& b = be();
        const int64_t d = hp_.n_embd, hd = hp_.head_dim, ff = hp_.n_ff;
        const int64_t q_dim = hp_.n_head * hd, kv_dim = hp_.n_head_kv * hd;
        Tensor x = act("x"), h = act("h"), att = act("att"), qkv = act("qkv");
        Tensor q = qkv.col_range(0, q_dim), k = qkv.col_range(q_dim, kv_dim),
               v = qkv.col_range(q_dim + kv_dim, kv_dim);
        Tensor gu = act("gate_up"), y = act("ffn");
        Tensor gate = gu.col_range(0, ff), up = gu.col_range(ff, ff);
        RopeParams rq = rope_, rk = rope_;
        rq.n_head = hp_.n_head;
        rk.n_head = hp_.n_head_kv;
        const AttnParams ap{hp_.n_head, hp_.n_head_kv, hp_.head_dim, 1.0f / std::sqrt(static_cast<float>(hd)),
                            swa_,       nullptr};
        (void)d;

        b.embed(x, token_embd_, s.t.tokens);
        for (int il = 0; il < hp_.n_layer; ++il) {
            const LlamaLayer& L = layers_[static_cast<size_t>(il)];
            b.rms_norm(h, x, L.attn_norm, hp_.norm_eps);
            b.tap("attn_norm", il, h);
            QkvWeights w;
            if (L.attn_qkv) {
                w.qkv = &*L.attn_qkv;
            } else {
                w.q = &L.attn_q, w.k = &L.attn_k, w.v = &L.attn_v;
                w.q_b = ptr(L.attn_q_b), w.k_b = ptr(L.attn_k_b), w.v_b = ptr(L.attn_v_b);
            }
            b.attn_in(q, k, v, h, w, kv(il), s.t, &rq, &rk);
            b.attention(att, q, kv(il), s.t, ap);
            b.matmul_add(x, att, L.attn_out, ptr(L.attn_out_b));
            b.tap("ffn_inp", il, x);
            b.rms_norm(h, x, L.ffn_norm, hp_.norm_eps);
            if (L.ffn_gate) {
                b.matmul(gate, h, *L.ffn_gate, nullptr);
                b.matmul(up, h, L.ffn_up, nullptr);
            } else {
                b.matmul(gu, h, L.ffn_up, nullptr);  // phi3: one matmul yields gate|up
            }
            b.swiglu(y, gate, up);
            b.matmul_add(x, y, L.ffn_down, nullptr);
            b.tap("l_out", il, x);
        }
        b.rms_norm(h, x, output_norm_, hp_.norm_eps);
        b.tap("result_norm", -1, h);
        project(s, h, output_, logits);
    }

    RopeParams rope_;
    int swa_ = 0;
    Tensor token_embd_, output_norm_, output_;
    std::vector<LlamaLayer> layers_;
};

}  // namespace

std::vector<TensorSpec> llama_tensors(const Hparams& hp, const TensorLayout& l) {
    using R = TensorRole;
    const int64_t d = hp.n_embd, q = int64_t{hp.n_head} * hp.head_dim, kv = int64_t{hp.n_head_kv} * hp.head_dim,
                  ff = hp.n_ff;
    std::vector<TensorSpec> s = {{"token_embd.weight", {d, hp.n_vocab}, R::EMBEDDING}};
    if (!l.tied) s.push_back({"output.weight", {d, hp.n_vocab}, R::OUTPUT});
    s.push_back({"output_norm.weight", {d}, R::NORM});
    for (int il = 0; il < hp.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        auto add = [&](const char* n, std::vector<int64_t> shape, R r) { s.push_back({p + n, std::move(shape), r}); };
        add("attn_norm.weight", {d}, R::NORM);
        if (l.fused_qkv) {
            add("attn_qkv.weight", {d, q + 2 * kv}, R::MATRIX);
        } else {
            add("attn_q.weight", {d, q}, R::MATRIX);
            add("attn_k.weight", {d, kv}, R::MATRIX);
            add("attn_v.weight", {d, kv}, R::MATRIX);
            if (l.qkv_bias) add("attn_q.bias", {q}, R::BIAS), add("attn_k.bias", {kv}, R::BIAS), add("attn_v.bias", {kv}, R::BIAS);
        }
        add("attn_output.weight", {q, d}, R::MATRIX);
        if (l.out_bias) add("attn_output.bias", {d}, R::BIAS);
        add("ffn_norm.weight", {d}, R::NORM);
        if (!l.fused_gate_up) add("ffn_gate.weight", {d, ff}, R::MATRIX);
        add("ffn_up.weight", {d, l.fused_gate_up ? 2 * ff : ff}, R::MATRIX);
        add("ffn_down.weight", {ff, d}, R::MATRIX);
    }
    return s;
}

std::unique_ptr<Model> load_llama(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> be) {
    const std::string arch = f->get_string("general.architecture");
    return std::make_unique<Llama>(std::move(f), std::move(be), arch);
}

}  // namespace wo
