// convert_hf: dispatch on the HF architecture, common metadata, tokenizer, write.
#include "convert/convert.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "convert/arch.h"
#include "tokenizer/gguf_export.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace wo::convert {
namespace fs = std::filesystem;

void ArchContext::set_u32(const std::string& key, int64_t v) const {
    if (v < 0 || v > int64_t{0xFFFFFFFF}) cfg.fail("value " + std::to_string(v) + " for " + arch + "." + key + " does not fit u32");
    w.set(arch + "." + key, gguf::Value::u32(static_cast<uint32_t>(v)));
}
void ArchContext::set_f32(const std::string& key, double v) const { w.set(arch + "." + key, gguf::Value::f32(float(v))); }
void ArchContext::set_str(const std::string& key, const std::string& v) const { w.set(arch + "." + key, gguf::Value::str(v)); }

int64_t ArchContext::dim(const std::string& key) const {
    const int64_t v = cfg.req_int(key);
    if (v <= 0 || v > (int64_t{1} << 31)) cfg.fail("key " + key + " = " + std::to_string(v) + " is out of range");
    return v;
}

GgmlType parse_matrix_type(const std::string& s) {
    std::string l = s;
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
    if (l == "f32") return GgmlType::F32;
    if (l == "f16") return GgmlType::F16;
    if (l == "bf16") return GgmlType::BF16;
    if (l == "q8_0") return GgmlType::Q8_0;
    throw Error(Code::INVALID_ARGUMENT, "unsupported --type '" + s + "' (expected f32, f16, bf16 or q8_0)");
}

ExpertType parse_expert_type(const std::string& s) {
    std::string l = s;
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
    if (l == "auto") return ExpertType::Auto;
    if (l == "mxfp4") return ExpertType::Mxfp4;
    throw Error(Code::INVALID_ARGUMENT, "unsupported --expert-type '" + s + "' (expected auto or mxfp4)");
}

namespace {

int64_t file_type_of(GgmlType t) {  // llama_ftype
    switch (t) {
        case GgmlType::F32: return 0;
        case GgmlType::F16: return 1;
        case GgmlType::Q8_0: return 7;
        case GgmlType::BF16: return 32;
        default: return -1;
    }
}

}  // namespace

ConvertResult convert_hf(const std::string& hf_dir, const std::string& out_path, const ConvertOptions& opts) {
    if (!fs::is_directory(hf_dir)) throw Error(Code::CONVERT_FAILED, hf_dir + ": not a folder");
    parse_matrix_type(std::string(type_name(opts.type)));  // rejects types --type does not offer
    const HfConfig cfg = HfConfig::load(hf_dir);
    const auto ck = Checkpoint::open(hf_dir);
    gguf::Writer w;
    Emitter em(w, opts.type);
    ArchContext c{*ck, cfg, w, em, opts, "", 0, -1};

    std::string name = opts.name;
    if (name.empty()) name = fs::path(hf_dir).lexically_normal().filename().string();
    if (name.empty()) name = fs::absolute(hf_dir).lexically_normal().parent_path().filename().string();

    const std::string hf_arch = cfg.architecture();
    if (opts.experts != ExpertType::Auto && hf_arch != "GptOssForCausalLM")
        throw Error(Code::INVALID_ARGUMENT, "--expert-type applies to gpt-oss experts only; " + hf_dir + " holds " + hf_arch);
    // general.* first, as llama.cpp writes them; the mapping sets general.architecture's value.
    w.set("general.architecture", gguf::Value::str(""));
    w.set("general.name", gguf::Value::str(name));
    if (hf_arch == "GptOssForCausalLM") {
        convert_gpt_oss(c);
    } else if (hf_arch == "GPT2LMHeadModel") {
        convert_gpt2(c);
    } else if (hf_arch == "LlamaForCausalLM") {
        convert_llama_family(c, "llama");
    } else if (hf_arch == "Qwen2ForCausalLM") {
        convert_llama_family(c, "qwen2");
    } else if (hf_arch == "Phi3ForCausalLM") {
        convert_llama_family(c, "phi3");
    } else {
        cfg.fail("architecture " + hf_arch +
                 " is not supported (GptOssForCausalLM, GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM, Phi3ForCausalLM)");
    }
    w.set("general.architecture", gguf::Value::str(c.arch));
    const int64_t ft = c.file_type >= 0 ? c.file_type : file_type_of(opts.type);
    w.set("general.file_type", gguf::Value::u32(static_cast<uint32_t>(ft)));

    ConvertResult res;
    res.architecture = c.arch;
    const fs::path tok = fs::path(hf_dir) / "tokenizer.json";
    if (opts.tokenizer && fs::exists(tok)) {
        const fs::path tcfg = fs::path(hf_dir) / "tokenizer_config.json";
        write_tokenizer_gguf(tok.string(), fs::exists(tcfg) ? tcfg.string() : std::string(), w, static_cast<int>(c.n_vocab));
        res.tokenizer = true;
    }
    Progress progress("convert_progress", {{"out", out_path}});
    progress.start(w.tensor_bytes(), "convert");
    w.write(out_path, [&](uint64_t n) { progress.add(n); });
    progress.finish();
    if (const RequantStats t = em.requant_total(); t.n_tensors > 0)
        log::warn("convert.requantized_total", {{"tensors", t.n_tensors}, {"to", t.to}, {"rel_rms_error", t.rel_rms()}});
    res.n_params = em.n_params();
    res.n_tensors = em.n_tensors();
    log::info("convert.done", {{"arch", c.arch}, {"from", hf_arch}, {"out", out_path}, {"params", res.n_params},
                               {"type", std::string(type_name(opts.type))}, {"tokenizer", res.tokenizer}});
    return res;
}

}  // namespace wo::convert
