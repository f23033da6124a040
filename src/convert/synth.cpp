// Random-weight models (see synth.h). Quantized tensors are generated directly as blocks (random
// codes with a scale chosen for the wanted RMS), which keeps a 12 GiB file fast to write.
#include "convert/synth.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "model/tensors.h"
#include "quant/quant.h"
#include "tokenizer/gguf_export.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace wo::convert {
namespace {

struct Shape {
    int n_layer, n_embd, n_head, n_kv, head_dim, n_ff, n_vocab, n_ctx;
    int n_expert = 0, n_expert_used = 0;
    double theta = 10000, eps = 1e-5;
    bool tied = false;
};

// Real shapes: gpt-oss from the ggml-org GGUF metadata (shared/MODELS.md §2); gpt2 = GPT-2 small
// (124M); llama = Llama-3-8B; qwen2 = Qwen2.5-0.5B (tied) and Qwen2.5-7B.
const std::map<std::string, Shape>& presets() {
    static const std::map<std::string, Shape> p = {
        {"gpt-oss/tiny", {4, 128, 4, 2, 64, 128, 512, 131072, 8, 4, 150000, 1e-5}},
        {"gpt-oss/20b", {24, 2880, 64, 8, 64, 2880, 201088, 131072, 32, 4, 150000, 1e-5}},
        {"gpt-oss/120b", {36, 2880, 64, 8, 64, 2880, 201088, 131072, 128, 4, 150000, 1e-5}},
        {"gpt2/tiny", {2, 128, 4, 4, 32, 512, 512, 1024, 0, 0, 10000, 1e-5, true}},
        {"gpt2/124m", {12, 768, 12, 12, 64, 3072, 50257, 1024, 0, 0, 10000, 1e-5, true}},
        {"llama/tiny", {2, 128, 4, 2, 32, 256, 512, 4096}},
        {"phi3/tiny", {2, 128, 4, 2, 32, 256, 512, 4096}},
        {"llama/8b", {32, 4096, 32, 8, 128, 14336, 128256, 8192, 0, 0, 500000, 1e-5}},
        // tiny qwen2 is untied: a tied random model mostly repeats its last input token.
        {"qwen2/tiny", {2, 128, 4, 2, 32, 256, 512, 4096, 0, 0, 1e6, 1e-6}},
        {"qwen2/0.5b", {24, 896, 14, 2, 64, 4864, 151936, 32768, 0, 0, 1e6, 1e-6, true}},
        {"qwen2/7b", {28, 3584, 28, 4, 128, 18944, 152064, 32768, 0, 0, 1e6, 1e-6}},
    };
    return p;
}

uint64_t splitmix(uint64_t& s) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

// Adds tensors whose values are drawn per tensor from (seed, name), so the file is the same
// whatever order tensors are written in.
class Gen {
public:
    Gen(gguf::Writer& w, uint64_t seed) : w_(w), seed_(seed) {}

