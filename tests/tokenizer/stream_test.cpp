// StreamDecoder property: under any split of a token sequence into pushes it emits only valid
// UTF-8 (checked by utf8proc), and what it emits adds up to the decoded text.
#include <gtest/gtest.h>

#include <random>

#include "golden_util.h"
#include "tokenizer/text.h"

namespace wo::test {
namespace {

void check_stream(const Tokenizer& t, const std::vector<int32_t>& ids, const std::string& want,
                  const char* what) {
    StreamDecoder sd(t);
    std::string all;
    for (int32_t id : ids) {
        std::string piece = sd.push(id);
        ASSERT_TRUE(valid_utf8(piece)) << what << ": invalid UTF-8 emitted after token " << id;
        all += piece;
    }
    std::string rest = sd.flush();
    ASSERT_TRUE(valid_utf8(rest)) << what;
    all += rest;
    EXPECT_TRUE(all == want) << what << ": streamed text differs from the decoded text";
}

TEST(StreamDecoder, ValidUtf8UnderRandomSplits) {
    WO_REQUIRE_GOLDENS();
    std::mt19937 rng(1234);
    const std::string text = corpus();
    for (const char* name : {"gpt-oss", "llama3", "qwen2", "gpt2"}) {
        const Tokenizer* t = golden_tokenizer(name, "json");
        ASSERT_NE(t, nullptr);
        // Random slices of real text, cut at random byte offsets (so slices start mid-character).
        for (int k = 0; k < 200; ++k) {
            size_t a = rng() % (text.size() - 4000), n = 1 + rng() % 3000;
            auto ids = t->encode(text.substr(a, n), false);
            check_stream(*t, ids, tok::utf8_repair(t->decode(ids)), name);
        }
        // Random token ids: byte tokens in any order, so partial and broken characters abound.
        for (int k = 0; k < 200; ++k) {
            std::vector<int32_t> ids(1 + rng() % 40);
            // Half of them from the first 256 ids, which are the single-byte tokens in these vocabs.
            for (auto& id : ids) id = static_cast<int32_t>(rng() % 2 ? rng() % 256 : rng() % t->vocab_size());
            check_stream(*t, ids, tok::utf8_repair(t->decode(ids)), name);
        }
    }
}

TEST(StreamDecoder, HoldsBackAnUnfinishedCharacter) {
    WO_REQUIRE_GOLDENS();
    const Tokenizer* t = golden_tokenizer("gpt2", "json");
    // "🌍" (F0 9F 8C 8D) is three GPT-2 tokens; the first two carry only part of the character.
    auto ids = t->encode("\xF0\x9F\x8C\x8D", false);
    ASSERT_GE(ids.size(), 2u);
    StreamDecoder sd(*t);
    std::string out;
    for (size_t i = 0; i + 1 < ids.size(); ++i) out += sd.push(ids[i]);
    EXPECT_EQ(out, "");
    EXPECT_EQ(sd.push(ids.back()), "\xF0\x9F\x8C\x8D");
    EXPECT_EQ(sd.flush(), "");
    // A dangling lead byte becomes U+FFFD at flush.
    StreamDecoder sd2(*t);
    EXPECT_EQ(sd2.push(ids[0]), "");
    EXPECT_EQ(sd2.flush(), "\xEF\xBF\xBD");
}

TEST(StreamDecoder, SpmDropsTheSpacePrefixOnce) {
    WO_REQUIRE_GOLDENS();
    const Tokenizer* t = golden_tokenizer("llama-spm", "gguf");
    auto ids = t->encode("Hello world", false);
    check_stream(*t, ids, "Hello world", "llama-spm");
}

}  // namespace
}  // namespace wo::test
