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

struct LlamaLayer {
    Tensor attn_norm, ffn_norm;      // [d]
    std::optional<Tensor> attn_qkv;  // phi3: [d, q_dim + 2*kv_dim]
    Tensor attn_q, attn_k, attn_v;   // [d, q_dim], [d, kv_dim] x2
    std::optional<Tensor> attn_q_b, attn_k_b, attn_v_b, attn_out_b;
    Tensor attn_out;                 // [q_dim, d]
    std::optional<Tensor> ffn_gate;  // [d, ff]; absent for phi3 (gate is in ffn_up)
    Tensor ffn_up, ffn_down;         // [d, ff] or phi3 [d, 2*ff]; [ff, d]
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

        const int64_t d = hp_.n_embd, q_dim = int64_t{hp_.n_head} * hp_.head_dim,
                      kv_dim = int64_t{hp_.n_head_kv} * hp_.head_dim, ff = hp_.n_ff;
        token_embd_ = w.mat("token_embd.weight", {d, hp_.n_vocab});
        output_norm_ = w.f32("output_norm.weight", {d});
        output_ = w.opt_mat("output.weight", {d, hp_.n_vocab}).value_or(token_embd_);
        layers_.resize(static_cast<size_t>(hp_.n_layer));
        for (int il = 0; il < hp_.n_layer; ++il) {
            const std::string p = "blk." + std::to_string(il) + ".";
            LlamaLayer& L = layers_[static_cast<size_t>(il)];
            L.attn_norm = w.f32(p + "attn_norm.weight", {d});
            L.attn_qkv = w.opt_mat(p + "attn_qkv.weight", {d, q_dim + 2 * kv_dim});
            if (!L.attn_qkv) {
                L.attn_q = w.mat(p + "attn_q.weight", {d, q_dim});
                L.attn_k = w.mat(p + "attn_k.weight", {d, kv_dim});
                L.attn_v = w.mat(p + "attn_v.weight", {d, kv_dim});
                L.attn_q_b = w.opt_f32(p + "attn_q.bias", {q_dim});
                L.attn_k_b = w.opt_f32(p + "attn_k.bias", {kv_dim});
                L.attn_v_b = w.opt_f32(p + "attn_v.bias", {kv_dim});
            } else if (w.has(p + "attn_qkv.bias")) {
                w.fail("tensor " + p + "attn_qkv.bias is not supported");
            }
            L.attn_out = w.mat(p + "attn_output.weight", {q_dim, d});
            L.attn_out_b = w.opt_f32(p + "attn_output.bias", {d});
            L.ffn_norm = w.f32(p + "ffn_norm.weight", {d});
            L.ffn_gate = w.opt_mat(p + "ffn_gate.weight", {d, ff});
            L.ffn_up = w.mat(p + "ffn_up.weight", {d, L.ffn_gate ? ff : 2 * ff});
            L.ffn_down = w.mat(p + "ffn_down.weight", {ff, d});
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

std::unique_ptr<Model> load_llama(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> be) {
    const std::string arch = f->get_string("general.architecture");
    return std::make_unique<Llama>(std::move(f), std::move(be), arch);
}

}  // namespace wo