    // Values of RMS `rms` around `mean` (uniform, so the range is bounded and logits finite).
    void add(const std::string& name, GgmlType type, std::vector<uint64_t> shape, float rms, float mean = 0) {
        uint64_t numel = 1;
        for (auto d : shape) numel *= d;
        n_params_ += numel;
        n_bytes_ += numel / traits(type).block_size * traits(type).type_size;
        const uint64_t row = shape[0];
        const uint64_t seed = seed_ ^ fnv1a(name);
        w_.add_tensor(name, type, std::move(shape), [=](uint8_t* dst, size_t n_bytes) {
            uint64_t s = seed;
            if (type == GgmlType::MXFP4) {
                // E2M1 codes uniform over all 16: RMS 2.93 × 2^(e-127); e chosen for `rms`.
                const int e = std::clamp(127 + int(std::lround(std::log2(rms / 2.93))), 1, 254);
                for (size_t b = 0; b + 17 <= n_bytes; b += 17) {
                    dst[b] = uint8_t(e);
                    const uint64_t r1 = splitmix(s), r2 = splitmix(s);
                    std::memcpy(dst + b + 1, &r1, 8);
                    std::memcpy(dst + b + 9, &r2, 8);
                }
            } else if (type == GgmlType::Q8_0) {
                // int8 uniform in [-127, 127] has RMS 73.3; the f16 scale maps it to `rms`.
                const uint16_t d = quant::f32_to_f16(rms / 73.3f);
                for (size_t b = 0; b + 34 <= n_bytes; b += 34) {
                    std::memcpy(dst + b, &d, 2);
                    for (int i = 0; i < 32; i += 8) {
                        uint64_t r = splitmix(s);
                        for (int j = 0; j < 8; ++j, r >>= 8) dst[b + 2 + i + j] = uint8_t(int8_t(int(r % 255) - 127));
                    }
                }
                (void)mean;
            } else {
                std::vector<float> buf(row);
                const uint64_t rb = row_bytes(type, row);
                const float a = rms * std::sqrt(3.0f);
                for (uint64_t off = 0; off < n_bytes; off += rb) {
                    for (auto& v : buf) v = mean + a * (float(splitmix(s) >> 40) / float(1ull << 24) * 2 - 1);
                    quant::quantize_row(type, buf.data(), dst + off, int64_t(row));
                }
            }
        });
    }
    uint64_t n_params() const { return n_params_; }
    uint64_t n_bytes() const { return n_bytes_; }

private:
    gguf::Writer& w_;
    uint64_t seed_;
    uint64_t n_params_ = 0, n_bytes_ = 0;
};

// RMS and mean of a tensor's random values: matrices 1/sqrt(fan-in) (so activations keep their
// scale), logits of RMS about 3 (spread enough that sampling is not uniform noise, finite
// always), norms near 1.
std::pair<float, float> synth_scale(const TensorSpec& t, const std::string& arch) {
    const float in = 1.0f / std::sqrt(float(t.shape[0]));
    const bool gate_up = t.name.find("gate_exps") != std::string::npos || t.name.find("up_exps") != std::string::npos;
    switch (t.role) {
        case TensorRole::NORM: return {0.05f, 1.0f};
        case TensorRole::SINKS: return {1.0f, 0.0f};
        case TensorRole::BIAS: return {arch == "gpt2" ? 0.05f : gate_up ? 0.5f : 0.1f, 0.0f};
        case TensorRole::EMBEDDING: return {t.name == "token_embd.weight" ? 1.0f : 0.3f, 0.0f};
        case TensorRole::OUTPUT: return {3.0f * in, 0.0f};
        case TensorRole::EXPERTS: return {gate_up ? 2.0f * in : in, 0.0f};
        default: return {in, 0.0f};
    }
}

int tokenizer_size(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(Code::IO_ERROR, "cannot open tokenizer " + path);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw Error(Code::TOKENIZER_INVALID, path + ": not valid JSON: " + e.what());
    }
    int64_t n = 0;
    if (j.contains("model") && j["model"].contains("vocab") && j["model"]["vocab"].is_object())
        for (auto& [k, v] : j["model"]["vocab"].items())
            if (v.is_number_integer()) n = std::max<int64_t>(n, v.get<int64_t>() + 1);
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
        for (auto& t : j["added_tokens"])
            if (t.contains("id") && t["id"].is_number_integer()) n = std::max<int64_t>(n, t["id"].get<int64_t>() + 1);
    if (n <= 0) throw Error(Code::TOKENIZER_INVALID, path + ": no model.vocab or added_tokens");
    return int(n);
}

}  // namespace

std::vector<std::string> synth_presets() {
    std::vector<std::string> out;
    for (const auto& [k, v] : presets()) out.push_back(k);
    return out;
}

