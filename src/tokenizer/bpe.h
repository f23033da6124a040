// Byte-level BPE (GPT-2, Llama 3, Qwen2, o200k/gpt-oss): what a loader fills in, and the factory.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace wo::tok {

// One pre-tokenizer step: an "Isolated" regex split. HF's ByteLevel(use_regex=true) is the GPT-2
// regex; its byte-to-unicode mapping itself is folded into the BPE model.
struct PreStep {
    std::string pattern;
};

struct BpeSpec {
    std::string kind;  // "gguf-bpe" or "hf-json"
    Vocab vocab;       // pieces and types; bytes are derived by the tokenizer
    std::vector<std::pair<std::string, std::string>> merges;  // in rank order
    std::vector<PreStep> pre;
    bool add_prefix_space = false;  // HF ByteLevel add_prefix_space: a space before the text
    bool ignore_merges = false;     // a pre-token that is itself a vocab entry is emitted whole
    bool nfc = false;               // NFC normalizer before pre-tokenization
    std::optional<int32_t> bos, eos, pad;
    bool add_bos = false;
    std::string chat_template;
    std::vector<int32_t> extra_eog;  // e.g. GGUF eot/eom ids
    int32_t vocab_size = 0;          // 0: the table's size
};

// Throws Error(TOKENIZER_INVALID) when the spec is inconsistent (a byte missing from the
// byte-level alphabet, a regex PCRE2 rejects).
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec);

// End-of-generation set the way llama.cpp derives it: eos, extra ids, and control tokens with
// the conventional end texts; with harmony's <|return|> and <|call|> present, <|end|> is not EOG.
std::vector<int32_t> default_eog(const Vocab& v, std::optional<int32_t> eos,
                                 const std::vector<int32_t>& extra);

}  // namespace wo::tok
