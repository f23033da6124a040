// SentencePiece-style BPE as llama.cpp runs GGUF `tokenizer.ggml.model = llama` (Llama 2, Phi-3):
// score-ordered merges of UTF-8 characters, spaces as U+2581, <0xNN> byte fallback.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace wo::tok {

struct SpmSpec {
    Vocab vocab;
    std::vector<float> scores;
    std::optional<int32_t> bos, eos, pad, unk;
    bool add_bos = true;
    bool add_space_prefix = true;  // "▁" before the text and after each special token
    std::string chat_template;
    std::vector<int32_t> extra_eog;
};

// Throws Error(TOKENIZER_INVALID) when scores and tokens disagree in length.
std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmSpec spec);

}  // namespace wo::tok
