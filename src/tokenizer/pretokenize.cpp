// PCRE2-backed pre-tokenizer splits (see pretokenize.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenize.h"

#include <pcre2.h>

#include "util/error.h"

namespace wo::tok {

namespace patterns {
const char* const gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const llama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const qwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const o200k =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}  // namespace patterns

namespace {
struct Known {
    const char* pre;
    const char* pattern;
};
const Known kKnown[] = {
    {"gpt-2", patterns::gpt2},
    {"llama-bpe", patterns::llama3},
    {"qwen2", patterns::qwen2},
    {"gpt-4o", patterns::o200k},
};
}  // namespace

std::optional<std::string> gguf_pre_for_pattern(std::string_view pattern) {
    for (const auto& k : kKnown)
        if (pattern == k.pattern) return std::string(k.pre);
    return std::nullopt;
}

std::optional<std::string> pattern_for_gguf_pre(std::string_view pre) {
    // llama.cpp accepts these aliases for the Llama 3 regex.
    if (pre == "llama3" || pre == "llama-v3") pre = "llama-bpe";
    for (const auto& k : kKnown)
        if (pre == k.pre) return std::string(k.pattern);
    return std::nullopt;
}

std::string with_unicode_white_space(std::string_view p) {
    static const std::string ws =
        R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
    std::string out;
    bool in_class = false;
    for (size_t i = 0; i < p.size(); ++i) {
        char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            char d = p[i + 1];
            if (d == 's') {
                out += in_class ? ws : "[" + ws + "]";
            } else if (d == 'S' && !in_class) {
                out += "[^" + ws + "]";
            } else if (d == 'S') {
                throw Error(Code::TOKENIZER_INVALID,
                            "pre_tokenizer regex: \\S inside a character class is unsupported");
            } else {
                out += c;
                out += d;
            }
            ++i;
            continue;
        }
        if (c == '[' && !in_class)
            in_class = true;
        else if (c == ']' && in_class)
            in_class = false;
        out += c;
    }
    return out;
}

struct RegexSplit::Impl {
    pcre2_code* code = nullptr;
    bool jit = false;
};

RegexSplit::RegexSplit(const std::string& pattern) : impl_(std::make_unique<Impl>()) {
    std::string p = with_unicode_white_space(pattern);
    int err = 0;
    PCRE2_SIZE off = 0;
    impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &err,
                                &off, nullptr);
    if (!impl_->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        throw Error(Code::TOKENIZER_INVALID, "pre_tokenizer regex rejected at offset " + std::to_string(off) +
                                                 ": " + reinterpret_cast<char*>(msg) + " (pattern " +
                                                 pattern + ")");
    }
    impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplit::~RegexSplit() {
    if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

void RegexSplit::split(std::string_view text, std::vector<std::string_view>& out) const {
    // Match data per thread: encode() is const and may run on several threads at once.
    struct MatchData {
        pcre2_match_data* md = pcre2_match_data_create(4, nullptr);
        ~MatchData() { pcre2_match_data_free(md); }
    };
    thread_local MatchData tl;
    auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0, gap = 0;
    while (pos < text.size()) {
        int rc =
            impl_->jit
                ? pcre2_jit_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, tl.md, nullptr)
                : pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, tl.md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0)
            throw Error(Code::INTERNAL,
                        "pre_tokenizer regex match failed with PCRE2 code " + std::to_string(rc));
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tl.md);
        size_t s = ov[0], e = ov[1];
        if (e == s) {
            // An empty match yields no piece; step over one whole character.
            size_t n = 1;
            while (s + n < text.size() && (static_cast<uint8_t>(text[s + n]) & 0xC0) == 0x80) ++n;
            pos = s + n;
            continue;
        }
        if (s > gap) out.push_back(text.substr(gap, s - gap));
        out.push_back(text.substr(s, e - s));
        pos = gap = e;
    }
    if (gap < text.size()) out.push_back(text.substr(gap));
}

}  // namespace wo::tok
