// Shared by the tests of src/gguf: deterministic data, the scaled-down gpt-oss layout, a file with
// every value type, hand-assembled bytes (straight from the GGUF spec, independent of the Writer),
// scratch files and running commands.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace wo::gguf_test {

using gguf::Value;
using gguf::ValueType;
using gguf::Writer;

// splitmix64: a fixed seed gives the same stream everywhere.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return next() % n; }
    float uniform() { return static_cast<float>(next() >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f; }
};

// Little-endian bytes assembled field by field as the GGUF spec lays them out.
struct Bytes {
    std::vector<uint8_t> b;
    template <class T>
    Bytes& put(T v) {
        const size_t n = b.size();
        b.resize(n + sizeof(T));
        std::memcpy(b.data() + n, &v, sizeof(T));
        return *this;
    }
    Bytes& u8(uint8_t v) { return put(v); }
    Bytes& u32(uint32_t v) { return put(v); }
    Bytes& u64(uint64_t v) { return put(v); }
    Bytes& str(const std::string& s) {
        u64(s.size());
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    Bytes& zeros(size_t n) {
        b.resize(b.size() + n, 0);
        return *this;
    }
    Bytes& pad_to(size_t align) { return zeros((align - b.size() % align) % align); }
    Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        return u8('G').u8('G').u8('U').u8('F').u32(version).u64(n_tensors).u64(n_kv);
    }
    // A tensor info: name, n_dims, dims, type, offset.
    Bytes& tensor(const std::string& name, std::vector<uint64_t> shape, uint32_t type, uint64_t offset) {
        str(name).u32(static_cast<uint32_t>(shape.size()));
        for (uint64_t ne : shape) u64(ne);
        return u32(type).u64(offset);
    }
};

// Bytes for one tensor that decode to finite values: F32 in [-1, 1), Q8_0 blocks with an f16
// scale of 0.5, 1 or 2, MXFP4 blocks with E8M0 scales near 2^0; other types get random bytes.
inline void fill_tensor(GgmlType type, uint8_t* dst, size_t n, uint64_t seed) {
    Rng rng(seed);
    if (type == GgmlType::F32) {
        for (size_t i = 0; i + 4 <= n; i += 4) {
            const float f = rng.uniform();
            std::memcpy(dst + i, &f, 4);
        }
        return;
    }
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(rng.next());
    if (type == GgmlType::Q8_0) {
        static const uint16_t kScales[] = {0x3800, 0x3C00, 0x4000};  // f16 0.5, 1, 2
        for (size_t blk = 0; blk + 34 <= n; blk += 34) std::memcpy(dst + blk, &kScales[rng.below(3)], 2);
    } else if (type == GgmlType::MXFP4) {
        for (size_t blk = 0; blk + 17 <= n; blk += 17) dst[blk] = static_cast<uint8_t>(124 + rng.below(6));
    }
}

inline Writer::Filler filler(GgmlType type, uint64_t seed) {
    return [type, seed](uint8_t* dst, size_t n) { fill_tensor(type, dst, n, seed); };
}

// ---- gpt-oss, MODELS.md §2: the same 3 global + 19 per-layer tensors, names, types and shape
// structure as ggml-org's gpt-oss-20b-mxfp4.gguf, with small dimensions.
struct GptOssDims {
    uint64_t n_layer = 2, n_embd = 64, n_head = 4, n_head_kv = 2, head_dim = 16;
    uint64_t n_expert = 4, n_expert_used = 2, n_ff = 64, n_vocab = 1000;
};

struct ExpectedTensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> shape;
};

