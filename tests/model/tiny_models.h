// Tiny random-weight GGUF models of each architecture (the tensors of model/tensors.h), built in
// memory with gguf::Writer, for the model tests (batching, prefill vs decode, load errors).
// Options let a test drop a key or tensor, change a shape or a type, or rename the architecture.
#pragma once
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/model.h"
#include "model/tensors.h"
#include "quant/quant.h"

namespace wo::test {

struct TinyOpts {
    std::string arch;                                      // "gpt-oss", "llama", "qwen2", "phi3", "gpt2"
    std::string arch_override;                             // written as general.architecture when set
    std::set<std::string> drop;                            // metadata keys or tensor names to leave out
    std::map<std::string, std::vector<uint64_t>> reshape;  // tensor name -> shape written instead
    std::map<std::string, GgmlType> retype;                // tensor name -> type written instead
    GgmlType matrix_type = GgmlType::Q8_0;                 // 2-D weights
    GgmlType expert_type = GgmlType::MXFP4;
    bool tied = false;  // leave out output.weight
    uint32_t seed = 1;
    bool vocab = false;  // 256 byte-level tokens + tokenizer keys, so llama.cpp can load the file
    std::string rope_scaling = "yarn";  // gpt-oss rope.scaling.type
    float output_scale = 0.3f;          // of output.weight's random values
};

// GPT-2's byte -> printable code point map, UTF-8 encoded: the 256 tokens of a byte-level vocab.
inline std::vector<std::string> byte_level_tokens() {
    std::vector<std::string> out(256);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        const int cp = printable ? b : 256 + extra++;
        std::string u;
        if (cp < 0x80) {
            u += static_cast<char>(cp);
        } else {
            u += static_cast<char>(0xC0 | (cp >> 6));
            u += static_cast<char>(0x80 | (cp & 0x3F));
        }
        out[static_cast<size_t>(b)] = u;
    }
    return out;
}

// Scale and mean of a tensor's normal random values.
inline std::pair<float, float> tiny_scale(const TensorSpec& t, const std::string& arch, float output_scale) {
    const bool attn_in = t.name.find("attn_") != std::string::npos && t.name.find("attn_output") == std::string::npos;
    switch (t.role) {
        case TensorRole::NORM: return {0.1f, 1.0f};
        case TensorRole::BIAS: return {0.1f, 0.0f};
        case TensorRole::EMBEDDING: return {t.name == "token_embd.weight" ? 1.0f : 0.5f, 0.0f};
        case TensorRole::OUTPUT: return {output_scale, 0.0f};
        case TensorRole::MATRIX: return {attn_in && arch != "gpt2" ? 0.3f : 0.2f, 0.0f};
        case TensorRole::EXPERTS: return {t.name.find("down") != std::string::npos ? 0.2f : 0.3f, 0.0f};
        default: return {1.0f, 0.0f};  // sinks, router
    }
}

// Adds every tensor of hp.arch (tensor_specs, the architecture's own layout, tied when o.tied) to
// `w`, values drawn in order from o.seed, honoring o.drop, o.reshape and o.retype.
inline void add_tensors(gguf::Writer& w, const Hparams& hp, const TinyOpts& o) {
    std::mt19937 rng(o.seed);
    TensorLayout layout = default_layout(hp.arch);
    layout.tied = o.tied;
    for (const TensorSpec& t : tensor_specs(hp, layout)) {
        if (o.drop.count(t.name)) continue;
        std::vector<uint64_t> shape(t.shape.begin(), t.shape.end());
        GgmlType type = writer_type(t.role, o.matrix_type, o.expert_type);
        if (auto it = o.reshape.find(t.name); it != o.reshape.end()) shape = it->second;
        if (auto it = o.retype.find(t.name); it != o.retype.end()) type = it->second;
        uint64_t rows = 1;
        for (size_t i = 1; i < shape.size(); ++i) rows *= shape[i];
        const uint64_t n0 = shape[0];
        const auto [scale, mean] = tiny_scale(t, hp.arch, o.output_scale);
        std::normal_distribution<float> d(mean, scale);
        std::vector<float> src(n0);
        const uint64_t rb = row_bytes(type, n0);
        std::vector<uint8_t> bytes(rb * rows);
        for (uint64_t r = 0; r < rows; ++r) {
            for (auto& x : src) x = d(rng);
            if (type == GgmlType::Q4_1 || type == GgmlType::Q2_K) continue;  // unsupported: bytes stay zero
            quant::quantize_row(type, src.data(), bytes.data() + r * rb, static_cast<int64_t>(n0));
        }
        w.add_tensor(t.name, type, std::move(shape), std::move(bytes));
    }
}

