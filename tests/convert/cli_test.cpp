// `worker-orcd convert` end to end: a sharded llama fixture to Q8_0, tokenizer.json embedding
// (a byte-level vocabulary written here, padded to the model's vocabulary), and errors on stderr
// with stable codes.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert/byte_tokenizer.h"
#include "gguf/gguf.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

std::string run(const std::string& args, int& rc) {
    std::string out;
    FILE* p = popen((std::string(WO_BINARY) + " " + args + " 2>&1").c_str(), "r");
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    rc = WEXITSTATUS(pclose(p));
    return out;
}

class ConvertCli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("wo-convcli-" + std::to_string(::getpid()) + "-" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    fs::path dir_;
};

TEST_F(ConvertCli, ShardedLlamaToQ8_0) {
    int rc = 0;
    const std::string out = (dir_ / "l.gguf").string();
    const std::string log = run("convert " + std::string(WO_FIXTURES) + "/llama-tiny " + out + " --type q8_0", rc);
    ASSERT_EQ(rc, 0) << log;
    auto f = gguf::File::open(out);
    EXPECT_EQ(f.architecture(), "llama");
    EXPECT_EQ(f.get_int("general.file_type"), 7);
    EXPECT_EQ(f.tensor("blk.1.attn_q.weight").type, GgmlType::Q8_0);
    EXPECT_EQ(f.tensor("blk.1.attn_norm.weight").type, GgmlType::F32);
    EXPECT_EQ(f.tensor("output.weight").shape, (std::vector<uint64_t>{64, 512}));
    EXPECT_EQ(f.tensors().size(), 3u + 9u * 2u);
    EXPECT_FALSE(f.has("tokenizer.ggml.model"));
}

TEST_F(ConvertCli, EmbedsTokenizerPaddedToTheModelVocabulary) {
    for (const auto& e : fs::directory_iterator(fs::path(WO_FIXTURES) / "gpt2-tiny")) fs::copy(e.path(), dir_ / e.path().filename());
    const nlohmann::json tok = test::byte_level_tokenizer_json();
    std::ofstream(dir_ / "tokenizer.json") << tok.dump();
    int rc = 0;
    const std::string out = (dir_ / "t.gguf").string();
    const std::string log = run("convert " + dir_.string() + " " + out + " --type f32", rc);
    ASSERT_EQ(rc, 0) << log;
    auto f = gguf::File::open(out);
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
    const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 512u);  // padded to the embedding rows
    EXPECT_EQ(tokens[256], "<|endoftext|>");
    EXPECT_EQ(tokens[65], "A");
}

TEST_F(ConvertCli, ErrorsHaveStableCodes) {
    int rc = 0;
    std::string log = run("convert " + (dir_ / "nope").string() + " " + (dir_ / "x.gguf").string(), rc);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(log.find("error: CONVERT_FAILED"), std::string::npos) << log;
    log = run("convert " + std::string(WO_FIXTURES) + "/llama-tiny " + (dir_ / "x.gguf").string() + " --type q4_k", rc);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(log.find("error: INVALID_ARGUMENT"), std::string::npos) << log;
    EXPECT_NE(log.find("q4_k"), std::string::npos) << log;
    // A config.json the converter cannot map.
    for (const auto& e : fs::directory_iterator(fs::path(WO_FIXTURES) / "qwen2-tiny")) fs::copy(e.path(), dir_ / e.path().filename());
    auto cfg = nlohmann::json::parse(std::ifstream(dir_ / "config.json"));
    cfg["architectures"] = {"MambaForCausalLM"};
    std::ofstream(dir_ / "config.json") << cfg.dump();
    log = run("convert " + dir_.string() + " " + (dir_ / "x.gguf").string(), rc);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(log.find("CONVERT_FAILED"), std::string::npos) << log;
    EXPECT_NE(log.find("MambaForCausalLM"), std::string::npos) << log;
    // A tensor of the wrong shape for config.json is named.
    cfg["architectures"] = {"Qwen2ForCausalLM"};
    cfg["intermediate_size"] = 96;
    std::ofstream(dir_ / "config.json") << cfg.dump();
    log = run("convert " + dir_.string() + " " + (dir_ / "x.gguf").string(), rc);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(log.find("model.layers.0.mlp.gate_proj.weight has shape [128, 64], expected [96, 64]"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(dir_ / "x.gguf"));
}

}  // namespace
}  // namespace wo
