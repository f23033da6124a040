// HF GPT2LMHeadModel -> GGUF gpt2 (llama.cpp conversion/gpt2.py). HF's Conv1D stores weights as
// [in, out]; GGUF rows are output neurons, so every Conv1D matrix is transposed.
#include "convert/arch.h"

namespace wo::convert {

void convert_gpt2(ArchContext& c) {
    const HfConfig& cfg = c.cfg;
    const Checkpoint& ck = c.ck;
    Emitter& em = c.em;
    c.arch = "gpt2";
    const int64_t d = c.dim("n_embd"), n_layer = c.dim("n_layer"), n_head = c.dim("n_head");
    const int64_t n_ctx = c.dim("n_positions"), n_vocab = c.dim("vocab_size");
    const int64_t ff = cfg.opt_int("n_inner").value_or(4 * d);
    if (d % n_head) cfg.fail("n_embd " + std::to_string(d) + " is not a multiple of n_head " + std::to_string(n_head));
    const std::string act = cfg.opt_string("activation_function").value_or("gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
        cfg.fail("activation_function '" + act + "' is not supported (GGUF gpt2 uses the tanh GELU: gelu_new)");
    for (const char* k : {"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"})
        if (cfg.opt_bool(k, false)) cfg.fail(std::string(k) + "=true is not supported");
    if (!cfg.opt_bool("scale_attn_weights", true)) cfg.fail("scale_attn_weights=false is not supported");

    c.set_u32("context_length", n_ctx);
    c.set_u32("embedding_length", d);
    c.set_u32("feed_forward_length", ff);
    c.set_u32("block_count", n_layer);
    c.set_u32("attention.head_count", n_head);
    c.set_f32("attention.layer_norm_epsilon", cfg.opt_float("layer_norm_epsilon").value_or(1e-5));

    // Hub GPT-2 checkpoints name tensors without the "transformer." prefix; save_pretrained adds it.
    const std::string p = ck.has("transformer.wte.weight") ? "transformer." : "";
    em.matrix("token_embd.weight", rows_of(ck.get(p + "wte.weight", {n_vocab, d})));
    c.n_vocab = n_vocab;
    em.matrix("position_embd.weight", rows_of(ck.get(p + "wpe.weight", {n_ctx, d})));
    for (int64_t il = 0; il < n_layer; ++il) {
        const std::string L = p + "h." + std::to_string(il) + ".";
        auto blk = [&](const char* n) { return ArchContext::blk(il, n); };
        em.f32(blk("attn_norm.weight"), rows_of(ck.get(L + "ln_1.weight", {d})));
        em.f32(blk("attn_norm.bias"), rows_of(ck.get(L + "ln_1.bias", {d})));
        em.matrix(blk("attn_qkv.weight"), transposed(ck.get(L + "attn.c_attn.weight", {d, 3 * d})));
        em.f32(blk("attn_qkv.bias"), rows_of(ck.get(L + "attn.c_attn.bias", {3 * d})));
        em.matrix(blk("attn_output.weight"), transposed(ck.get(L + "attn.c_proj.weight", {d, d})));
        em.f32(blk("attn_output.bias"), rows_of(ck.get(L + "attn.c_proj.bias", {d})));
        em.f32(blk("ffn_norm.weight"), rows_of(ck.get(L + "ln_2.weight", {d})));
        em.f32(blk("ffn_norm.bias"), rows_of(ck.get(L + "ln_2.bias", {d})));
        em.matrix(blk("ffn_up.weight"), transposed(ck.get(L + "mlp.c_fc.weight", {d, ff})));
        em.f32(blk("ffn_up.bias"), rows_of(ck.get(L + "mlp.c_fc.bias", {ff})));
        em.matrix(blk("ffn_down.weight"), transposed(ck.get(L + "mlp.c_proj.weight", {ff, d})));
        em.f32(blk("ffn_down.bias"), rows_of(ck.get(L + "mlp.c_proj.bias", {d})));
    }
    em.f32("output_norm.weight", rows_of(ck.get(p + "ln_f.weight", {d})));
    em.f32("output_norm.bias", rows_of(ck.get(p + "ln_f.bias", {d})));
    const bool tied = cfg.opt_bool("tie_word_embeddings", true);
    if (!tied) em.matrix("output.weight", rows_of(ck.get("lm_head.weight", {n_vocab, d})));
}

}  // namespace wo::convert
