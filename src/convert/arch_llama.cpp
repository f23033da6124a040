// HF LlamaForCausalLM / Qwen2ForCausalLM / Phi3ForCausalLM -> GGUF llama / qwen2 / phi3
// (llama.cpp conversion/llama.py, qwen.py, phi3 in convert_hf_to_gguf.py).
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "convert/arch.h"

namespace wo::convert {
namespace {

// Llama 3.1 "llama3" RoPE: per-pair frequency divisors stored as rope_freqs.weight, computed as
// llama.cpp's converter does from the config's low/high frequency factors.
std::vector<float> llama3_rope_factors(const HfConfig& cfg, const RopeConfig& r, int64_t n_dims) {
    auto num = [&](const char* k) {
        if (!r.params.contains(k) || !r.params[k].is_number()) cfg.fail(std::string("rope llama3 needs a numeric ") + k);
        return r.params[k].get<double>();
    };
    const double factor = num("factor"), low = num("low_freq_factor"), high = num("high_freq_factor");
    const double old_ctx = num("original_max_position_embeddings");
    if (!(high > low)) cfg.fail("rope llama3: high_freq_factor must exceed low_freq_factor");
    const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
    std::vector<float> out;
    for (int64_t i = 0; i < n_dims; i += 2) {
        const double freq = 1.0 / std::pow(r.theta, double(i) / double(n_dims));
        const double wavelen = 2 * M_PI / freq;
        double f = 1.0;
        if (wavelen > low_wavelen) {
            f = factor;
        } else if (wavelen >= high_wavelen) {
            const double smooth = (old_ctx / wavelen - low) / (high - low);
            f = 1.0 / ((1 - smooth) / factor + smooth);
        }
        out.push_back(float(f));
    }
    return out;
}

}  // namespace

void convert_llama_family(ArchContext& c, const std::string& arch) {
    const HfConfig& cfg = c.cfg;
    c.arch = arch;
    const int64_t d = c.dim("hidden_size"), n_layer = c.dim("num_hidden_layers"), n_head = c.dim("num_attention_heads");
    const int64_t n_kv = cfg.opt_int("num_key_value_heads").value_or(n_head), ff = c.dim("intermediate_size");
    const int64_t n_vocab = c.dim("vocab_size");
    const int64_t hd = cfg.opt_int("head_dim").value_or(d / n_head);
    if (n_kv <= 0 || n_head % n_kv) cfg.fail("num_attention_heads must be a multiple of num_key_value_heads");
    if (hd <= 0 || hd % 2) cfg.fail("head_dim " + std::to_string(hd) + " must be positive and even");
    if (cfg.opt_bool("mlp_bias", false)) cfg.fail("mlp_bias=true is not supported (GGUF llama has no FFN biases here)");

    const RopeConfig rope = cfg.rope(10000.0);
    double prf = cfg.opt_float("partial_rotary_factor").value_or(1.0);
    if (rope.params.contains("partial_rotary_factor") && rope.params["partial_rotary_factor"].is_number())
        prf = rope.params["partial_rotary_factor"].get<double>();
    const int64_t n_rot = static_cast<int64_t>(double(hd) * prf);
    if (n_rot <= 0 || n_rot > hd || n_rot % 2) cfg.fail("partial_rotary_factor gives " + std::to_string(n_rot) + " rotary dims");

    c.set_u32("context_length", c.dim("max_position_embeddings"));
    c.set_u32("embedding_length", d);
    c.set_u32("block_count", n_layer);
    c.set_u32("feed_forward_length", ff);
    c.set_u32("attention.head_count", n_head);
    c.set_u32("attention.head_count_kv", n_kv);
    if (hd != d / n_head || d % n_head) {
        c.set_u32("attention.key_length", hd);
        c.set_u32("attention.value_length", hd);
    }
    c.set_f32("attention.layer_norm_rms_epsilon", cfg.req_float("rms_norm_eps"));
    c.set_u32("rope.dimension_count", n_rot);
    c.set_f32("rope.freq_base", rope.theta);
    c.set_u32("vocab_size", n_vocab);
    if (arch == "phi3" && cfg.has("original_max_position_embeddings"))
        c.set_u32("rope.scaling.original_context_length", c.dim("original_max_position_embeddings"));

    std::vector<float> rope_freqs;
    auto rope_num = [&](const char* k) {
        if (!rope.params.contains(k) || !rope.params[k].is_number()) cfg.fail(std::string("rope scaling needs a numeric ") + k);
        return rope.params[k].get<double>();
    };
    if (rope.type == "linear") {
        c.set_str("rope.scaling.type", "linear");
        c.set_f32("rope.scaling.factor", rope_num("factor"));
    } else if (rope.type == "yarn") {
        c.set_str("rope.scaling.type", "yarn");
        c.set_f32("rope.scaling.factor", rope_num("factor"));
        if (rope.params.contains("original_max_position_embeddings"))
            c.set_u32("rope.scaling.original_context_length", int64_t(rope_num("original_max_position_embeddings")));
    } else if (rope.type == "llama3") {
        rope_freqs = llama3_rope_factors(cfg, rope, n_rot);
    } else if (rope.type != "default") {
        cfg.fail("rope type '" + rope.type + "' is not supported for " + arch);
    }

    // Sliding windows: Qwen2 only with use_sliding_window (not supported: it applies to some
    // layers only); Phi-3 applies its window to every layer, which GGUF expresses.
    if (arch == "qwen2" && cfg.opt_bool("use_sliding_window", false))
        cfg.fail("use_sliding_window=true is not supported for qwen2");
    if (arch == "phi3" && cfg.has("sliding_window")) c.set_u32("attention.sliding_window", c.dim("sliding_window"));
    if (arch == "llama" && cfg.has("sliding_window")) cfg.fail("sliding_window is not supported for llama");

    const Checkpoint& ck = c.ck;
    Emitter& em = c.em;
    em.matrix("token_embd.weight", rows_of(ck.get("model.embed_tokens.weight", {n_vocab, d})));
    c.n_vocab = n_vocab;
    if (!rope_freqs.empty()) {
        // A computed tensor, not from the checkpoint: written from the vector directly.
        auto bytes = std::make_shared<std::vector<float>>(rope_freqs);
        em.custom("rope_freqs.weight", GgmlType::F32, {uint64_t(bytes->size())}, [bytes](uint8_t* dst, size_t n) {
            std::memcpy(dst, bytes->data(), n);
        });
    }
    const std::string p = "model.layers.";
    for (int64_t il = 0; il < n_layer; ++il) {
        const std::string L = p + std::to_string(il) + ".";
        auto blk = [&](const char* n) { return ArchContext::blk(il, n); };
        em.f32(blk("attn_norm.weight"), rows_of(ck.get(L + "input_layernorm.weight", {d})));
        if (arch == "phi3") {
            em.matrix(blk("attn_qkv.weight"), rows_of(ck.get(L + "self_attn.qkv_proj.weight", {(n_head + 2 * n_kv) * hd, d})));
        } else {
            RowSource q = rows_of(ck.get(L + "self_attn.q_proj.weight", {n_head * hd, d}));
            RowSource k = rows_of(ck.get(L + "self_attn.k_proj.weight", {n_kv * hd, d}));
            // Only llama is permuted: its GGUF uses adjacent-pair RoPE; qwen2/phi3 keep half-split.
            if (arch == "llama") q = permute_heads(q, n_head), k = permute_heads(k, n_kv);
            em.matrix(blk("attn_q.weight"), q);
            em.matrix(blk("attn_k.weight"), k);
            em.matrix(blk("attn_v.weight"), rows_of(ck.get(L + "self_attn.v_proj.weight", {n_kv * hd, d})));
            const char* names[3] = {"q", "k", "v"};
            const int64_t heads[3] = {n_head, n_kv, n_kv};
            for (int i = 0; i < 3; ++i) {
                const std::string bn = L + "self_attn." + names[i] + "_proj.bias";
                if (!ck.has(bn)) continue;
                RowSource b = elements_of(ck.get(bn, {heads[i] * hd}));
                if (arch == "llama" && i < 2) b = permute_heads(b, heads[i]);
                em.f32(blk((std::string("attn_") + names[i] + ".bias").c_str()), b, {uint64_t(heads[i] * hd)});
            }
        }
        if (arch == "phi3" && ck.has(L + "self_attn.qkv_proj.bias"))
            em.f32(blk("attn_qkv.bias"), rows_of(ck.get(L + "self_attn.qkv_proj.bias", {(n_head + 2 * n_kv) * hd})));
        em.matrix(blk("attn_output.weight"), rows_of(ck.get(L + "self_attn.o_proj.weight", {d, n_head * hd})));
        if (ck.has(L + "self_attn.o_proj.bias"))
            em.f32(blk("attn_output.bias"), rows_of(ck.get(L + "self_attn.o_proj.bias", {d})));
        em.f32(blk("ffn_norm.weight"), rows_of(ck.get(L + "post_attention_layernorm.weight", {d})));
        if (arch == "phi3") {
            // gate_up_proj rows are gate (first ff) then up, which is what GGUF phi3's ffn_up holds.
            em.matrix(blk("ffn_up.weight"), rows_of(ck.get(L + "mlp.gate_up_proj.weight", {2 * ff, d})));
        } else {
            em.matrix(blk("ffn_gate.weight"), rows_of(ck.get(L + "mlp.gate_proj.weight", {ff, d})));
            em.matrix(blk("ffn_up.weight"), rows_of(ck.get(L + "mlp.up_proj.weight", {ff, d})));
        }
        em.matrix(blk("ffn_down.weight"), rows_of(ck.get(L + "mlp.down_proj.weight", {d, ff})));
    }
    em.f32("output_norm.weight", rows_of(ck.get("model.norm.weight", {d})));
    // Tied embeddings write no output.weight (llama.cpp then reuses token_embd). Without the key,
    // the checkpoint decides.
    const bool tied = cfg.has("tie_word_embeddings") ? cfg.opt_bool("tie_word_embeddings", false) : !ck.has("lm_head.weight");
    if (!tied) {
        em.matrix("output.weight", rows_of(ck.get("lm_head.weight", {n_vocab, d})));
    }
}

}  // namespace wo::convert
