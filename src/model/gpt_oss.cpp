// gpt-oss (20b/120b): RMSNorm, GQA with q/k/v/o biases, NeoX RoPE with YaRN, per-head attention
// sinks, a 128-token sliding window on even layers, MoE with top-k-then-softmax routing and a
// clamped SwiGLU over MXFP4 experts, untied output. Facts: shared/MODELS.md §1-§2; checked
// against HF modeling_gpt_oss.py and OAI gpt_oss/torch/model.py.
#include <cmath>

#include "gguf/gguf.h"
#include "model/decoder.h"
#include "model/loader.h"
#include "model/registry.h"

namespace wo {
namespace {

struct GptOssLayer {  // shapes: gpt_oss_tensors
    Tensor attn_norm, attn_q, attn_q_b, attn_k, attn_k_b, attn_v, attn_v_b, attn_out, attn_out_b;
    Tensor attn_sinks, post_attention_norm, gate_inp, gate_inp_b;
    Tensor gate_exps_b, up_exps_b, down_exps_b;
    MoeFfn moe;  // expert matrices (biases point at the above)
};

class GptOss final : public DecoderModel {
public:
    GptOss(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> backend)
        : DecoderModel(f, std::move(backend)) {
        WeightLoader w(*f, be(), "gpt-oss");
        hp_ = read_hparams(w, "attention.layer_norm_rms_epsilon");
        hp_.n_expert = static_cast<int>(w.req_int("expert_count"));
        hp_.n_expert_used = static_cast<int>(w.req_int("expert_used_count"));
        if (hp_.n_expert < 1 || hp_.n_expert_used < 1 || hp_.n_expert_used > hp_.n_expert)
            w.fail("expert_used_count " + std::to_string(hp_.n_expert_used) + " must be in 1..expert_count " +
                   std::to_string(hp_.n_expert));
        // The expert width has its own key in ggml-org files; older writers only set the dense one.
        hp_.n_ff = static_cast<int>(w.opt_int("expert_feed_forward_length").value_or(hp_.n_ff));
        swa_ = static_cast<int>(w.opt_int("attention.sliding_window").value_or(128));
        if (swa_ < 1) w.fail("attention.sliding_window " + std::to_string(swa_) + " must be >= 1");

        // YaRN constants not stored in GGUF (beta_fast 32, beta_slow 1) are the OAI defaults.
        rope_.mode = RopeMode::NEOX;
        rope_.n_dims = static_cast<int>(w.opt_int("rope.dimension_count").value_or(hp_.head_dim));
        if (rope_.n_dims < 2 || rope_.n_dims > hp_.head_dim || rope_.n_dims % 2)
            w.fail("rope.dimension_count " + std::to_string(rope_.n_dims) +
                   " is inconsistent with head_dim " + std::to_string(hp_.head_dim));
        rope_.head_dim = hp_.head_dim;
        rope_.freq_base = static_cast<float>(w.opt_float("rope.freq_base").value_or(150000.0));
        if (!(rope_.freq_base > 0) || !std::isfinite(rope_.freq_base))
            w.fail("metadata key " + w.key("rope.freq_base") + " = " + std::to_string(rope_.freq_base) + " must be > 0");
        const std::string scaling = w.opt_string("rope.scaling.type").value_or("yarn");
        if (scaling == "yarn") {
            rope_.scaling = RopeScaling::YARN;
            rope_.factor = static_cast<float>(w.opt_float("rope.scaling.factor").value_or(32.0));
            rope_.orig_ctx =
                static_cast<int>(w.opt_int("rope.scaling.original_context_length").value_or(4096));
            if (!(rope_.factor >= 1.0f) || !std::isfinite(rope_.factor) || rope_.orig_ctx < 1)
                w.fail("rope.scaling.factor/original_context_length out of range");
        } else if (scaling != "none") {
            w.fail("rope.scaling.type '" + scaling +
                   "' is not supported for gpt-oss (expected yarn or none)");
        }

        const TensorLayout layout = layout_of(*f);
        auto t = w.load(gpt_oss_tensors(hp_, layout));
        token_embd_ = t.at("token_embd.weight");
        output_norm_ = t.at("output_norm.weight");
        output_ = layout.tied ? token_embd_ : t.at("output.weight");
        layers_.resize(static_cast<size_t>(hp_.n_layer));
        for (int il = 0; il < hp_.n_layer; ++il) {
            auto T = [&, p = "blk." + std::to_string(il) + "."](const char* n) { return t.at(p + n); };
            GptOssLayer& L = layers_[static_cast<size_t>(il)];
            L.attn_norm = T("attn_norm.weight");
            L.attn_q = T("attn_q.weight"), L.attn_q_b = T("attn_q.bias");
            L.attn_k = T("attn_k.weight"), L.attn_k_b = T("attn_k.bias");
            L.attn_v = T("attn_v.weight"), L.attn_v_b = T("attn_v.bias");
            L.attn_out = T("attn_output.weight"), L.attn_out_b = T("attn_output.bias");
            L.attn_sinks = T("attn_sinks.weight");
            L.post_attention_norm = T("post_attention_norm.weight");
            L.gate_inp = T("ffn_gate_inp.weight"), L.gate_inp_b = T("ffn_gate_inp.bias");
            L.moe.gate = T("ffn_gate_exps.weight"), L.gate_exps_b = T("ffn_gate_exps.bias");
            L.moe.up = T("ffn_up_exps.weight"), L.up_exps_b = T("ffn_up_exps.bias");
            L.moe.down = T("ffn_down_exps.weight"), L.down_exps_b = T("ffn_down_exps.bias");
        }
        for (auto& L : layers_) {  // pointers into layers_ are stable only after the resize
            L.moe.gate_b = &L.gate_exps_b;
            L.moe.up_b = &L.up_exps_b;
            L.moe.down_b = &L.down_exps_b;
            L.moe.act = MoeAct::SWIGLU_OAI;
            L.moe.alpha = 1.702f;
            L.moe.limit = 7.0f;
        }
        storage_ = w.storage();
        quant_kind_ = quant_kind_of(*f);
        upload_rope(rope_);
    }

private:
    std::vector<std::pair<std::string, int64_t>> activations() const override {
        const int64_t d = hp_.n_embd, q_dim = int64_t{hp_.n_head} * hp_.head_dim,
                      kv_dim = int64_t{hp_.n_head_kv} * hp_.head_dim;
        return {{"x", d},       {"h", d},         {"att", q_dim},     {"q", q_dim},
                {"k", kv_dim},  {"v", kv_dim},    {"router", hp_.n_expert}, {"expert_w", hp_.n_expert_used},
                {"expert_ids", hp_.n_expert_used}, {"out_rows_h", d}};
    }
    int layer_window(int il) const override { return il % 2 == 0 ? swa_ : 0; }  // even layers slide