inline std::vector<ExpectedTensor> gptoss_tensors(const GptOssDims& d) {
    const uint64_t E = d.n_embd, V = d.n_vocab, Q = d.n_head * d.head_dim, KV = d.n_head_kv * d.head_dim;
    const uint64_t X = d.n_expert, F = d.n_ff;
    using T = GgmlType;
    std::vector<ExpectedTensor> v = {
        {"token_embd.weight", T::Q8_0, {E, V}},
        {"output_norm.weight", T::F32, {E}},
        {"output.weight", T::Q8_0, {E, V}},
    };
    for (uint64_t l = 0; l < d.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        const std::vector<ExpectedTensor> layer = {
            {p + "attn_norm.weight", T::F32, {E}},
            {p + "attn_q.weight", T::Q8_0, {E, Q}},
            {p + "attn_q.bias", T::F32, {Q}},
            {p + "attn_k.weight", T::Q8_0, {E, KV}},
            {p + "attn_k.bias", T::F32, {KV}},
            {p + "attn_v.weight", T::Q8_0, {E, KV}},
            {p + "attn_v.bias", T::F32, {KV}},
            {p + "attn_output.weight", T::Q8_0, {Q, E}},
            {p + "attn_output.bias", T::F32, {E}},
            {p + "attn_sinks.weight", T::F32, {d.n_head}},
            {p + "post_attention_norm.weight", T::F32, {E}},
            {p + "ffn_gate_inp.weight", T::F32, {E, X}},
            {p + "ffn_gate_inp.bias", T::F32, {X}},
            {p + "ffn_gate_exps.weight", T::MXFP4, {E, F, X}},
            {p + "ffn_gate_exps.bias", T::F32, {F, X}},
            {p + "ffn_up_exps.weight", T::MXFP4, {E, F, X}},
            {p + "ffn_up_exps.bias", T::F32, {F, X}},
            {p + "ffn_down_exps.weight", T::MXFP4, {F, E, X}},
            {p + "ffn_down_exps.bias", T::F32, {E, X}},
        };
        v.insert(v.end(), layer.begin(), layer.end());
    }
    return v;
}

// The gpt-oss.* keys of MODELS.md §2 (types as llama.cpp's converter writes them).
inline void add_gptoss_metadata(Writer& w, const GptOssDims& d) {
    auto u32 = [](uint64_t v) { return Value::u32(static_cast<uint32_t>(v)); };
    w.set("general.architecture", Value::str("gpt-oss"));
    w.set("general.name", Value::str("gpt-oss tiny test layout"));
    w.set("general.file_type", Value::u32(38));
    w.set("gpt-oss.block_count", u32(d.n_layer));
    w.set("gpt-oss.context_length", Value::u32(131072));
    w.set("gpt-oss.embedding_length", u32(d.n_embd));
    w.set("gpt-oss.feed_forward_length", u32(d.n_ff));
    w.set("gpt-oss.attention.head_count", u32(d.n_head));
    w.set("gpt-oss.attention.head_count_kv", u32(d.n_head_kv));
    w.set("gpt-oss.attention.key_length", u32(d.head_dim));
    w.set("gpt-oss.attention.value_length", u32(d.head_dim));
    w.set("gpt-oss.attention.layer_norm_rms_epsilon", Value::f32(1e-5f));
    w.set("gpt-oss.attention.sliding_window", Value::u32(128));
    w.set("gpt-oss.expert_count", u32(d.n_expert));
    w.set("gpt-oss.expert_used_count", u32(d.n_expert_used));
    w.set("gpt-oss.expert_feed_forward_length", u32(d.n_ff));
    w.set("gpt-oss.rope.freq_base", Value::f32(150000.0f));
    w.set("gpt-oss.rope.scaling.type", Value::str("yarn"));
    w.set("gpt-oss.rope.scaling.factor", Value::f32(32.0f));
    w.set("gpt-oss.rope.scaling.original_context_length", Value::u32(4096));
    std::vector<std::string> tokens;
    for (uint64_t i = 0; i < d.n_vocab; ++i) tokens.push_back("tok" + std::to_string(i));
    w.set("tokenizer.ggml.model", Value::str("gpt2"));
    w.set("tokenizer.ggml.tokens", Value::string_array(tokens));
    w.set("tokenizer.ggml.bos_token_id", u32(d.n_vocab - 2));
    w.set("tokenizer.ggml.eos_token_id", u32(d.n_vocab - 1));
}

inline Writer gptoss_writer(const GptOssDims& d = {}, uint64_t alignment = 32, uint64_t seed = 1) {
    Writer w(alignment);
    add_gptoss_metadata(w, d);
    uint64_t i = 0;
    for (const auto& t : gptoss_tensors(d)) w.add_tensor(t.name, t.type, t.shape, filler(t.type, seed * 1000 + i++));
    return w;
}

// ---- every metadata value type, nested arrays, and a tensor of every ggml type.
inline std::vector<GgmlType> all_tensor_types() {
    std::vector<GgmlType> out;
    for (uint32_t id = 0; id < 64; ++id)
        if (auto tr = type_traits(id)) out.push_back(tr->type);
    return out;
}

