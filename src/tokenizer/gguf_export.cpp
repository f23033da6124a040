// tokenizer.json -> GGUF tokenizer keys (see gguf_export.h).
#include "tokenizer/gguf_export.h"

#include <fstream>
#include <sstream>

#include "gguf/gguf.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/pretokenize.h"
#include "util/error.h"

namespace wo {

namespace {
std::string text_or_file(const std::string& s) {
    size_t i = s.find_first_not_of(" \t\r\n");
    if (s.empty() || (i != std::string::npos && s[i] == '{')) return s;
    std::ifstream f(s, std::ios::binary);
    if (!f) throw Error(Code::IO_ERROR, "cannot open " + s);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
[[noreturn]] void bad(const std::string& what) {
    throw Error(Code::TOKENIZER_INVALID, "write_tokenizer_gguf: " + what);
}
}  // namespace

void write_tokenizer_gguf(const std::string& tokenizer_json, const std::string& tokenizer_config_json,
                          gguf::Writer& w, int n_vocab_padded) {
    tok::BpeSpec s =
        tok::parse_hf_tokenizer(text_or_file(tokenizer_json), text_or_file(tokenizer_config_json));
    if (s.pre.size() != 1)
        bad("pre_tokenizer has " + std::to_string(s.pre.size()) + " regex steps; GGUF names exactly one");
    auto pre = tok::gguf_pre_for_pattern(s.pre[0].pattern);
    if (!pre)
        bad("pre_tokenizer regex is not one llama.cpp names (gpt-2, llama-bpe, qwen2, gpt-4o): " +
            s.pre[0].pattern);
    // What the GGUF loader derives from `pre` must be what the json says, or the two would differ.
    bool want_ignore = *pre == "llama-bpe" || *pre == "gpt-4o";
    if (s.ignore_merges != want_ignore)
        bad("model.ignore_merges=" + std::string(s.ignore_merges ? "true" : "false") +
            " does not match pre " + *pre);
    if (s.nfc != (*pre == "qwen2"))
        bad("normalizer (NFC=" + std::string(s.nfc ? "yes" : "no") + ") does not match pre " + *pre);
    if (s.add_prefix_space) bad("ByteLevel add_prefix_space=true has no GGUF key for model gpt2");

    int32_t n = s.vocab.size();
    if (n_vocab_padded < n)
        bad("n_vocab_padded " + std::to_string(n_vocab_padded) + " < tokenizer size " + std::to_string(n));
    std::vector<std::string> tokens(s.vocab.pieces);
    std::vector<int32_t> types(n_vocab_padded, 5);
    for (int32_t i = 0; i < n; ++i) types[i] = static_cast<int32_t>(s.vocab.types[i]);
    for (int32_t i = n; i < n_vocab_padded; ++i) tokens.push_back("[PAD" + std::to_string(i) + "]");
    std::vector<std::string> merges;
    merges.reserve(s.merges.size());
    for (const auto& [a, b] : s.merges) {
        if (a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
            bad("merge ('" + a + "' '" + b + "') contains a space, which GGUF's \"a b\" form cannot hold");
        merges.push_back(a + " " + b);
    }

    w.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
    w.set("tokenizer.ggml.pre", gguf::Value::str(*pre));
    w.set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens));
    w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
    w.set("tokenizer.ggml.merges", gguf::Value::string_array(merges));
    if (s.bos) w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(static_cast<uint32_t>(*s.bos)));
    if (s.eos) w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(static_cast<uint32_t>(*s.eos)));
    if (s.pad) w.set("tokenizer.ggml.padding_token_id", gguf::Value::u32(static_cast<uint32_t>(*s.pad)));
    w.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(s.add_bos));
    if (!s.chat_template.empty()) w.set("tokenizer.chat_template", gguf::Value::str(s.chat_template));
}

}  // namespace wo
