// Parsing HF tokenizer.json (+ tokenizer_config.json) into a byte-level BPE spec; shared by
// load_tokenizer_json and write_tokenizer_gguf so both see the same tokenizer.
#pragma once
#include <string>

#include "tokenizer/bpe.h"

namespace wo::tok {

// Texts, not paths. config_json may be empty. Throws Error(TOKENIZER_INVALID) naming any
// unsupported component (model type, normalizer, pre_tokenizer, decoder, added-token flag).
BpeSpec parse_hf_tokenizer(const std::string& tokenizer_json, const std::string& config_json);

}  // namespace wo::tok
