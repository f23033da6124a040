// The fixture of the OpenAI route tests: one `worker-orcd serve` per test suite on the tiny
// gpt-oss model, JSON posts, and running the npm reference clients.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "require_goldens.h"
#include "server/server_process.h"
#include "server/test_model.h"

namespace wo::test {

inline std::string run_capture(const std::string& cmd) {
    std::string out;
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) return out;
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, k);
    pclose(f);
    return out;
}

class OpenAiApi : public ::testing::Test {
protected:
    using json = nlohmann::json;
    static void SetUpTestSuite() {
        model_ = tiny_gptoss_model();
        if (!model_.empty()) server_ = new ServeProcess(model_, {"--parallel", "4", "--ctx", "160", "--threads", "2"});
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override {
        if (model_.empty()) WO_SKIP_WITHOUT_GOLDENS("gpt-oss tokenizer not installed (run scripts/goldens)");
        ASSERT_GT(server_->port(), 0) << server_->log_text();
    }
    static json post(const std::string& path, const json& body, int* status = nullptr, std::string* raw = nullptr) {
        auto r = server_->client().Post(path.c_str(), body.dump(), "application/json");
        if (!r) return nullptr;
        if (status) *status = r->status;
        if (raw) *raw = r->body;
        return json::parse(r->body, nullptr, false);
    }
    static inline std::string model_;
    static inline ServeProcess* server_ = nullptr;
};

}  // namespace wo::test
