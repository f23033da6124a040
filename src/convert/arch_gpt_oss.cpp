// HF GptOssForCausalLM -> GGUF gpt-oss (llama.cpp conversion/gpt_oss.py; shared/MODELS.md §2).
// MXFP4 experts are repacked bit for bit (quant::mxfp4_from_hf); float experts become MXFP4 only
// where that is lossless or asked for (docs/convert.md); the fused gate_up projection is split
// into gate (rows 0::2) and up (rows 1::2).
#include <cmath>

#include "convert/arch.h"
#include "quant/quant.h"
#include "util/error.h"
#include "util/log.h"

namespace wo::convert {
namespace {

// GGUF can only say "yarn, factor, original context"; anything else the config sets must be
// what llama.cpp and worker-orcd hard-code for gpt-oss, or the file would silently differ.
void check_fixed(const HfConfig& cfg, const RopeConfig& rope) {
    if (rope.type != "yarn") cfg.fail("gpt-oss rope type '" + rope.type + "' is not supported (expected yarn)");
    auto expect = [&](const char* k, double want) {
        if (!rope.params.contains(k) || rope.params[k].is_null()) return;
        if (!rope.params[k].is_number() || rope.params[k].get<double>() != want)
            cfg.fail(std::string("rope ") + k + " = " + rope.params[k].dump() + " cannot be stored in GGUF (gpt-oss fixes it at " +
                     std::to_string(want) + ")");
    };
    expect("beta_fast", 32.0);
    expect("beta_slow", 1.0);
    if (rope.params.contains("truncate") && rope.params["truncate"].is_boolean() && rope.params["truncate"].get<bool>())
        cfg.fail("rope truncate=true is not supported (worker-orcd follows the official truncate=false)");
    if (auto a = cfg.opt_float("swiglu_alpha"); a && std::fabs(*a - 1.702) > 1e-6) cfg.fail("swiglu_alpha must be 1.702");
    if (auto l = cfg.opt_float("swiglu_limit"); l && *l != 7.0) cfg.fail("swiglu_limit must be 7");
    if (cfg.has("layer_types")) {
        const auto& lt = cfg.json()["layer_types"];
        if (!lt.is_array()) cfg.fail("layer_types is not an array");
        for (size_t i = 0; i < lt.size(); ++i) {
            const char* want = i % 2 == 0 ? "sliding_attention" : "full_attention";
            if (lt[i] != want)
                cfg.fail("layer_types[" + std::to_string(i) + "] = " + lt[i].dump() + "; GGUF gpt-oss fixes even layers sliding, odd full");
        }
    }
}

// The three expert matrices of layer il held as floats, as GGUF rows: gate and up are rows 0::2
// and 1::2 of gate_up_proj ([E·ff rows of d]); down is [E·d rows of ff].
struct ExpertSources {
    const char* names[3] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"};
    RowSource src[3];
};

ExpertSources expert_sources(const ArchContext& c, int64_t il) {
    const int64_t d = c.dim("hidden_size"), ff = c.dim("intermediate_size"), n_exp = c.dim("num_local_experts");
    const std::string X = "model.layers." + std::to_string(il) + ".mlp.experts.";
    const StTensor& gu = c.ck.get(X + "gate_up_proj");
    const StTensor& dn = c.ck.get(X + "down_proj");
    // transformers saves them in its module layout [E, in, out]; the hub's [E, out, in] is read too.
    const bool io = gu.shape == std::vector<int64_t>{n_exp, d, 2 * ff};
    if (!io && gu.shape != std::vector<int64_t>{n_exp, 2 * ff, d})
        c.cfg.fail("tensor " + gu.name + " has shape " + shape_str(gu.shape) + ", expected [E, hidden, 2*ff] or [E, 2*ff, hidden]");
    c.ck.get(dn.name, io ? std::vector<int64_t>{n_exp, ff, d} : std::vector<int64_t>{n_exp, d, ff});
    ExpertSources es;
    for (int half = 0; half < 2; ++half) {
        RowSource& s = es.src[half];
        s.t = &gu;
        s.n_rows = n_exp * ff;
        s.n_cols = d;
        s.stride = io ? 2 * ff : 1;
        s.start = [=](int64_t r) {
            const int64_t e = r / ff, j = r % ff;
            return io ? e * d * 2 * ff + 2 * j + half : (e * 2 * ff + 2 * j + half) * d;
        };
    }
    RowSource& s = es.src[2];
    s.t = &dn;
    s.n_rows = n_exp * d;
    s.n_cols = ff;
    s.stride = io ? d : 1;
    s.start = [=](int64_t r) {
        const int64_t e = r / d, j = r % d;
        return io ? e * ff * d + j : (e * d + j) * ff;
    };
    return es;
}

// "" when MXFP4 holds every block of 32 of `s` exactly (it round-trips), else where it does not.
std::string first_off_grid(const RowSource& s, const std::string& name) {
    if (!s.t->is_float())
        throw Error(Code::CONVERT_FAILED, s.t->file + ": tensor " + s.t->name + " has dtype " + s.t->dtype + ", expected F32, F16 or BF16");
    std::vector<float> row(size_t(s.n_cols)), back(row.size());
    std::vector<uint8_t> q(row_bytes(GgmlType::MXFP4, uint64_t(s.n_cols)));
    for (int64_t r = 0; r < s.n_rows; ++r) {
        read_row(s, r, row.data());
        quant::quantize_row(GgmlType::MXFP4, row.data(), q.data(), s.n_cols);
        quant::dequantize_row(GgmlType::MXFP4, q.data(), back.data(), s.n_cols);
        for (int64_t c = 0; c < s.n_cols; ++c)
            if (!(back[size_t(c)] == row[size_t(c)]))
                return name + " row " + std::to_string(r) + " block " + std::to_string(c / 32) + " is not on the MXFP4 grid";
    }
    return "";
}

}  // namespace

void convert_gpt_oss(ArchContext& c) {
    const HfConfig& cfg = c.cfg;
    const Checkpoint& ck = c.ck;
    Emitter& em = c.em;
    c.arch = "gpt-oss";
    const int64_t d = c.dim("hidden_size"), n_layer = c.dim("num_hidden_layers"), n_head = c.dim("num_attention_heads");
    const int64_t n_kv = c.dim("num_key_value_heads"), ff = c.dim("intermediate_size"), n_vocab = c.dim("vocab_size");
    const int64_t hd = cfg.opt_int("head_dim").value_or(64), n_exp = c.dim("num_local_experts");
    const int64_t n_used = c.dim("num_experts_per_tok");
    if (n_head % n_kv) cfg.fail("num_attention_heads must be a multiple of num_key_value_heads");
    if (n_used > n_exp) cfg.fail("num_experts_per_tok exceeds num_local_experts");
    if (d % 32 || ff % 32) cfg.fail("hidden_size and intermediate_size must be multiples of 32 (MXFP4 blocks)");
    const RopeConfig rope = cfg.rope(150000.0);
    check_fixed(cfg, rope);

    c.set_u32("block_count", n_layer);
    c.set_u32("context_length", c.dim("max_position_embeddings"));
    c.set_u32("embedding_length", d);
    c.set_u32("feed_forward_length", ff);
    c.set_u32("attention.head_count", n_head);
    c.set_u32("attention.head_count_kv", n_kv);
    c.set_u32("attention.key_length", hd);
    c.set_u32("attention.value_length", hd);
    c.set_f32("attention.layer_norm_rms_epsilon", cfg.req_float("rms_norm_eps"));
    c.set_u32("attention.sliding_window", c.dim("sliding_window"));
    c.set_u32("expert_count", n_exp);
    c.set_u32("expert_used_count", n_used);
    c.set_u32("expert_feed_forward_length", ff);
    c.set_f32("rope.freq_base", rope.theta);
    c.set_str("rope.scaling.type", "yarn");
    if (!rope.params.contains("factor") || !rope.params["factor"].is_number()) cfg.fail("rope scaling has no numeric factor");
    c.set_f32("rope.scaling.factor", rope.params["factor"].get<double>());
    if (!rope.params.contains("original_max_position_embeddings") || !rope.params["original_max_position_embeddings"].is_number())
        cfg.fail("rope scaling has no original_max_position_embeddings");
    c.set_u32("rope.scaling.original_context_length", rope.params["original_max_position_embeddings"].get<int64_t>());

    // Experts: MXFP4 blocks are repacked; float experts are written as MXFP4 only when that is
    // lossless or asked for (--expert-type mxfp4), else in the --type.
    const bool float_experts = !ck.has("model.layers.0.mlp.experts.gate_up_proj_blocks");
    GgmlType expert_type = GgmlType::MXFP4;
    bool measure = false;
    if (!float_experts) {
        log::info("convert.experts", {{"from", "MXFP4"}, {"to", "MXFP4"}, {"why", "repacked bit for bit"}});
    } else {
        const std::string from = ck.get("model.layers.0.mlp.experts.gate_up_proj").dtype;
        std::string off;  // the first block off the grid, if any
        for (int64_t il = 0; il < n_layer && off.empty(); ++il) {
            const ExpertSources es = expert_sources(c, il);
            for (int i = 0; i < 3 && off.empty(); ++i) off = first_off_grid(es.src[i], ArchContext::blk(il, es.names[i]));
        }
        if (off.empty()) {
            log::info("convert.experts", {{"from", from}, {"to", "MXFP4"}, {"why", "lossless: every block of 32 lies on the MXFP4 grid"}});
        } else if (c.opts.experts == ExpertType::Mxfp4) {
            measure = true;
            log::warn("convert.experts", {{"from", from}, {"to", "MXFP4"}, {"why", "requantized (--expert-type mxfp4); " + off}});
        } else {
            expert_type = em.matrix_type();
            log::info("convert.experts", {{"from", from}, {"to", std::string(type_name(expert_type))},
                                          {"why", off + "; kept in --type (--expert-type mxfp4 requantizes)"}});
        }
    }
    if (expert_type == GgmlType::MXFP4) c.file_type = 38;  // LLAMA_FTYPE_MOSTLY_MXFP4_MOE, as the ggml-org files say

    em.matrix("token_embd.weight", rows_of(ck.get("model.embed_tokens.weight", {n_vocab, d})));
    c.n_vocab = n_vocab;
    for (int64_t il = 0; il < n_layer; ++il) {
        const std::string L = "model.layers." + std::to_string(il) + ".";
        auto blk = [&](const char* n) { return ArchContext::blk(il, n); };
        em.f32(blk("attn_norm.weight"), rows_of(ck.get(L + "input_layernorm.weight", {d})));
        const char* qkv[3] = {"q", "k", "v"};
        const int64_t rows[3] = {n_head * hd, n_kv * hd, n_kv * hd};
        for (int i = 0; i < 3; ++i) {
            const std::string hf = L + "self_attn." + qkv[i] + "_proj.";
            const std::string g = std::string("attn_") + qkv[i];
            em.matrix(blk((g + ".weight").c_str()), rows_of(ck.get(hf + "weight", {rows[i], d})));
            em.f32(blk((g + ".bias").c_str()), rows_of(ck.get(hf + "bias", {rows[i]})));
        }
        em.matrix(blk("attn_output.weight"), rows_of(ck.get(L + "self_attn.o_proj.weight", {d, n_head * hd})));
        em.f32(blk("attn_output.bias"), rows_of(ck.get(L + "self_attn.o_proj.bias", {d})));
        em.f32(blk("attn_sinks.weight"), rows_of(ck.get(L + "self_attn.sinks", {n_head})));
        em.f32(blk("post_attention_norm.weight"), rows_of(ck.get(L + "post_attention_layernorm.weight", {d})));
        em.f32(blk("ffn_gate_inp.weight"), rows_of(ck.get(L + "mlp.router.weight", {n_exp, d})));
        em.f32(blk("ffn_gate_inp.bias"), rows_of(ck.get(L + "mlp.router.bias", {n_exp})));

        const std::string X = L + "mlp.experts.";
        // Biases: gate_up_proj_bias [E, 2ff] -> gate/up [ff, E] (ggml order {ff, E}) by column parity.
        const StTensor& b1 = ck.get(X + "gate_up_proj_bias", {n_exp, 2 * ff});
        for (int half = 0; half < 2; ++half) {
            RowSource s;
            s.t = &b1;
            s.n_rows = n_exp;
            s.n_cols = ff;
            s.stride = 2;
            s.start = [ff, half](int64_t e) { return e * 2 * ff + half; };
            em.f32(blk(half ? "ffn_up_exps.bias" : "ffn_gate_exps.bias"), s);
        }
        em.f32(blk("ffn_down_exps.bias"), rows_of(ck.get(X + "down_proj_bias", {n_exp, d})));

        if (float_experts) {
            const ExpertSources es = expert_sources(c, il);
            for (int i = 0; i < 3; ++i)
                em.tensor(blk(es.names[i]), expert_type, {uint64_t(es.src[i].n_cols), uint64_t(i < 2 ? ff : d), uint64_t(n_exp)},
                          es.src[i], measure);
            continue;
        }
        // MXFP4 as stored: blocks [E, rows, K/32, 16] and scales [E, rows, K/32].
        auto repack = [&](const std::string& base, int64_t hf_rows, int64_t k, int64_t take_every, int64_t first,
                          const std::string& gguf_name) {
            const StTensor& bl = ck.get(base + "_blocks");
            const StTensor& sc = ck.get(base + "_scales");
            const int64_t nb = k / 32;
            if (bl.shape != std::vector<int64_t>{n_exp, hf_rows, nb, 16} || bl.dtype != "U8")
                cfg.fail("tensor " + bl.name + " is " + bl.dtype + " " + shape_str(bl.shape) + ", expected U8 " +
                         shape_str({n_exp, hf_rows, nb, 16}));
            if (sc.shape != std::vector<int64_t>{n_exp, hf_rows, nb} || sc.dtype != "U8")
                cfg.fail("tensor " + sc.name + " is " + sc.dtype + " " + shape_str(sc.shape) + ", expected U8 " +
                         shape_str({n_exp, hf_rows, nb}));
            const int64_t out_rows = hf_rows / take_every;
            const uint8_t* bp = bl.data;
            const uint8_t* sp = sc.data;
            em.custom(blk(gguf_name.c_str()), GgmlType::MXFP4, {uint64_t(k), uint64_t(out_rows), uint64_t(n_exp)},
                      [=](uint8_t* dst, size_t n_bytes) {
                          const int64_t rb = nb * 17;
                          WO_CHECK(uint64_t(n_bytes) == uint64_t(rb * out_rows * n_exp), "mxfp4 repack size");
                          for (int64_t e = 0; e < n_exp; ++e)
                              for (int64_t r = 0; r < out_rows; ++r) {
                                  const int64_t hr = e * hf_rows + r * take_every + first;
                                  quant::mxfp4_from_hf(bp + hr * nb * 16, sp + hr * nb, dst + (e * out_rows + r) * rb, nb);
                              }
                      });
        };
        repack(X + "gate_up_proj", 2 * ff, d, 2, 0, "ffn_gate_exps.weight");
        repack(X + "gate_up_proj", 2 * ff, d, 2, 1, "ffn_up_exps.weight");
        repack(X + "down_proj", d, ff, 1, 0, "ffn_down_exps.weight");
    }
    em.f32("output_norm.weight", rows_of(ck.get("model.norm.weight", {d})));
    em.matrix("output.weight", rows_of(ck.get("lm_head.weight", {n_vocab, d})));
}

}  // namespace wo::convert
