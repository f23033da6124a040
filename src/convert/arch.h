// Internal to src/convert: the per-architecture mappings HF -> GGUF share this context.
#pragma once
#include <cstdint>
#include <string>

#include "convert/convert.h"
#include "convert/emitter.h"
#include "convert/hf_config.h"
#include "convert/safetensors.h"
#include "gguf/gguf.h"

namespace wo::convert {

struct ArchContext {
    const Checkpoint& ck;
    const HfConfig& cfg;
    gguf::Writer& w;
    Emitter& em;
    const ConvertOptions& opts;
    std::string arch;     // GGUF general.architecture, set by the mapping
    int64_t n_vocab = 0;  // rows of token_embd, for the tokenizer's padding
    int64_t file_type = -1;  // general.file_type override (gpt-oss: MOSTLY_MXFP4_MOE)

    void set_u32(const std::string& key, int64_t v) const;  // "{arch}.key"
    void set_f32(const std::string& key, double v) const;
    void set_str(const std::string& key, const std::string& v) const;
    static std::string blk(int64_t il, const std::string& name) { return "blk." + std::to_string(il) + "." + name; }
    // A positive integer from config.json that fits the GGUF u32 fields.
    int64_t dim(const std::string& key) const;
};

void convert_gpt_oss(ArchContext& c);
void convert_gpt2(ArchContext& c);
void convert_llama_family(ArchContext& c, const std::string& arch);  // llama, qwen2, phi3

}  // namespace wo::convert