inline void add_every_value_type(Writer& w) {
    using VT = ValueType;
    w.set("general.architecture", Value::str("test"));
    w.set("t.u8", Value::u8(255));
    w.set("t.i8", Value::i8(-128));
    w.set("t.u16", Value::u16(65535));
    w.set("t.i16", Value::i16(-32768));
    w.set("t.u32", Value::u32(4294967295u));
    w.set("t.i32", Value::i32(INT32_MIN));
    w.set("t.u64", Value::u64(UINT64_MAX));
    w.set("t.i64", Value::i64(INT64_MIN));
    w.set("t.f32", Value::f32(3.14159274f));
    w.set("t.f32_tiny", Value::f32(1e-45f));
    w.set("t.f32_inf", Value::f32(-std::numeric_limits<float>::infinity()));
    w.set("t.f64", Value::f64(-1.0e300));
    w.set("t.f64_negzero", Value::f64(-0.0));
    w.set("t.bool_true", Value::boolean(true));
    w.set("t.bool_false", Value::boolean(false));
    w.set("t.str_empty", Value::str(""));
    w.set("t.str_utf8", Value::str("\xC4\xA0world \xE2\x9C\x93 \xE6\x97\xA5\xE6\x9C\xAC \"quoted\"\n"));
    w.set("t.arr_u8", Value::array(VT::UINT8, {Value::u8(0), Value::u8(1), Value::u8(255)}));
    w.set("t.arr_i8", Value::array(VT::INT8, {Value::i8(-1), Value::i8(127)}));
    w.set("t.arr_u16", Value::array(VT::UINT16, {Value::u16(1), Value::u16(65535)}));
    w.set("t.arr_i16", Value::array(VT::INT16, {Value::i16(-2), Value::i16(300)}));
    w.set("t.arr_u32", Value::array(VT::UINT32, {Value::u32(7), Value::u32(4000000000u)}));
    w.set("t.arr_i32", Value::i32_array({-5, 0, 5, INT32_MAX}));
    w.set("t.arr_u64", Value::array(VT::UINT64, {Value::u64(1ull << 63), Value::u64(3)}));
    w.set("t.arr_i64", Value::array(VT::INT64, {Value::i64(-(1ll << 62)), Value::i64(9)}));
    w.set("t.arr_f32", Value::f32_array({0.5f, -2.25f, 1e-30f}));
    w.set("t.arr_f64", Value::array(VT::FLOAT64, {Value::f64(0.1), Value::f64(-7.5)}));
    w.set("t.arr_bool", Value::array(VT::BOOL, {Value::boolean(true), Value::boolean(false)}));
    w.set("t.arr_empty", Value::array(VT::INT32, {}));
    std::vector<std::string> many;
    for (int i = 0; i < 20; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "s%d", i);
        many.emplace_back(name);
    }
    w.set("t.arr_str", Value::string_array(many));
    w.set("t.nested", Value::array(VT::ARRAY, {Value::i32_array({1, 2}), Value::i32_array({}), Value::i32_array({3})}));
    w.set("t.nested_mixed", Value::array(VT::ARRAY, {Value::string_array({"a", "b"}), Value::f32_array({1.5f})}));
    w.set("t.nested3", Value::array(VT::ARRAY, {Value::array(VT::ARRAY, {Value::string_array({"x"}),
                                                                         Value::string_array({"y", "z"})})}));
}

inline Writer every_type_writer(uint64_t alignment = 32, uint64_t seed = 7) {
    Writer w(alignment);
    add_every_value_type(w);
    uint64_t i = 0;
    for (GgmlType t : all_tensor_types()) {
        const uint64_t bs = traits(t).block_size;
        w.add_tensor("t." + std::string(type_name(t)), t, {bs * 2, 3}, filler(t, seed * 1000 + i++));
    }
    w.add_tensor("t.4d", GgmlType::F16, {3, 2, 2, 5}, filler(GgmlType::F16, seed * 1000 + i++));
    return w;
}

// ---- scratch files and commands.
// One scratch directory per test process, removed when the process exits.
inline std::filesystem::path scratch_path() {
    return std::filesystem::temp_directory_path() / ("wo-gguf-test-" + std::to_string(::getpid()));
}
inline struct ScratchCleanup {
    ~ScratchCleanup() {
        std::error_code ec;
        std::filesystem::remove_all(scratch_path(), ec);
    }
} scratch_cleanup;
inline std::filesystem::path scratch_dir() {
    auto d = scratch_path();
    std::filesystem::create_directories(d);
    return d;
}

inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct RunResult {
    int status = -1;
    std::string out, err;
};

// Runs `cmd` through the shell; stdout and stderr are captured separately.
inline RunResult run(const std::string& cmd) {
    static int n = 0;
    const auto err_path = scratch_dir() / ("stderr-" + std::to_string(n++));
    RunResult r;
    std::FILE* p = ::popen((cmd + " 2>'" + err_path.string() + "'").c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t k;
    while ((k = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, k);
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.err = read_text(err_path);
    return r;
}

}  // namespace wo::gguf_test
