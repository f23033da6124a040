// `worker-orcd generate` end to end on a tiny gpt-oss GGUF written to a temp file: greedy ids
// printed by the binary equal argmax decoding through the Model API, and bad input is an error.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/sampler.h"
#include "model/tiny_models.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wo {
namespace {

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
        path = (std::filesystem::temp_directory_path() / ("wo-gen-" + std::to_string(::getpid()) + ".gguf")).string();
        auto bytes = test::tiny_gguf({.arch = "gpt-oss"});
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    void TearDown() override { std::filesystem::remove(path); }
    std::string path;
};

TEST_F(GenerateCli, GreedyIdsMatchTheModelApi) {
    int rc = 0;
    const std::string out =
        run_cmd(std::string(WO_BINARY) + " generate --model " + path + " --prompt-ids 3,14,15 -n 6 --ids --temperature 0 -t 2", rc);
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

TEST_F(GenerateCli, OutOfVocabularyPromptIsAnError) {
    int rc = 0;
    run_cmd(std::string(WO_BINARY) + " generate --model " + path + " --prompt-ids 3,9999 --ids", rc);
    EXPECT_NE(rc, 0);
}

}  // namespace
}  // namespace wo
