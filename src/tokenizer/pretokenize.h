// Pre-tokenization: the regex splits a model family applies before BPE (PCRE2, UTF + UCP, JIT).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wo::tok {

// The regexes of the supported families, exactly as their tokenizer.json / tiktoken define them.
namespace patterns {
extern const char* const gpt2;    // GGUF pre "gpt-2"; HF ByteLevel(use_regex=true)
extern const char* const llama3;  // GGUF pre "llama-bpe"
extern const char* const qwen2;   // GGUF pre "qwen2"
extern const char* const o200k;   // GGUF pre "gpt-4o" (o200k_base, gpt-oss)
}  // namespace patterns

// The GGUF `tokenizer.ggml.pre` name for a pattern, or nullopt when it is none of the above.
std::optional<std::string> gguf_pre_for_pattern(std::string_view pattern);
// The pattern for a GGUF `tokenizer.ggml.pre`, or nullopt when unsupported.
std::optional<std::string> pattern_for_gguf_pre(std::string_view pre);

// One regex split with HF "Isolated" behaviour: every match is a piece, and so is every run of
// text between matches.
class RegexSplit {
public:
    // Throws Error(TOKENIZER_INVALID) when PCRE2 rejects the pattern.
    explicit RegexSplit(const std::string& pattern);
    ~RegexSplit();
    RegexSplit(const RegexSplit&) = delete;
    RegexSplit& operator=(const RegexSplit&) = delete;

    // text must be valid UTF-8. Appends views into text.
    void split(std::string_view text, std::vector<std::string_view>& out) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Rewrites \s and \S into the Unicode White_Space class that Rust's regex, fancy-regex and
// Oniguruma use; PCRE2's \s also matches U+180E, which stopped being a space in Unicode 6.3.
std::string with_unicode_white_space(std::string_view pattern);

}  // namespace wo::tok
