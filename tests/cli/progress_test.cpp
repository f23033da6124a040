// What people and log collectors see from long work: with stderr redirected, `synth`, `convert`
// and `generate`'s model load write only JSON lines, whose progress events have monotonic bytes
// ending at the file's tensor bytes; on a terminal, `synth` draws one '\r'-redrawn line ending at
// 100%, and `serve` logs text and one human `ready at` line.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "convert/byte_tokenizer.h"
#include "gguf/gguf.h"
#include "pty_process.h"

namespace wo {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Result {
    int rc = -1;
    std::string out, err;
};

class ProgressCli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("wo-progcli-" + std::to_string(::getpid()) + "-" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    // stdout through a pipe, stderr to a file: neither is a terminal.
    Result run(const std::string& args) const {
        const fs::path err = dir_ / "stderr.txt";
        Result r;
        FILE* p = popen((std::string(WO_BINARY) + " " + args + " 2>" + err.string()).c_str(), "r");
        char buf[4096];
        while (size_t n = fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
        r.rc = WEXITSTATUS(pclose(p));
        std::ifstream in(err);
        r.err.assign(std::istreambuf_iterator<char>(in), {});
        return r;
    }

    std::string path(const std::string& name) const { return (dir_ / name).string(); }
    fs::path dir_;
};

uint64_t tensor_bytes(const std::string& gguf_path) {
    const gguf::File f = gguf::File::open(gguf_path);
    uint64_t n = 0;
    for (const auto& t : f.tensors()) n += t.n_bytes;
    return n;
}

// Every stderr line is JSON; returns the events named `event`.
std::vector<json> events(const std::string& err, const std::string& event) {
    std::vector<json> out;
    std::istringstream in(err);
    std::string line;
    while (std::getline(in, line)) {
        json j;
        EXPECT_NO_THROW(j = json::parse(line)) << "not a JSON line: " << line;
        if (j.value("event", "") == event) out.push_back(j);
    }
    return out;
}

void expect_progress_to(const std::vector<json>& ev, uint64_t total, const std::string& all) {
    ASSERT_GE(ev.size(), 2u) << all;  // the start and 100%
    uint64_t prev = 0;
    for (const json& e : ev) {
        EXPECT_EQ(e["total_bytes"], total) << e.dump();
        EXPECT_GE(e["bytes"].get<uint64_t>(), prev) << e.dump();
        prev = e["bytes"];
    }
    EXPECT_EQ(ev.front()["bytes"], 0) << all;
    EXPECT_EQ(ev.front()["percent"], 0) << all;
    EXPECT_EQ(ev.back()["bytes"], total) << all;
    EXPECT_EQ(ev.back()["percent"], 100) << all;
}

TEST_F(ProgressCli, SynthWithStderrRedirectedWritesJsonProgressToTheTotal) {
    const std::string out = path("m.gguf");
    const Result r = run("synth --arch gpt-oss --preset tiny --out " + out);
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto ev = events(r.err, "synth_progress");
    expect_progress_to(ev, tensor_bytes(out), r.err);
    EXPECT_EQ(ev.back()["out"], out);
    EXPECT_EQ(events(r.err, "synth.done").size(), 1u) << r.err;
}

TEST_F(ProgressCli, QuietWritesNoProgress) {
    const Result r = run("synth --arch llama --preset tiny --quiet --out " + path("m.gguf"));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(events(r.err, "synth_progress").empty()) << r.err;
    EXPECT_EQ(events(r.err, "synth.done").size(), 1u) << r.err;
}

TEST_F(ProgressCli, ConvertWithStderrRedirectedWritesJsonProgressToTheTotal) {
    const std::string out = path("c.gguf");
    const Result r = run("convert " + std::string(WO_FIXTURES) + "/llama-tiny " + out + " --type q8_0");
    ASSERT_EQ(r.rc, 0) << r.err;
    expect_progress_to(events(r.err, "convert_progress"), tensor_bytes(out), r.err);
}

TEST_F(ProgressCli, ModelLoadReportsBytesOfTensorsMadeResident) {
    const std::string model = path("m.gguf");
    ASSERT_EQ(run("synth --arch gpt2 --preset tiny --out " + model).rc, 0);
    const Result r = run("generate --model " + model + " --prompt-ids 1,2,3 -n 2 --ids -t 1");
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto ev = events(r.err, "model_load_progress");
    expect_progress_to(ev, tensor_bytes(model), r.err);
    EXPECT_EQ(ev.back()["model"], model);
}

TEST_F(ProgressCli, LogFormatTextOverridesTheDefaultForPipes) {
    const Result r = run("synth --arch llama --preset tiny --log-format text --out " + path("m.gguf"));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("synth.done arch=llama"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('{'), std::string::npos) << r.err;
}

// Splits the lines of a terminal's output ("\n" already restored from "\r\n").
std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

TEST_F(ProgressCli, SynthOnATerminalDrawsOneLineEndingAt100Percent) {
    const std::string out = path("m.gguf");
    test::PtyProcess p({WO_BINARY, "synth", "--arch", "gpt-oss", "--preset", "tiny", "--out", out});
    ASSERT_TRUE(p.started());
    ASSERT_EQ(p.wait_exit(60000), 0) << p.output();
    std::vector<std::string> bars;
    for (const auto& l : lines_of(p.output()))
        if (l.find("synth ") != std::string::npos && l.find('%') != std::string::npos) bars.push_back(l);
    ASSERT_EQ(bars.size(), 1u) << p.output();
    const std::string& bar = bars[0];
    EXPECT_EQ(bar.front(), '\r') << bar;
    // The last redraw, after the last '\r', is the finished line.
    const std::string last = bar.substr(bar.rfind('\r') + 1);
    EXPECT_EQ(last.rfind("synth 100%  ", 0), 0u) << last;
    EXPECT_NE(last.find(" done in "), std::string::npos) << last;
    EXPECT_EQ(p.output().find("{\""), std::string::npos) << "text logs on a terminal:\n" << p.output();
    EXPECT_NE(p.output().find("synth.done arch=gpt-oss"), std::string::npos) << p.output();
    EXPECT_NE(p.output().find(out + ": gpt-oss tiny, "), std::string::npos) << p.output();
}

TEST_F(ProgressCli, ServeOnATerminalSaysReadyInOneHumanLine) {
    std::ofstream(dir_ / "tokenizer.json") << test::byte_level_tokenizer_json().dump();
    const std::string model = path("m.gguf");
    ASSERT_EQ(
        run("synth --arch llama --preset tiny --tokenizer " + path("tokenizer.json") + " --out " + model).rc,
        0);
    test::PtyProcess p({WO_BINARY, "serve", "--model", model, "--port", "0", "--threads", "1", "--parallel",
                        "2", "--ctx", "256"});
    ASSERT_TRUE(p.started());
    const bool ready = p.wait_for(" tokens\n", 60000);
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait_exit(30000), 0) << p.output();
    ASSERT_TRUE(ready) << p.output();
    const std::string o = p.output();
    std::string line;
    for (const auto& l : lines_of(o))
        if (l.rfind("worker-orcd ready at http://127.0.0.1:", 0) == 0) line = l;
    ASSERT_FALSE(line.empty()) << o;
    EXPECT_NE(line.find(": model \"synthetic llama tiny (random weights)\" (llama, Q8_0) on cpu, "),
              std::string::npos)
        << line;
    EXPECT_NE(line.find(" weights + "), std::string::npos) << line;
    EXPECT_NE(line.find(" KV cache in RAM, 2 slots of 256 tokens"), std::string::npos) << line;
    EXPECT_NE(o.find("load 100%"), std::string::npos) << o;
    EXPECT_NE(o.find("model_load_complete arch=llama "), std::string::npos) << o;
    EXPECT_EQ(o.find("{\""), std::string::npos) << "text logs on a terminal:\n" << o;
}

}  // namespace
}  // namespace wo