    void run(const Step& s, Tensor logits) override {
        Backend& b = be();
        Tensor x = act("x"), h = act("h"), att = act("att"), q = act("q"), kk = act("k"), v = act("v");
        Tensor router = act("router"), wts = act("expert_w"), ids = act("expert_ids");
        ids.type = GgmlType::I32;  // same size as F32; the buffer is only ever read as I32
        RopeParams rq = rope_, rk = rope_;
        rq.n_head = hp_.n_head;
        rk.n_head = hp_.n_head_kv;
        AttnParams ap{hp_.n_head, hp_.n_head_kv, hp_.head_dim,
                      1.0f / std::sqrt(static_cast<float>(hp_.head_dim)), 0, nullptr};

        b.embed(x, token_embd_, s.t.tokens);
        for (int il = 0; il < hp_.n_layer; ++il) {
            const GptOssLayer& L = layers_[static_cast<size_t>(il)];
            b.rms_norm(h, x, L.attn_norm, hp_.norm_eps);
            b.tap("attn_norm", il, h);
            QkvWeights w;
            w.q = &L.attn_q, w.k = &L.attn_k, w.v = &L.attn_v;
            w.q_b = &L.attn_q_b, w.k_b = &L.attn_k_b, w.v_b = &L.attn_v_b;
            b.attn_in(q, kk, v, h, w, kv(il), s.t, &rq, &rk);
            ap.window = layer_window(il);
            ap.sinks = &L.attn_sinks;
            b.attention(att, q, kv(il), s.t, ap);
            b.tap("attn_out", il, att);
            b.matmul_add(x, att, L.attn_out, &L.attn_out_b);
            b.tap("ffn_inp", il, x);
            b.rms_norm(h, x, L.post_attention_norm, hp_.norm_eps);
            b.router_topk(ids, wts, router, h, L.gate_inp, &L.gate_inp_b, hp_.n_expert_used);
            b.tap("router", il, router);
            b.tap("expert_ids", il, ids);
            b.moe_ffn(x, h, ids, wts, L.moe);
            b.tap("l_out", il, x);
        }
        b.rms_norm(h, x, output_norm_, hp_.norm_eps);
        b.tap("result_norm", -1, h);
        project(s, h, output_, logits);
    }