// Vocabulary 64, width 64, 2 layers; gpt-oss has 4 experts (2 used) and a sliding window of 4 so
// short sequences cross it.
inline std::vector<uint8_t> tiny_gguf(const TinyOpts& o) {
    using gguf::Value;
    gguf::Writer w;
    auto kv = [&](const std::string& key, gguf::Value v) {
        if (!o.drop.count(key)) w.set(key, std::move(v));
    };
    const std::string a = o.arch;
    Hparams hp;
    hp.arch = a;
    hp.n_vocab = o.vocab ? 256 : 64, hp.n_ctx_train = a == "gpt2" ? 32 : 4096, hp.n_embd = 64, hp.n_layer = 2;
    hp.n_head = 4, hp.n_head_kv = a == "gpt2" ? 4 : 2, hp.head_dim = 16, hp.n_ff = 64;
    hp.n_expert = a == "gpt-oss" ? 4 : 0, hp.n_expert_used = 2;
    kv("general.architecture", Value::str(o.arch_override.empty() ? a : o.arch_override));
    kv(a + ".context_length", Value::u32(hp.n_ctx_train));
    kv(a + ".embedding_length", Value::u32(hp.n_embd));
    kv(a + ".block_count", Value::u32(hp.n_layer));
    kv(a + ".feed_forward_length", Value::u32(hp.n_ff));
    kv(a + ".attention.head_count", Value::u32(hp.n_head));
    kv(a + ".attention.head_count_kv", Value::u32(hp.n_head_kv));
    if (o.vocab) {
        kv("tokenizer.ggml.model", Value::str("gpt2"));
        kv("tokenizer.ggml.pre", Value::str("gpt-2"));
        kv("tokenizer.ggml.tokens", Value::string_array(byte_level_tokens()));
        kv("tokenizer.ggml.token_type", Value::i32_array(std::vector<int32_t>(256, 1)));
        kv("tokenizer.ggml.merges", Value::string_array({}));
        kv("tokenizer.ggml.bos_token_id", Value::u32(0));
        kv("tokenizer.ggml.eos_token_id", Value::u32(1));
    }
    if (a == "gpt2") {
        kv(a + ".attention.layer_norm_epsilon", Value::f32(1e-5f));
    } else {
        kv(a + ".attention.layer_norm_rms_epsilon", Value::f32(1e-5f));
        kv(a + ".rope.dimension_count", Value::u32(hp.head_dim));
        kv(a + ".attention.key_length", Value::u32(hp.head_dim));
        kv(a + ".attention.value_length", Value::u32(hp.head_dim));
    }
    if (a == "gpt-oss") {
        kv(a + ".rope.freq_base", Value::f32(150000.0f));
        kv(a + ".rope.scaling.type", Value::str(o.rope_scaling));
        if (o.rope_scaling != "none") {  // llama.cpp applies a factor even with type none
            kv(a + ".rope.scaling.factor", Value::f32(32.0f));
            kv(a + ".rope.scaling.original_context_length", Value::u32(4096));
        }
        kv(a + ".expert_count", Value::u32(hp.n_expert));
        kv(a + ".expert_used_count", Value::u32(hp.n_expert_used));
        kv(a + ".expert_feed_forward_length", Value::u32(hp.n_ff));
        kv(a + ".attention.sliding_window", Value::u32(4));
    } else if (a != "gpt2") {  // llama / qwen2 / phi3
        kv(a + ".rope.freq_base", Value::f32(a == "qwen2" ? 1e6f : 10000.0f));
    }
    add_tensors(w, hp, o);
    return w.to_bytes();
}

// The same GGUF with one metadata key set to `v` (to build inconsistent files).
inline std::vector<uint8_t> with_metadata(const std::vector<uint8_t>& bytes, const std::string& key,
                                          gguf::Value v) {
    auto f = gguf::File::parse(bytes.data(), bytes.size());
    gguf::Writer w;
    for (const auto& [k, val] : f.metadata()) w.set(k, val);
    w.set(key, std::move(v));
    for (const auto& t : f.tensors())
        w.add_tensor(t.name, t.type, t.shape,
                     std::vector<uint8_t>(f.tensor_data(t), f.tensor_data(t) + t.n_bytes));
    return w.to_bytes();
}

// Keeps the GGUF bytes alive for as long as the File that parses them.
struct TinyModel {
    std::vector<uint8_t> bytes;
    std::shared_ptr<const gguf::File> file;
    std::unique_ptr<Model> model;
};

inline TinyModel load_tiny(const TinyOpts& o, int n_threads = 2) {
    TinyModel t;
    t.bytes = tiny_gguf(o);
    t.file = std::make_shared<const gguf::File>(gguf::File::parse(t.bytes.data(), t.bytes.size()));
    LoadOptions lo;
    lo.n_threads = n_threads;
    t.model = load_model(t.file, lo);
    return t;
}

}  // namespace wo::test
