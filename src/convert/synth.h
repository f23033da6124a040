// `worker-orcd synth`: a GGUF model of random weights in the exact shapes and tensor types of a
// real model (or a tiny one), for benchmarks and demos. Its text is noise; its shapes, types,
// metadata and byte counts are those of the real file, so speed and memory measurements carry over.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/types.h"

namespace wo::convert {

struct SynthOptions {
    std::string arch;    // gpt-oss, gpt2, llama, qwen2, phi3
    std::string preset;  // tiny, or a real size (synth_presets lists them)
    uint64_t seed = 1;
    std::string tokenizer;  // optional tokenizer.json (tokenizer_config.json beside it is used too)
    // Type of the 2-D non-expert matrices (F32, F16, BF16, Q8_0); gpt-oss experts are MXFP4.
    GgmlType type = GgmlType::Q8_0;
    // Blocks to write; 0 = the preset's. Fewer layers keep every per-layer shape and the
    // embedding/LM head, so a 2-layer 20b file measures per-layer and head speed at 1/12 the size.
    int n_layers = 0;
};

struct SynthResult {
    uint64_t n_params = 0, n_bytes = 0;
    int n_vocab = 0;
};

// Writes `out` tensor by tensor (a 12 GiB 20b file is never held in memory). INVALID_ARGUMENT for
// an unknown arch/preset, TOKENIZER_INVALID / IO_ERROR from the tokenizer and the writer.
SynthResult synth_model(const SynthOptions& o, const std::string& out);

// "arch/preset" pairs that synth_model accepts, for --help and errors.
std::vector<std::string> synth_presets();

}  // namespace wo::convert
