// Tiny random-weight GGUF models of each architecture, built in memory with gguf::Writer, for
// the model tests (batching, prefill vs decode, load errors). Options let a test drop a key or
// tensor, change a shape or a type, or rename the architecture.
#pragma once
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/model.h"
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

class TinyBuilder {
public:
    explicit TinyBuilder(const TinyOpts& o) : o_(o), rng_(o.seed) {}

    void kv(const std::string& key, gguf::Value v) {
        if (!o_.drop.count(key)) w_.set(key, std::move(v));
    }
    void tensor(const std::string& name, GgmlType type, std::vector<uint64_t> shape, float scale,
                float mean = 0) {
        if (o_.drop.count(name)) return;
        if (auto it = o_.reshape.find(name); it != o_.reshape.end()) shape = it->second;
        if (auto it = o_.retype.find(name); it != o_.retype.end()) type = it->second;
        uint64_t rows = 1;
        for (size_t i = 1; i < shape.size(); ++i) rows *= shape[i];
        const uint64_t n0 = shape[0];
        std::normal_distribution<float> d(mean, scale);
        std::vector<float> src(n0);
        const uint64_t rb = row_bytes(type, n0);
        std::vector<uint8_t> bytes(rb * rows);
        for (uint64_t r = 0; r < rows; ++r) {
            for (auto& x : src) x = d(rng_);
            if (type == GgmlType::Q4_1 || type == GgmlType::Q2_K) continue;  // unsupported: bytes stay zero
            quant::quantize_row(type, src.data(), bytes.data() + r * rb, static_cast<int64_t>(n0));
        }
        w_.add_tensor(name, type, std::move(shape), std::move(bytes));
    }
    std::vector<uint8_t> bytes() const { return w_.to_bytes(); }

private:
    TinyOpts o_;
    std::mt19937 rng_;
    gguf::Writer w_;
};