    RopeParams rope_;
    int swa_ = 128;
    Tensor token_embd_, output_norm_, output_;
    std::vector<GptOssLayer> layers_;
};

}  // namespace

std::vector<TensorSpec> gpt_oss_tensors(const Hparams& hp, const TensorLayout& l) {
    using R = TensorRole;
    const int64_t d = hp.n_embd, q = int64_t{hp.n_head} * hp.head_dim, kv = int64_t{hp.n_head_kv} * hp.head_dim,
                  ff = hp.n_ff, ne = hp.n_expert;
    std::vector<TensorSpec> s = {{"token_embd.weight", {d, hp.n_vocab}, R::EMBEDDING}};
    if (!l.tied) s.push_back({"output.weight", {d, hp.n_vocab}, R::OUTPUT});
    s.push_back({"output_norm.weight", {d}, R::NORM});
    for (int il = 0; il < hp.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        s.insert(s.end(), {
            {p + "attn_norm.weight", {d}, R::NORM},
            {p + "attn_q.weight", {d, q}, R::MATRIX},
            {p + "attn_q.bias", {q}, R::BIAS},
            {p + "attn_k.weight", {d, kv}, R::MATRIX},
            {p + "attn_k.bias", {kv}, R::BIAS},
            {p + "attn_v.weight", {d, kv}, R::MATRIX},
            {p + "attn_v.bias", {kv}, R::BIAS},
            {p + "attn_output.weight", {q, d}, R::MATRIX},
            {p + "attn_output.bias", {d}, R::BIAS},
            {p + "attn_sinks.weight", {hp.n_head}, R::SINKS},
            {p + "post_attention_norm.weight", {d}, R::NORM},  // the pre-MoE norm
            {p + "ffn_gate_inp.weight", {d, ne}, R::ROUTER},
            {p + "ffn_gate_inp.bias", {ne}, R::BIAS},
            {p + "ffn_gate_exps.weight", {d, ff, ne}, R::EXPERTS},
            {p + "ffn_gate_exps.bias", {ff, ne}, R::BIAS},
            {p + "ffn_up_exps.weight", {d, ff, ne}, R::EXPERTS},
            {p + "ffn_up_exps.bias", {ff, ne}, R::BIAS},
            {p + "ffn_down_exps.weight", {ff, d, ne}, R::EXPERTS},
            {p + "ffn_down_exps.bias", {d, ne}, R::BIAS},
        });
    }
    return s;
}

std::unique_ptr<Model> load_gpt_oss(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> be) {
    return std::make_unique<GptOss>(std::move(f), std::move(be));
}

}  // namespace wo
