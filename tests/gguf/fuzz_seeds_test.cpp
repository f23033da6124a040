// The fuzzer's seed corpus (tests/fuzz/corpus/gguf/): small valid files written by the Writer.
// WO_WRITE_FUZZ_SEEDS=1 test_gguf --gtest_filter='FuzzSeeds.*' regenerates them; normally the
// test checks that every committed seed is small and parses.
#include <gtest/gtest.h>

#include <cstdlib>

#include "gguf/gguf.h"
#include "gguf_test_util.h"

namespace wo::gguf_test {
namespace {

const std::filesystem::path kSeedDir = std::filesystem::path(WO_SOURCE_DIR) / "tests/fuzz/corpus/gguf";
constexpr size_t kMaxSeedBytes = 4096;

std::vector<std::pair<std::string, Writer>> seeds() {
    std::vector<std::pair<std::string, Writer>> out;
    {
        Writer w;  // every value type, nested arrays, two small tensors
        add_every_value_type(w);
        w.add_tensor("a", GgmlType::F32, {4}, filler(GgmlType::F32, 1));
        w.add_tensor("b", GgmlType::F16, {2, 3}, filler(GgmlType::F16, 2));
        out.emplace_back("values.gguf", std::move(w));
    }
    {
        Writer w(64);  // non-default alignment, quantized blocks, 4-D
        w.set("general.architecture", Value::str("gpt-oss"));
        w.set("gpt-oss.expert_count", Value::u32(2));
        w.add_tensor("blk.0.attn_q.weight", GgmlType::Q8_0, {32, 2}, filler(GgmlType::Q8_0, 3));
        w.add_tensor("blk.0.ffn_up_exps.weight", GgmlType::MXFP4, {32, 1, 2}, filler(GgmlType::MXFP4, 4));
        w.add_tensor("q4k", GgmlType::Q4_K, {256}, filler(GgmlType::Q4_K, 5));
        w.add_tensor("bf16", GgmlType::BF16, {3, 1, 1, 2}, filler(GgmlType::BF16, 6));
        out.emplace_back("align64.gguf", std::move(w));
    }
    {
        Writer w;  // vocab-style metadata, no tensors
        w.set("general.architecture", Value::str("llama"));
        w.set("tokenizer.ggml.model", Value::str("gpt2"));
        w.set("tokenizer.ggml.tokens", Value::string_array({"<s>", "</s>", "\xC4\xA0the", "a", "b"}));
        w.set("tokenizer.ggml.token_type", Value::i32_array({3, 3, 1, 1, 1}));
        w.set("tokenizer.ggml.merges", Value::string_array({"\xC4\xA0 t", "h e"}));
        w.set("tokenizer.ggml.scores", Value::f32_array({0, 0, -1.5f, -2, -3}));
        w.set("tokenizer.ggml.add_bos_token", Value::boolean(true));
        out.emplace_back("vocab.gguf", std::move(w));
    }
    return out;
}

TEST(FuzzSeeds, AreSmallValidFiles) {
    if (std::getenv("WO_WRITE_FUZZ_SEEDS")) {
        std::filesystem::create_directories(kSeedDir);
        for (auto& [name, w] : seeds()) w.write((kSeedDir / name).string());
        // A version-2 copy: same layout, the version field (bytes 4..7) set to 2.
        std::string v2 = read_text(kSeedDir / "values.gguf");
        v2[4] = 2;
        std::ofstream(kSeedDir / "values-v2.gguf", std::ios::binary) << v2;
    }
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(kSeedDir)) {
        ++n;
        EXPECT_LE(e.file_size(), kMaxSeedBytes) << e.path();
        EXPECT_NO_THROW(gguf::File::open(e.path().string())) << e.path();
    }
    EXPECT_GE(n, 4u);
}

}  // namespace
}  // namespace wo::gguf_test