// Vocabulary 64, width 64, 2 layers; gpt-oss has 4 experts (2 used) and a sliding window of 4 so
// short sequences cross it.
inline std::vector<uint8_t> tiny_gguf(const TinyOpts& o) {
    using gguf::Value;
    TinyBuilder b(o);
    const std::string a = o.arch;
    const uint64_t V = o.vocab ? 256 : 64, d = 64, L = 2, ff = 64, nh = 4, nkv = a == "gpt2" ? 4 : 2, hd = 16;
    const uint64_t q = nh * hd, kvd = nkv * hd;
    const GgmlType M = o.matrix_type, F = GgmlType::F32;
    b.kv("general.architecture", Value::str(o.arch_override.empty() ? a : o.arch_override));
    b.kv(a + ".context_length", Value::u32(a == "gpt2" ? 32 : 4096));
    b.kv(a + ".embedding_length", Value::u32(d));
    b.kv(a + ".block_count", Value::u32(L));
    b.kv(a + ".feed_forward_length", Value::u32(ff));
    b.kv(a + ".attention.head_count", Value::u32(nh));
    b.kv(a + ".attention.head_count_kv", Value::u32(nkv));
    if (o.vocab) {
        b.kv("tokenizer.ggml.model", Value::str("gpt2"));
        b.kv("tokenizer.ggml.pre", Value::str("gpt-2"));
        b.kv("tokenizer.ggml.tokens", Value::string_array(byte_level_tokens()));
        b.kv("tokenizer.ggml.token_type", Value::i32_array(std::vector<int32_t>(256, 1)));
        b.kv("tokenizer.ggml.merges", Value::string_array({}));
        b.kv("tokenizer.ggml.bos_token_id", Value::u32(0));
        b.kv("tokenizer.ggml.eos_token_id", Value::u32(1));
    }
    b.tensor("token_embd.weight", M, {d, V}, 1.0f);
    if (!o.tied) b.tensor("output.weight", M, {d, V}, 0.3f);
    b.tensor("output_norm.weight", F, {d}, 0.1f, 1.0f);
    if (a == "gpt2") {
        b.kv(a + ".attention.layer_norm_epsilon", Value::f32(1e-5f));
        b.tensor("position_embd.weight", M, {d, 32}, 0.5f);
        b.tensor("output_norm.bias", F, {d}, 0.1f);
        for (uint64_t il = 0; il < L; ++il) {
            const std::string p = "blk." + std::to_string(il) + ".";
            b.tensor(p + "attn_norm.weight", F, {d}, 0.1f, 1.0f);
            b.tensor(p + "attn_norm.bias", F, {d}, 0.1f);
            b.tensor(p + "attn_qkv.weight", M, {d, 3 * d}, 0.2f);
            b.tensor(p + "attn_qkv.bias", F, {3 * d}, 0.1f);
            b.tensor(p + "attn_output.weight", M, {d, d}, 0.2f);
            b.tensor(p + "attn_output.bias", F, {d}, 0.1f);
            b.tensor(p + "ffn_norm.weight", F, {d}, 0.1f, 1.0f);
            b.tensor(p + "ffn_norm.bias", F, {d}, 0.1f);
            b.tensor(p + "ffn_up.weight", M, {d, ff}, 0.2f);
            b.tensor(p + "ffn_up.bias", F, {ff}, 0.1f);
            b.tensor(p + "ffn_down.weight", M, {ff, d}, 0.2f);
            b.tensor(p + "ffn_down.bias", F, {d}, 0.1f);
        }
        return b.bytes();
    }
    b.kv(a + ".attention.layer_norm_rms_epsilon", Value::f32(1e-5f));
    b.kv(a + ".rope.dimension_count", Value::u32(hd));
    b.kv(a + ".attention.key_length", Value::u32(hd));
    b.kv(a + ".attention.value_length", Value::u32(hd));
    if (a == "gpt-oss") {
        const uint64_t E = 4;
        b.kv(a + ".rope.freq_base", Value::f32(150000.0f));
        b.kv(a + ".rope.scaling.type", Value::str(o.rope_scaling));
        if (o.rope_scaling != "none") {  // llama.cpp applies a factor even with type none
            b.kv(a + ".rope.scaling.factor", Value::f32(32.0f));
            b.kv(a + ".rope.scaling.original_context_length", Value::u32(4096));
        }
        b.kv(a + ".expert_count", Value::u32(E));
        b.kv(a + ".expert_used_count", Value::u32(2));
        b.kv(a + ".expert_feed_forward_length", Value::u32(ff));
        b.kv(a + ".attention.sliding_window", Value::u32(4));
        for (uint64_t il = 0; il < L; ++il) {
            const std::string p = "blk." + std::to_string(il) + ".";
            b.tensor(p + "attn_norm.weight", F, {d}, 0.1f, 1.0f);
            b.tensor(p + "attn_q.weight", M, {d, q}, 0.3f);
            b.tensor(p + "attn_q.bias", F, {q}, 0.1f);
            b.tensor(p + "attn_k.weight", M, {d, kvd}, 0.3f);
            b.tensor(p + "attn_k.bias", F, {kvd}, 0.1f);
            b.tensor(p + "attn_v.weight", M, {d, kvd}, 0.3f);
            b.tensor(p + "attn_v.bias", F, {kvd}, 0.1f);
            b.tensor(p + "attn_output.weight", M, {q, d}, 0.2f);
            b.tensor(p + "attn_output.bias", F, {d}, 0.1f);
            b.tensor(p + "attn_sinks.weight", F, {nh}, 1.0f);
            b.tensor(p + "post_attention_norm.weight", F, {d}, 0.1f, 1.0f);
            b.tensor(p + "ffn_gate_inp.weight", F, {d, E}, 1.0f);
            b.tensor(p + "ffn_gate_inp.bias", F, {E}, 0.1f);
            b.tensor(p + "ffn_gate_exps.weight", o.expert_type, {d, ff, E}, 0.3f);
            b.tensor(p + "ffn_gate_exps.bias", F, {ff, E}, 0.1f);
            b.tensor(p + "ffn_up_exps.weight", o.expert_type, {d, ff, E}, 0.3f);
            b.tensor(p + "ffn_up_exps.bias", F, {ff, E}, 0.1f);
            b.tensor(p + "ffn_down_exps.weight", o.expert_type, {ff, d, E}, 0.2f);
            b.tensor(p + "ffn_down_exps.bias", F, {d, E}, 0.1f);
        }
        return b.bytes();
    }
    // llama / qwen2 / phi3
    b.kv(a + ".rope.freq_base", Value::f32(a == "qwen2" ? 1e6f : 10000.0f));
    for (uint64_t il = 0; il < L; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        b.tensor(p + "attn_norm.weight", F, {d}, 0.1f, 1.0f);
        if (a == "phi3") {
            b.tensor(p + "attn_qkv.weight", M, {d, q + 2 * kvd}, 0.3f);
        } else {
            b.tensor(p + "attn_q.weight", M, {d, q}, 0.3f);
            b.tensor(p + "attn_k.weight", M, {d, kvd}, 0.3f);
            b.tensor(p + "attn_v.weight", M, {d, kvd}, 0.3f);
            if (a == "qwen2") {
                b.tensor(p + "attn_q.bias", F, {q}, 0.1f);
                b.tensor(p + "attn_k.bias", F, {kvd}, 0.1f);
                b.tensor(p + "attn_v.bias", F, {kvd}, 0.1f);
            }
        }
        b.tensor(p + "attn_output.weight", M, {q, d}, 0.2f);
        b.tensor(p + "ffn_norm.weight", F, {d}, 0.1f, 1.0f);
        if (a == "phi3") {
            b.tensor(p + "ffn_up.weight", M, {d, 2 * ff}, 0.2f);
        } else {
            b.tensor(p + "ffn_gate.weight", M, {d, ff}, 0.2f);
            b.tensor(p + "ffn_up.weight", M, {d, ff}, 0.2f);
        }
        b.tensor(p + "ffn_down.weight", M, {ff, d}, 0.2f);
    }
    return b.bytes();
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