SynthResult synth_model(const SynthOptions& o, const std::string& out) {
    auto it = presets().find(o.arch + "/" + o.preset);
    if (it == presets().end()) {
        std::string all;
        for (const auto& p : synth_presets()) all += (all.empty() ? "" : ", ") + p;
        throw Error(Code::INVALID_ARGUMENT, "no synth preset " + o.arch + "/" + o.preset + " (available: " + all + ")");
    }
    Shape s = it->second;
    if (o.n_layers < 0) throw Error(Code::INVALID_ARGUMENT, "synth --layers must be >= 0 (0 = the preset's block count), got " + std::to_string(o.n_layers));
    if (o.n_layers > 0) s.n_layer = o.n_layers;
    if (!o.tokenizer.empty()) {
        const int n = tokenizer_size(o.tokenizer);
        // gpt-oss pads its vocabulary to 201088 (ids past the tokenizer are reserved).
        s.n_vocab = o.arch == "gpt-oss" ? std::max(n, 201088) : n;
    }
    const GgmlType mt = o.type;
    if (mt != GgmlType::F32 && mt != GgmlType::F16 && mt != GgmlType::BF16 && mt != GgmlType::Q8_0)
        throw Error(Code::INVALID_ARGUMENT, "synth --type must be f32, f16, bf16 or q8_0");
    if (s.n_embd % 32 || s.n_ff % 32) throw Error(Code::INTERNAL, "synth preset dims must be multiples of 32");

    gguf::Writer w;
    const std::string a = o.arch;
    auto u32 = [&](const std::string& k, int64_t v) { w.set(a + "." + k, gguf::Value::u32(uint32_t(v))); };
    auto f32k = [&](const std::string& k, double v) { w.set(a + "." + k, gguf::Value::f32(float(v))); };
    w.set("general.architecture", gguf::Value::str(a));
    const std::string layers = o.n_layers > 0 ? ", " + std::to_string(s.n_layer) + " layers" : "";
    w.set("general.name", gguf::Value::str("synthetic " + o.arch + " " + o.preset + layers + " (random weights)"));
    w.set("general.file_type", gguf::Value::u32(a == "gpt-oss" ? 38 : mt == GgmlType::Q8_0 ? 7 : mt == GgmlType::F16 ? 1
                                                                  : mt == GgmlType::BF16 ? 32 : 0));
    u32("context_length", s.n_ctx);
    u32("embedding_length", s.n_embd);
    u32("block_count", s.n_layer);
    u32("feed_forward_length", s.n_ff);
    u32("attention.head_count", s.n_head);
    if (a == "gpt2") {
        f32k("attention.layer_norm_epsilon", s.eps);
    } else {
        u32("attention.head_count_kv", s.n_kv);
        f32k("attention.layer_norm_rms_epsilon", s.eps);
        f32k("rope.freq_base", s.theta);
        if (s.head_dim != s.n_embd / s.n_head) {
            u32("attention.key_length", s.head_dim);
            u32("attention.value_length", s.head_dim);
        }
    }
    if (a != "gpt2" && a != "gpt-oss") u32("rope.dimension_count", s.head_dim);
    if (a == "gpt-oss") {
        u32("expert_count", s.n_expert);
        u32("expert_used_count", s.n_expert_used);
        u32("expert_feed_forward_length", s.n_ff);
        u32("attention.sliding_window", 128);
        w.set(a + ".rope.scaling.type", gguf::Value::str("yarn"));
        f32k("rope.scaling.factor", 32.0);
        u32("rope.scaling.original_context_length", 4096);
    }

    Hparams hp;
    hp.arch = a;
    hp.n_vocab = s.n_vocab, hp.n_ctx_train = s.n_ctx, hp.n_embd = s.n_embd, hp.n_layer = s.n_layer;
    hp.n_head = s.n_head, hp.n_head_kv = s.n_kv, hp.head_dim = s.head_dim, hp.n_ff = s.n_ff;
    hp.n_expert = s.n_expert, hp.n_expert_used = s.n_expert_used;
    TensorLayout layout = default_layout(a);
    layout.tied = s.tied;
    Gen g(w, o.seed);
    for (const TensorSpec& t : tensor_specs(hp, layout)) {
        const auto [rms, mean] = synth_scale(t, a);
        g.add(t.name, writer_type(t.role, mt, GgmlType::MXFP4), std::vector<uint64_t>(t.shape.begin(), t.shape.end()),
              rms, mean);
    }

    if (!o.tokenizer.empty()) {
        const auto cfg = std::filesystem::path(o.tokenizer).parent_path() / "tokenizer_config.json";
        write_tokenizer_gguf(o.tokenizer, std::filesystem::exists(cfg) ? cfg.string() : std::string(), w, s.n_vocab);
    }
    Progress progress("synth_progress", {{"out", out}});
    progress.start(w.tensor_bytes(), "synth");
    w.write(out, [&](uint64_t n) { progress.add(n); });
    progress.finish();
    log::info("synth.done", {{"arch", a}, {"preset", o.preset}, {"out", out}, {"params", g.n_params()},
                             {"bytes", g.n_bytes()}, {"vocab", s.n_vocab}, {"tokenizer", !o.tokenizer.empty()}});
    return {g.n_params(), g.n_bytes(), s.n_vocab};
}

}  // namespace wo::convert
