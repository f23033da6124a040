// GPT-2: learned absolute positions, LayerNorm with bias, fused qkv with bias, MHA, GELU (tanh),
// tied or untied output. Facts: shared/MODELS.md §6 (the converter transposed HF Conv1D weights,
// so every GGUF row is an output neuron).
#include <cmath>

#include "gguf/gguf.h"
#include "model/decoder.h"
#include "model/loader.h"
#include "model/registry.h"

namespace wo {
namespace {

struct Gpt2Layer {  // shapes: gpt2_tensors
    Tensor attn_norm, attn_norm_b, attn_qkv, attn_qkv_b, attn_out, attn_out_b;  // qkv: q|k|v
    Tensor ffn_norm, ffn_norm_b, ffn_up, ffn_up_b, ffn_down, ffn_down_b;
};

class Gpt2 final : public DecoderModel {
public:
    Gpt2(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> backend)
        : DecoderModel(f, std::move(backend)) {
        WeightLoader w(*f, be(), "gpt2");
        hp_ = read_hparams(w, "attention.layer_norm_epsilon");
        if (hp_.n_head_kv != hp_.n_head)
            w.fail("attention.head_count_kv must equal attention.head_count (GPT-2 is MHA)");
        if (hp_.head_dim * hp_.n_head != hp_.n_embd)
            w.fail("head_count x key_length must equal embedding_length");
        const TensorLayout layout = layout_of(*f);
        auto t = w.load(gpt2_tensors(hp_, layout));
        token_embd_ = t.at("token_embd.weight");
        position_embd_ = t.at("position_embd.weight");
        output_norm_ = t.at("output_norm.weight");
        output_norm_b_ = t.at("output_norm.bias");
        output_ = layout.tied ? token_embd_ : t.at("output.weight");
        layers_.resize(static_cast<size_t>(hp_.n_layer));
        for (int il = 0; il < hp_.n_layer; ++il) {
            auto T = [&, p = "blk." + std::to_string(il) + "."](const char* n) { return t.at(p + n); };
            Gpt2Layer& L = layers_[static_cast<size_t>(il)];
            L.attn_norm = T("attn_norm.weight"), L.attn_norm_b = T("attn_norm.bias");
            L.attn_qkv = T("attn_qkv.weight"), L.attn_qkv_b = T("attn_qkv.bias");
            L.attn_out = T("attn_output.weight"), L.attn_out_b = T("attn_output.bias");
            L.ffn_norm = T("ffn_norm.weight"), L.ffn_norm_b = T("ffn_norm.bias");
            L.ffn_up = T("ffn_up.weight"), L.ffn_up_b = T("ffn_up.bias");
            L.ffn_down = T("ffn_down.weight"), L.ffn_down_b = T("ffn_down.bias");
        }
        storage_ = w.storage();
        quant_kind_ = quant_kind_of(*f);
    }

private:
    int max_positions() const override { return hp_.n_ctx_train; }

    std::vector<std::pair<std::string, int64_t>> activations() const override {
        const int64_t d = hp_.n_embd;
        return {{"x", d}, {"h", d}, {"att", d}, {"qkv", 3 * d}, {"ffn", hp_.n_ff}, {"out_rows_h", d}};
    }

    void run(const Step& s, Tensor logits) override {
        Backend& b = be();
        const int64_t d = hp_.n_embd;
        Tensor x = act("x"), h = act("h"), att = act("att"), qkv = act("qkv"), ff = act("ffn");
        const AttnParams ap{
            hp_.n_head, hp_.n_head, hp_.head_dim, 1.0f / std::sqrt(static_cast<float>(hp_.head_dim)),
            0,          nullptr};

        b.embed(x, token_embd_, s.t.tokens);
        b.embed_add(x, position_embd_, s.t.pos);
        for (int il = 0; il < hp_.n_layer; ++il) {
            const Gpt2Layer& L = layers_[static_cast<size_t>(il)];
            b.layer_norm(h, x, L.attn_norm, L.attn_norm_b, hp_.norm_eps);
            b.tap("attn_norm", il, h);
            b.matmul(qkv, h, L.attn_qkv, &L.attn_qkv_b);
            b.kv_store(kv(il), qkv.col_range(d, d), qkv.col_range(2 * d, d), s.t.pos, s.t.slot);
            b.attention(att, qkv.col_range(0, d), kv(il), s.t, ap);
            b.matmul_add(x, att, L.attn_out, &L.attn_out_b);
            b.tap("ffn_inp", il, x);
            b.layer_norm(h, x, L.ffn_norm, L.ffn_norm_b, hp_.norm_eps);
            b.matmul(ff, h, L.ffn_up, &L.ffn_up_b);
            b.gelu(ff);
            b.matmul_add(x, ff, L.ffn_down, &L.ffn_down_b);
            b.tap("l_out", il, x);
        }
        b.layer_norm(h, x, output_norm_, output_norm_b_, hp_.norm_eps);
        b.tap("result_norm", -1, h);
        project(s, h, output_, logits);
    }

    Tensor token_embd_, position_embd_, output_norm_, output_norm_b_, output_;
    std::vector<Gpt2Layer> layers_;
};

}  // namespace

std::vector<TensorSpec> gpt2_tensors(const Hparams& hp, const TensorLayout& l) {
    using R = TensorRole;
    const int64_t d = hp.n_embd, ff = hp.n_ff;
    std::vector<TensorSpec> s = {{"token_embd.weight", {d, hp.n_vocab}, R::EMBEDDING}};
    if (!l.tied) s.push_back({"output.weight", {d, hp.n_vocab}, R::OUTPUT});
    s.insert(s.end(), {{"output_norm.weight", {d}, R::NORM},
                       {"position_embd.weight", {d, hp.n_ctx_train}, R::EMBEDDING},
                       {"output_norm.bias", {d}, R::BIAS}});
    for (int il = 0; il < hp.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        s.insert(s.end(), {
            {p + "attn_norm.weight", {d}, R::NORM},
            {p + "attn_norm.bias", {d}, R::BIAS},
            {p + "attn_qkv.weight", {d, 3 * d}, R::MATRIX},
            {p + "attn_qkv.bias", {3 * d}, R::BIAS},
            {p + "attn_output.weight", {d, d}, R::MATRIX},
            {p + "attn_output.bias", {d}, R::BIAS},
            {p + "ffn_norm.weight", {d}, R::NORM},
            {p + "ffn_norm.bias", {d}, R::BIAS},
            {p + "ffn_up.weight", {d, ff}, R::MATRIX},
            {p + "ffn_up.bias", {ff}, R::BIAS},
            {p + "ffn_down.weight", {ff, d}, R::MATRIX},
            {p + "ffn_down.bias", {d}, R::BIAS},
        });
    }
    return s;
}

std::unique_ptr<Model> load_gpt2(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> be) {
    return std::make_unique<Gpt2>(std::move(f), std::move(be));
}

}  // namespace wo
