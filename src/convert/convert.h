// `worker-orcd convert`: an HF checkpoint folder (config.json + safetensors, optionally
// tokenizer.json) -> one GGUF file with llama.cpp's tensor names and metadata keys.
// Supported: GptOssForCausalLM, GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM,
// Phi3ForCausalLM. docs/convert.md lists what each mapping does.
#pragma once
#include <cstdint>
#include <string>

#include "gguf/types.h"

namespace wo::convert {

// What to do with gpt-oss experts that arrive as floats (experts that arrive as MXFP4 blocks are
// always repacked bit for bit). Auto: MXFP4 when every block of 32 lies on the MXFP4 grid
// (lossless), else the --type. Mxfp4: MXFP4 always, logging the requantization error.
enum class ExpertType { Auto, Mxfp4 };

struct ConvertOptions {
    // Type of the 2-D weight matrices: F32, F16, BF16 or Q8_0. Norms, biases, sinks and the
    // router stay F32; gpt-oss experts follow `experts`.
    GgmlType type = GgmlType::F16;
    ExpertType experts = ExpertType::Auto;
    bool tokenizer = true;  // embed tokenizer.json when the folder has one
    std::string name;       // general.name; default: the folder's name
};

struct ConvertResult {
    std::string architecture;  // GGUF general.architecture
    uint64_t n_tensors = 0, n_params = 0;
    bool tokenizer = false;
};

// Throws Error(CONVERT_FAILED) naming the file, key or tensor when the checkpoint is unusable,
// IO_ERROR when the output cannot be written.
ConvertResult convert_hf(const std::string& hf_dir, const std::string& out_path, const ConvertOptions& opts);

// "f32", "f16", "bf16", "q8_0" (any case) -> type; INVALID_ARGUMENT otherwise.
GgmlType parse_matrix_type(const std::string& s);
// "auto", "mxfp4" (any case) -> ExpertType; INVALID_ARGUMENT otherwise.
ExpertType parse_expert_type(const std::string& s);

}  // namespace wo::convert
