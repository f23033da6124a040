// serve's process-level behaviour: the ready callback, startup failures and their exit codes,
// capacity and time limits configured on the command line.
#include <gtest/gtest.h>
#ifdef WO_HAVE_CUDA
#include "backend/cuda/device.h"
#endif

#include "latency_bound.h"
#include "require_goldens.h"

#include <fstream>
#include <mutex>

#include "server/server_process.h"
#include "server/test_model.h"

namespace wo::test {
namespace {

using nlohmann::json;

class Startup : public ::testing::Test {
protected:
    void SetUp() override {
        model_ = tiny_gptoss_model();
        if (model_.empty()) WO_SKIP_WITHOUT_GOLDENS("gpt-oss tokenizer not installed (run scripts/goldens)");
    }
    std::string model_;
};

TEST_F(Startup, ReadyCallbackIsPostedAfterTheServerListens) {
    httplib::Server orch;
    std::mutex mu;
    json got;
    int health_status = 0;
    int port = 0;
    orch.Post("/ready", [&](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard lock(mu);
        got = json::parse(req.body);
        // Server first: the worker must already answer when it announces itself.
        const std::string uri = got.value("uri", "");
        httplib::Client c(uri);
        auto h = c.Get("/health");
        health_status = h ? h->status : -1;
        res.status = 204;
    });
    port = orch.bind_to_any_port("127.0.0.1");
    std::thread t([&] { orch.listen_after_bind(); });
    {
        ServeProcess p(model_, {"--worker-id", "w-cb", "--threads", "1", "--callback-url",
                                "http://127.0.0.1:" + std::to_string(port) + "/ready"});
        ASSERT_GT(p.port(), 0);
        for (int i = 0; i < 200; ++i) {
            {
                std::lock_guard lock(mu);
                if (!got.is_null()) break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        std::lock_guard lock(mu);
        ASSERT_FALSE(got.is_null()) << p.log_text();
        EXPECT_EQ(got["worker_id"], "w-cb");
        EXPECT_EQ(got["model_ref"], model_);
        EXPECT_GT(got["vram_bytes"].get<uint64_t>(), 0u);
        EXPECT_EQ(got["uri"], "http://127.0.0.1:" + std::to_string(p.port()));
        EXPECT_EQ(health_status, 200);
        EXPECT_TRUE(p.alive());
        EXPECT_EQ(p.stop(), 0);
    }
    orch.stop();
    t.join();
}

TEST_F(Startup, SigtermCancelsRunningStreamsAndExitsZero) {
    ServeProcess p(model_, {"--threads", "1", "--ctx", "4096"});
    std::string body;
    std::thread t([&] {
        auto r = p.client().Post("/execute", json{{"job_id", "term"}, {"prompt", "x"}, {"max_tokens", 2048}}.dump(),
                                 "application/json");
        if (r) body = r->body;
    });
    for (int i = 0; i < 400; ++i) {
        auto h = p.client().Get("/health");
        if (h && json::parse(h->body)["slots"]["busy"] == 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(p.stop(), 0);
    const double stop_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(stop_ms, latency_bound_ms(5000));
    t.join();
    const auto ev = parse_sse(body);
    ASSERT_FALSE(ev.empty()) << body;
    EXPECT_EQ(ev.back().event, "error");
    EXPECT_EQ(ev.back().data["code"], "CANCELLED");
}

TEST_F(Startup, FailedCallbackExitsNonZero) {
    // Nothing listens on port 1 of loopback.
    ServeProcess p(model_, {"--threads", "1", "--callback-url", "http://127.0.0.1:1/ready"}, /*wait_ready=*/false);
    EXPECT_EQ(p.wait_exit(20000), 1);
    bool logged = false;
    for (const auto& j : p.log_lines()) logged |= j.value("event", "") == "callback_failed";
    EXPECT_TRUE(logged) << p.log_text();
}

TEST_F(Startup, BadModelExitsWithModelLoadFailed) {
    const std::string bad = std::filesystem::temp_directory_path() / ("wo-bad-" + std::to_string(getpid()) + ".gguf");
    std::ofstream(bad) << "GGUF but not really";
    ServeProcess p(bad, {}, /*wait_ready=*/false);
    EXPECT_GT(p.port(), 0) << "the server listens before the model loads";
    EXPECT_EQ(p.wait_exit(20000), 1);
    bool logged = false;
    for (const auto& j : p.log_lines())
        if (j.value("event", "") == "model_load_failed") {
            logged = true;
            EXPECT_EQ(j.value("code", ""), "MODEL_LOAD_FAILED");
            EXPECT_NE(j.value("message", "").find("GGUF_INVALID"), std::string::npos) << j.dump();
        }
    EXPECT_TRUE(logged) << p.log_text();
    std::filesystem::remove(bad);
}

TEST_F(Startup, LoadProgressIsLoggedInBytes) {
    ServeProcess p(model_, {"--threads", "1"});
    uint64_t total = 0;
    const gguf::File f = gguf::File::open(model_);
    for (const auto& t : f.tensors()) total += t.n_bytes;
    std::vector<json> ev;
    for (const auto& j : p.log_lines())
        if (j.value("event", "") == "model_load_progress") ev.push_back(j);
    ASSERT_GE(ev.size(), 2u) << p.log_text();
    uint64_t prev = 0;
    for (const auto& j : ev) {
        EXPECT_EQ(j["model"], model_);
        EXPECT_EQ(j["total_bytes"], total);
        EXPECT_GE(j["bytes"].get<uint64_t>(), prev) << j.dump();
        prev = j["bytes"];
    }
    EXPECT_EQ(ev.front()["percent"], 0);
    EXPECT_EQ(ev.back()["percent"], 100);
    EXPECT_EQ(ev.back()["bytes"], total);
}

TEST_F(Startup, CudaBackendWithoutAGpuIsAClearError) {
#ifdef WO_HAVE_CUDA
    if (wo::cuda::device_count() > 0) GTEST_SKIP() << "a GPU is present: tests/cuda cover --backend cuda";
#endif
    std::string out;
    FILE* f = popen((std::string(WO_BINARY) + " serve --model " + model_ + " --backend cuda --port 0 2>&1").c_str(), "r");
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, k);
    const int st = pclose(f);
    EXPECT_NE(WEXITSTATUS(st), 0);
#ifdef WO_HAVE_CUDA
    // The CUDA backend is registered but finds no device: the load fails naming the CUDA call.
    EXPECT_NE(out.find("CUDA_ERROR"), std::string::npos) << out;
    EXPECT_NE(out.find("no CUDA device"), std::string::npos) << out;
#else
    EXPECT_NE(out.find("built without the CUDA backend"), std::string::npos) << out;
#endif
}

TEST_F(Startup, QueueFullAndTimeoutAreReachable) {
    ServeProcess p(model_, {"--threads", "1", "--parallel", "1", "--max-queue", "1", "--ctx", "4096"});
    auto body = [](const std::string& id, int n) {
        return json{{"job_id", id}, {"prompt", "x"}, {"max_tokens", n}}.dump();
    };
    std::thread a([&] { p.client().Post("/execute", body("q-a", 2048), "application/json"); });
    std::thread b;
    for (int i = 0; i < 400; ++i) {  // q-a running, then q-b waiting
        auto h = p.client().Get("/health");
        if (h && json::parse(h->body)["slots"]["busy"] == 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    b = std::thread([&] { p.client().Post("/execute", body("q-b", 1), "application/json"); });
    auto queue_depth = [&] {
        std::istringstream in(p.client().Get("/metrics")->body);
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("worker_queue_depth{", 0) == 0) return std::stoi(line.substr(line.rfind(' ') + 1));
        return -1;
    };
    for (int i = 0; i < 400 && queue_depth() != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(queue_depth(), 1);
    auto r = p.client().Post("/execute", body("q-c", 1), "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 503) << r->body;
    const json e = json::parse(r->body)["error"];
    EXPECT_EQ(e["code"], "QUEUE_FULL");
    EXPECT_EQ(e["retriable"], true);
    p.client().Post("/cancel", json{{"job_id", "q-a"}}.dump(), "application/json");
    a.join();
    b.join();

    ServeProcess t(model_, {"--threads", "1", "--inference-timeout-sec", "0.05", "--ctx", "4096"});
    auto rt = t.client().Post("/execute", body("slow", 2048), "application/json");
    ASSERT_TRUE(rt) << httplib::to_string(rt.error());
    const auto ev = parse_sse(rt->body);
    ASSERT_FALSE(ev.empty());
    EXPECT_EQ(ev.back().event, "error");
    EXPECT_EQ(ev.back().data["code"], "INFERENCE_TIMEOUT");
    EXPECT_EQ(ev.back().data["retriable"], true);
    const std::string mt = t.client().Get("/metrics")->body;
    EXPECT_NE(mt.find("outcome=\"timeout\"} 1"), std::string::npos);
}

}  // namespace
}  // namespace wo::test
