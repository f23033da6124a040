// `worker-orcd tokenize` end to end: ids for golden vectors, --decode back to the text, and a
// clean error for bad input.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "golden_util.h"

namespace wo::test {
namespace {

struct Run {
    int rc;
    std::string out;
};
Run run(const std::string& args, const std::string& stdin_bytes) {
    auto in = std::filesystem::temp_directory_path() / ("wo-tok-cli-" + std::to_string(::getpid()) + ".in");
    std::ofstream(in, std::ios::binary) << stdin_bytes;
    std::string cmd = std::string(WO_BINARY) + " tokenize " + args + " < " + in.string() + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = pclose(p);
    std::filesystem::remove(in);
    return {WEXITSTATUS(status), out};
}

std::string ids_line(const std::vector<int32_t>& ids) {
    std::ostringstream ss;
    for (size_t i = 0; i < ids.size(); ++i) ss << (i ? " " : "") << ids[i];
    ss << "\n";
    return ss.str();
}

TEST(Cli, TokenizeAndDecode) {
    WO_REQUIRE_GOLDENS();
    ASSERT_TRUE(std::filesystem::exists(WO_BINARY)) << "build worker-orcd first";
    const std::string d = golden_dir() + "/";
    const auto& g = golden("gpt-oss");
    const std::string json = "--tokenizer " + d + g["json"].get<std::string>();
    int checked = 0;
    for (const auto& c : g["cases"]) {
        std::string name = c["name"].get<std::string>();
        // Loading the 27 MB gpt-oss tokenizer.json takes about a second per run: two runs only.
        bool special = c["special"].get<bool>();
        if (!c.contains("text") || name != "harmony conversation" || !special) continue;
        auto want = c["ids"].get<std::vector<int32_t>>();
        auto r = run(json + " --ids" + (special ? " --special" : ""), c["text"].get<std::string>());
        EXPECT_EQ(r.rc, 0) << r.out;
        EXPECT_EQ(r.out, ids_line(want)) << name << " special=" << special;
        auto back = run(json + " --decode", ids_line(want));
        EXPECT_EQ(back.out, c["text"].get<std::string>()) << name;
        ++checked;
    }
    EXPECT_EQ(checked, 1);
    // GGUF source, one "id<TAB>piece" line per token: ids as the golden, pieces spell the text.
    for (const auto& c : golden("gpt2")["cases"]) {
        if (c["name"] != "hello") continue;
        auto r = run("--model " + d + "tokenizer/ggml-vocab-gpt-2.gguf", c["text"].get<std::string>());
        EXPECT_EQ(r.rc, 0);
        std::istringstream lines(r.out);
        std::vector<int32_t> ids;
        std::string line, text;
        while (std::getline(lines, line)) {
            size_t tab = line.find('\t');
            ASSERT_NE(tab, std::string::npos) << line;
            ids.push_back(std::stoi(line.substr(0, tab)));
            text += nlohmann::json::parse(line.substr(tab + 1)).get<std::string>();
        }
        EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>());
        EXPECT_EQ(text, c["text"].get<std::string>());
        ++checked;
    }
    EXPECT_EQ(checked, 2);
}

TEST(Cli, BadInputIsAnError) {
    WO_REQUIRE_GOLDENS();
    ASSERT_TRUE(std::filesystem::exists(WO_BINARY));
    auto r = run("--model " + golden_dir() + "/tokenizer/ggml-vocab-gpt-2.gguf --decode", "12 abc");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find("INVALID_ARGUMENT"), std::string::npos) << r.out;
    r = run("--model " + golden_dir() + "/tokenizer/ggml-vocab-gpt-2.gguf --decode", "99999999");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find("out of range"), std::string::npos) << r.out;
    r = run("", "x");
    EXPECT_EQ(r.rc, 1);
}

}  // namespace
}  // namespace wo::test
