// Embeds an HF tokenizer.json into GGUF tokenizer metadata the way llama.cpp's converter does,
// so that load_tokenizer() on the written file tokenizes exactly like load_tokenizer_json().
#pragma once
#include <string>

namespace wo::gguf {
class Writer;
}

namespace wo {

// tokenizer_json / tokenizer_config_json: the file contents, or a path to the file (a string
// that does not start with '{' is read as a path); the config may be empty.
// Writes tokenizer.ggml.{model=gpt2, pre, tokens, token_type, merges, bos/eos/padding_token_id,
// add_bos_token} and tokenizer.chat_template when the config has one. token_type: 1 normal,
// 3 control (special added tokens), 4 user-defined (other added tokens), 5 unused for the
// [PADn] entries that fill ids up to n_vocab_padded (e.g. 201088 for gpt-oss).
// Throws Error(TOKENIZER_INVALID) when the tokenizer cannot be expressed in GGUF (unknown
// pre-tokenizer regex, a normalizer GGUF has no key for) or n_vocab_padded is too small.
void write_tokenizer_gguf(const std::string& tokenizer_json, const std::string& tokenizer_config_json,
                          gguf::Writer& w, int n_vocab_padded);

}  // namespace wo
