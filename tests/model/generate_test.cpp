// `worker-orcd generate` end to end on a tiny gpt-oss GGUF written to a temp file: greedy ids
// printed by the binary equal argmax decoding through the Model API, and bad input is an error.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <algorithm>
#include "model/tiny_models.h"
#include "tokenizer/tokenizer.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wo {
namespace {

int32_t argmax(const std::vector<float>& l) {
    return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
}

std::string run_cmd(const std::string& cmd, int& rc) {
    std::string out;
    FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    rc = pclose(p);
    return out;
}

class GenerateCli : public ::testing::Test {
protected:
    void SetUp() override {
        path = (std::filesystem::temp_directory_path() / ("wo-gen-" + std::to_string(::getpid()) + ".gguf"))
                   .string();
        auto bytes = test::tiny_gguf({.arch = "gpt-oss"});
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    void TearDown() override { std::filesystem::remove(path); }
    std::string path;
};

TEST_F(GenerateCli, GreedyIdsMatchTheModelApi) {
    int rc = 0;
    const std::string out = run_cmd(std::string(WO_BINARY) + " generate --model " + path +
                                        " --prompt-ids 3,14,15 -n 6 --ids --temperature 0 -t 2",
                                    rc);
    ASSERT_EQ(rc, 0) << out;
    std::vector<int32_t> got;
    std::istringstream in(out);
    for (int32_t id; in >> id;) got.push_back(id);

    auto t = test::load_tiny({.arch = "gpt-oss"});
    Model& m = *t.model;
    m.reserve(1, 16);
    std::vector<float> lg;
    m.forward({{3, 0, 0, false}, {14, 1, 0, false}, {15, 2, 0, true}}, lg);
    std::vector<int32_t> want;
    for (int i = 0; i < 6; ++i) {
        want.push_back(argmax(lg));
        lg.clear();
        if (i < 5) m.forward({{want.back(), 3 + i, 0, true}}, lg);
    }
    EXPECT_EQ(got, want);
}

TEST_F(GenerateCli, TextPromptAndStreamedTextMatchTheIds) {
    // A model with a byte-level vocabulary, so text goes through the GGUF tokenizer both ways.
    auto bytes = test::tiny_gguf({.arch = "llama", .vocab = true});
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    const std::string common =
        std::string(WO_BINARY) + " generate --model " + path + " -n 12 --temperature 0 -t 2 ";
    int rc = 0;
    const std::string text = run_cmd(common + "--prompt 'Hello, w\xc3\xb6rld'", rc);
    ASSERT_EQ(rc, 0);
    auto file = gguf::File::parse(bytes.data(), bytes.size());
    auto tok = load_tokenizer(file);
    const auto prompt = tok->encode("Hello, w\xc3\xb6rld", true, true);
    std::string ids_arg;
    for (int32_t id : prompt) ids_arg += (ids_arg.empty() ? "" : ",") + std::to_string(id);
    const std::string ids_out = run_cmd(common + "--ids --prompt-ids " + ids_arg, rc);
    ASSERT_EQ(rc, 0);
    std::istringstream in(ids_out);
    StreamDecoder dec(*tok);
    std::string want;
    int n = 0;
    for (int32_t id; in >> id; ++n) want += dec.push(id);
    want += dec.flush();
    EXPECT_EQ(n, 12);
    EXPECT_EQ(text, want + "\n");
}

TEST_F(GenerateCli, OutOfVocabularyPromptIsAnError) {
    int rc = 0;
    run_cmd(std::string(WO_BINARY) + " generate --model " + path + " --prompt-ids 3,9999 --ids", rc);
    EXPECT_NE(rc, 0);
}

}  // namespace
}  // namespace wo
