// Every golden vector and the >= 1 MiB corpus, for each tokenizer and each way it can be loaded
// (tokenizer.json and GGUF metadata), must match the reference encodings exactly.
#include <gtest/gtest.h>

#include <sstream>

#include "golden_util.h"
#include "tokenizer/text.h"

namespace wo::test {
namespace {

struct Param {
    const char* name;
    const char* source;
};
std::string param_name(const testing::TestParamInfo<Param>& p) {
    std::string s = std::string(p.param.name) + "_" + p.param.source;
    for (char& c : s)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

std::string show(const std::vector<int32_t>& v, size_t from, size_t n = 8) {
    std::ostringstream ss;
    ss << "[";
    for (size_t i = from; i < v.size() && i < from + n; ++i) ss << (i > from ? "," : "") << v[i];
    ss << "]";
    return ss.str();
}
// First differing position, for a readable failure on long sequences.
std::string diff(const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
    size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
    return "first difference at token " + std::to_string(i) + " of " + std::to_string(want.size()) +
           ": got " + show(got, i) + " want " + show(want, i) + " (got " + std::to_string(got.size()) +
           " tokens)";
}

class Golden : public testing::TestWithParam<Param> {
protected:
    void SetUp() override {
        WO_REQUIRE_GOLDENS();
        tok = golden_tokenizer(GetParam().name, GetParam().source);
        ASSERT_NE(tok, nullptr);
    }
    const Tokenizer* tok = nullptr;
};

TEST_P(Golden, Vectors) {
    const auto& g = golden(GetParam().name);
    const bool gguf = std::string(GetParam().source) == "gguf";
    ASSERT_GE(g["cases"].size(), 30u);
    for (const auto& c : g["cases"]) {
        if (gguf && c.value("json_only", false)) continue;
        std::string text = case_bytes(c);
        auto want = c["ids"].get<std::vector<int32_t>>();
        auto got = tok->encode(text, c["special"].get<bool>());
        EXPECT_EQ(got, want) << c["name"].get<std::string>() << " special=" << c["special"] << ": "
                             << diff(got, want);
    }
}

TEST_P(Golden, Corpus) {
    const auto& g = golden(GetParam().name);
    const std::string text = corpus();
    ASSERT_GE(text.size(), 1u << 20);
    auto want = g["corpus_ids"].get<std::vector<int32_t>>();
    auto got = tok->encode(text, g.value("corpus_special", true));
    EXPECT_TRUE(got == want) << diff(got, want);
    const bool normalizes = std::string(GetParam().name) == "qwen2";
    // Without special parsing, so SentencePiece adds no space after the corpus's special strings.
    EXPECT_TRUE(tok->decode(tok->encode(text, false)) == (normalizes ? tok::nfc(text) : text))
        << "corpus does not round-trip";
}

// decode(encode(x)) == x for valid UTF-8 (NFC-normalizing tokenizers: == NFC(x)).
TEST_P(Golden, RoundTrip) {
    const auto& g = golden(GetParam().name);
    const bool normalizes = std::string(GetParam().name) == "qwen2";
    for (const auto& c : g["cases"]) {
        if (!c.contains("text")) continue;
        std::string text = c["text"].get<std::string>();
        std::string want = normalizes ? tok::nfc(text) : text;
        EXPECT_EQ(tok->decode(tok->encode(text, false)), want) << c["name"].get<std::string>();
    }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Golden,
                         testing::Values(Param{"gpt2", "json"}, Param{"gpt2", "gguf"},
                                         Param{"o200k_base", "json"}, Param{"o200k_base", "gguf"},
                                         Param{"gpt-oss", "json"}, Param{"gpt-oss", "gguf"},
                                         Param{"llama3", "json"}, Param{"llama3", "gguf"},
                                         Param{"qwen2", "json"}, Param{"qwen2", "gguf"},
                                         Param{"llama-spm", "gguf"}, Param{"phi-3", "gguf"}),
                         param_name);

}  // namespace
}  // namespace wo::test
