// The native API over real HTTP against `worker-orcd serve` running the tiny gpt-oss model:
// event order and payloads, validation, stop strings, batching determinism, cancel and
// disconnect, error codes, health, metrics, correlation ids.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "require_goldens.h"
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <regex>
#include <set>

#include "gguf/gguf.h"
#include "server/http_util.h"
#include "tokenizer/tokenizer.h"
#include "server/server_process.h"
#include "server/test_model.h"

namespace wo::test {
namespace {

using nlohmann::json;

struct Result {
    int status = 0;
    std::string body;
    std::vector<SseEvent> events;
    std::string correlation;  // X-Correlation-Id of the response
    std::string error;        // httplib's error when no response came back
};

// What a failing assertion prints: the status and body, or why there was no answer.
std::ostream& operator<<(std::ostream& o, const Result& r) {
    if (r.status == 0) return o << "no HTTP response (" << r.error << ")";
    return o << "HTTP " << r.status << ", body: " << r.body.substr(0, 2000);
}

Result post(const ServeProcess& p, const std::string& path, const json& body, httplib::Headers h = {}) {
    auto r = p.client().Post(path.c_str(), h, body.dump(), "application/json");
    Result out;
    if (!r) {
        out.error = httplib::to_string(r.error());
        return out;
    }
    out.status = r->status;
    out.body = r->body;
    out.correlation = r->get_header_value("X-Correlation-Id");
    if (r->get_header_value("Content-Type").rfind("text/event-stream", 0) == 0) out.events = parse_sse(r->body);
    return out;
}

std::string text_of(const Result& r) {
    std::string s;
    for (const auto& e : r.events)
        if (e.event == "token") s += e.data["t"].get<std::string>();
    return s;
}

// The final event; an empty one (so assertions fail instead of crashing) when there is none.
const SseEvent& last(const Result& r) {
    static const SseEvent none{"(no events)", nullptr};
    return r.events.empty() ? none : r.events.back();
}

// `worker-orcd generate`: the plain one-sequence loop, as the oracle for what serve streams.
std::string generate_cli(const std::string& model, const std::string& prompt, int n) {
    const std::string cmd = std::string(WO_BINARY) + " generate --model " + model + " --prompt '" + prompt +
                            "' -n " + std::to_string(n) + " --temperature 0 --threads 1 2>/dev/null";
    std::string out;
    FILE* f = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, k);
    pclose(f);
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

json metric_value(const std::string& text, const std::string& sample_prefix) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(sample_prefix, 0) == 0) return std::stod(line.substr(line.rfind(' ') + 1));
    return nullptr;
}

class NativeApi : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        model_ = tiny_gptoss_model();
        if (model_.empty()) return;
        server_ = new ServeProcess(model_, {"--parallel", "32", "--ctx", "256", "--threads", "2", "--worker-id", "w-test",
                                            "--enable-test-faults"});
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override {
        if (model_.empty()) WO_SKIP_WITHOUT_GOLDENS("gpt-oss tokenizer not installed (run scripts/goldens)");
        ASSERT_GT(server_->port(), 0) << server_->log_text();
    }
    static json body(const std::string& id, const std::string& prompt, int max_tokens, json extra = json::object()) {
        json b = {{"job_id", id}, {"prompt", prompt}, {"max_tokens", max_tokens}};
        b.update(extra);
        return b;
    }
    static int busy_slots() {
        auto r = server_->client().Get("/health");
        return r ? json::parse(r->body)["slots"]["busy"].get<int>() : -1;
    }
    static bool wait_idle(int ms) {
        for (int i = 0; i < ms / 20; ++i) {
            if (busy_slots() == 0) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return false;
    }
    static inline std::string model_;
    static inline ServeProcess* server_ = nullptr;
};

TEST_F(NativeApi, HealthReportsTheLoadedModel) {
    auto r = server_->client().Get("/health");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200) << r->body;
    const json h = json::parse(r->body);
    EXPECT_EQ(h["status"], "healthy");
    EXPECT_EQ(h["model"], "tiny-gpt-oss-test");
    EXPECT_EQ(h["architecture"], "gpt-oss");
    EXPECT_EQ(h["quant_kind"], "Q8_0");  // most weight bytes are the Q8_0 embedding and output
    EXPECT_EQ(h["resident"], true);
    EXPECT_EQ(h["tokenizer_kind"], "gguf-bpe");
    EXPECT_EQ(h["vocab_size"], 201088);
    EXPECT_EQ(h["context_length"], 256);
    EXPECT_EQ(h["backend"], "cpu");
    EXPECT_EQ(h["slots"]["total"], 32);
    EXPECT_EQ(h["worker_id"], "w-test");
    // Two Q8_0 matrices of 201088 x 64 (34 bytes per 32 values) are most of the bytes.
    EXPECT_GT(h["vram_bytes_used"].get<uint64_t>(), 2ull * 201088 * 68);
    EXPECT_GE(h["uptime_seconds"].get<int>(), 0);
}

TEST_F(NativeApi, EventOrderAndPayloads) {
    auto r = post(*server_, "/execute", body("order-1", "Hello, world", 6, {{"temperature", 0}, {"seed", 77}}));
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_GE(r.events.size(), 2u) << r.body;
    EXPECT_EQ(r.events[0].event, "started");
    EXPECT_EQ(r.events[0].data["job_id"], "order-1");
    EXPECT_EQ(r.events[0].data["model"], "tiny-gpt-oss-test");
    EXPECT_EQ(r.events[0].data["seed"], 77);
    EXPECT_TRUE(std::regex_match(r.events[0].data["started_at"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
    int i = 0, terminal = 0;
    for (size_t k = 1; k < r.events.size(); ++k) {
        const auto& e = r.events[k];
        if (e.event == "token") {
            EXPECT_EQ(terminal, 0) << "token after the terminal event";
            EXPECT_EQ(e.data["i"], i++);
            size_t n;
            EXPECT_TRUE(utf8_length(e.data["t"].get<std::string>(), n));
        } else if (e.event == "end" || e.event == "error") {
            ++terminal;
        } else {
            EXPECT_EQ(e.event, "metrics");
        }
    }
    EXPECT_EQ(terminal, 1);
    EXPECT_EQ(last(r).event, "end");
    EXPECT_EQ(last(r).data["tokens_out"], 6);
    EXPECT_EQ(last(r).data["stop_reason"], "MAX_TOKENS");
    EXPECT_GE(last(r).data["decode_time_ms"].get<double>(), 0.0);
    // Greedy text equals the one-sequence `generate` loop on the same model.
    EXPECT_EQ(text_of(r), generate_cli(model_, "Hello, world", 6));
}

TEST_F(NativeApi, SeedIsGeneratedWhenAbsentAndReproducesTheRun) {
    auto a = post(*server_, "/execute", body("seed-a", "The sky is", 8));
    ASSERT_EQ(a.status, 200) << a;
    ASSERT_TRUE(a.events[0].data["seed"].is_number_unsigned());
    const uint64_t seed = a.events[0].data["seed"].get<uint64_t>();
    auto b = post(*server_, "/execute", body("seed-b", "The sky is", 8, {{"seed", seed}}));
    EXPECT_EQ(text_of(a), text_of(b));
    auto c = post(*server_, "/execute", body("seed-c", "The sky is", 8, {{"seed", seed + 1}}));
    EXPECT_NE(text_of(a), text_of(c));  // 8 tokens drawn from a 201088-way noise distribution
}

TEST_F(NativeApi, ValidationNamesEveryBadField) {
    json bad = {{"job_id", ""},         {"prompt", std::string(32769, 'x')}, {"max_tokens", 2049},
                {"temperature", 2.5},   {"top_p", 1.5},                      {"top_k", 201089},
                {"min_p", -0.1},        {"repetition_penalty", 0},           {"stop", {"a", "b", "c", "d", "e"}},
                {"seed", -1}};
    auto r = post(*server_, "/execute", bad);
    ASSERT_EQ(r.status, 400) << r;
    const json j = json::parse(r.body);
    std::map<std::string, std::string> got;
    for (const auto& e : j["errors"]) {
        got[e["field"]] = e["constraint"];
        EXPECT_FALSE(e["message"].get<std::string>().empty());
    }
    EXPECT_EQ(got["job_id"], "non_empty");
    EXPECT_EQ(got["prompt"], "length(1..=32768)");
    EXPECT_EQ(got["max_tokens"], "range(1..=2048)");
    EXPECT_EQ(got["temperature"], "range(0..=2)");
    EXPECT_EQ(got["top_p"], "range(0..=1)");
    EXPECT_EQ(got["top_k"], "range(0..=201088)");
    EXPECT_EQ(got["min_p"], "range(0..=1)");
    EXPECT_EQ(got["repetition_penalty"], "range(0<..=2)");
    EXPECT_EQ(got["stop"], "count(0..=4)");
    EXPECT_EQ(got["seed"], "range(0..=18446744073709551615)");
    EXPECT_EQ(got.size(), 10u);

    // 32768 code points of a 3-byte character are fine (length counts characters, not bytes);
    // the prompt is then too long for this server's 256-token context, which is its own error.
    std::string cjk;
    for (int k = 0; k < 32768; ++k) cjk += "\xe4\xb8\xad";
    r = post(*server_, "/execute", body("cjk", cjk, 1));
    ASSERT_EQ(r.status, 400) << r;
    EXPECT_EQ(json::parse(r.body)["errors"][0]["field"], "prompt");
    EXPECT_EQ(json::parse(r.body)["errors"][0]["constraint"], "tokens(1..=256)");

    r = post(*server_, "/execute", json{{"prompt", "x"}});
    ASSERT_EQ(r.status, 400) << r;
    EXPECT_EQ(json::parse(r.body)["errors"][0]["field"], "job_id");
    auto raw = server_->client().Post("/execute", "{not json", "application/json");
    ASSERT_TRUE(raw) << httplib::to_string(raw.error());
    EXPECT_EQ(raw->status, 400) << raw->body;
    EXPECT_EQ(json::parse(raw->body)["errors"][0]["field"], "body");
    r = post(*server_, "/execute", body("types", "x", 1, {{"temperature", "hot"}, {"stop", {1}}}));
    ASSERT_EQ(r.status, 400) << r;
    EXPECT_EQ(json::parse(r.body)["errors"].size(), 2u);
}

// max_tokens is 1..2048 on /execute: both sides of both ends. A value outside is a 400 that
// names the field before any job exists; a value inside runs.
TEST_F(NativeApi, MaxTokensBoundsAreOneAnd2048) {
    for (int bad : {0, 2049, -1}) {
        auto r = post(*server_, "/execute", body("mt-bad-" + std::to_string(bad), "Hi", bad));
        ASSERT_EQ(r.status, 400) << bad << " " << r.body;
        const json e = json::parse(r.body)["errors"];
        ASSERT_EQ(e.size(), 1u) << r.body;
        EXPECT_EQ(e[0]["field"], "max_tokens");
        EXPECT_EQ(e[0]["constraint"], "range(1..=2048)");
        EXPECT_TRUE(r.events.empty());
    }
    auto one = post(*server_, "/execute", body("mt-1", "Hi", 1, {{"temperature", 0}}));
    ASSERT_EQ(one.status, 200) << one.body;
    EXPECT_EQ(last(one).event, "end");
    EXPECT_EQ(last(one).data["tokens_out"], 1);
    EXPECT_EQ(last(one).data["stop_reason"], "MAX_TOKENS");
    // 2048 is accepted; with a prompt that nearly fills the 256-token context it ends there.
    std::string prompt;
    for (int k = 0; k < 240; ++k) prompt += " word";
    auto top = post(*server_, "/execute", body("mt-2048", prompt, 2048, {{"temperature", 0}}));
    ASSERT_EQ(top.status, 200) << top.body;
    EXPECT_EQ(last(top).event, "end");
    EXPECT_EQ(last(top).data["stop_reason"], "CONTEXT_FULL");
}

TEST_F(NativeApi, StopSequenceEndsTheStreamWithoutEmittingIt) {
    auto full = post(*server_, "/execute", body("stop-ref", "Once upon a time", 24, {{"temperature", 0}}));
    const std::string text = text_of(full);
    ASSERT_GE(text.size(), 8u);
    // A stop string from the middle of the unstopped text: the stream must end right before
    // its first occurrence, and no event may carry any of its bytes.
    const size_t at = text.size() / 2;
    const std::string stop = text.substr(at, 3);
    const size_t first = text.find(stop);
    auto r = post(*server_, "/execute", body("stop-1", "Once upon a time", 24, {{"temperature", 0}, {"stop", {stop}}}));
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(last(r).event, "end");
    EXPECT_EQ(last(r).data["stop_reason"], "STOP_SEQUENCE");
    EXPECT_EQ(last(r).data["stop_sequence_matched"], stop);
    EXPECT_EQ(text_of(r), text.substr(0, first));
}

TEST_F(NativeApi, ContextFullEndsTheStream) {
    // The last position the cache holds is 255, so a sequence can reach 257 tokens: the final
    // sampled token is emitted but never fed back.
    std::string prompt;
    for (int k = 0; k < 200; ++k) prompt += " word";
    auto file = gguf::File::open(model_);
    const size_t p = load_tokenizer(file)->encode(prompt, true, true).size();
    ASSERT_LT(p, 250u);
    auto r = post(*server_, "/execute", body("ctx-full", prompt, 2048, {{"temperature", 0}}));
    EXPECT_EQ(last(r).event, "end");
    EXPECT_EQ(last(r).data["stop_reason"], "CONTEXT_FULL");
    EXPECT_EQ(last(r).data["tokens_out"].get<size_t>(), 257 - p);
}

TEST_F(NativeApi, ConcurrentStreamsEqualTheirSoloRuns) {
    const int n = 32;
    auto req = [&](int k, const std::string& id) {
        return body(id, "Stream " + std::to_string(k) + " says", 6,
                    {{"seed", 1000 + k}, {"temperature", 0.9}, {"top_k", 40 + k}, {"top_p", 0.95}});
    };
    std::vector<std::string> solo(n);
    std::vector<Result> together(n);
    for (int k = 0; k < n; ++k) {
        auto r = post(*server_, "/execute", req(k, "solo-" + std::to_string(k)));
        ASSERT_FALSE(r.events.empty()) << r;
        ASSERT_EQ(last(r).event, "end") << r;
        solo[k] = text_of(r);
    }
    std::vector<std::thread> ts;
    std::atomic<int> max_busy{0};
    for (int k = 0; k < n; ++k)
        ts.emplace_back([&, k] { together[k] = post(*server_, "/execute", req(k, "together-" + std::to_string(k))); });
    for (int i = 0; i < 20; ++i) {
        max_busy = std::max(max_busy.load(), busy_slots());
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto& t : ts) t.join();
    EXPECT_GT(max_busy.load(), 1) << "the streams never overlapped";
    for (int k = 0; k < n; ++k) {
        ASSERT_FALSE(together[k].events.empty()) << "stream " << k << ": " << together[k];
        EXPECT_EQ(last(together[k]).event, "end") << "stream " << k << ": " << together[k];
        EXPECT_EQ(text_of(together[k]), solo[k]) << "stream " << k << ": " << together[k];
    }
    std::set<std::string> distinct(solo.begin(), solo.end());
    EXPECT_GT(distinct.size(), 16u);  // different prompts and seeds give different streams
}

TEST_F(NativeApi, CancelEndsTheStreamAndFreesTheSlot) {
    Result r;
    std::thread t([&] { r = post(*server_, "/execute", body("cancel-1", "Tell me a long story", 2048)); });
    for (int i = 0; i < 500 && busy_slots() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    auto c = post(*server_, "/cancel", {{"job_id", "cancel-1"}});
    EXPECT_EQ(c.status, 202) << c;
    EXPECT_EQ(json::parse(c.body)["status"], "cancelling");
    t.join();
    ASSERT_FALSE(r.events.empty());
    EXPECT_EQ(r.events[0].event, "started");
    EXPECT_EQ(last(r).event, "error");
    EXPECT_EQ(last(r).data["code"], "CANCELLED");
    EXPECT_EQ(last(r).data["retriable"], false);
    EXPECT_TRUE(wait_idle(2000));
    // Idempotent, also for jobs that never existed.
    EXPECT_EQ(post(*server_, "/cancel", {{"job_id", "cancel-1"}}).status, 202);
    EXPECT_EQ(post(*server_, "/cancel", {{"job_id", "no-such-job"}}).status, 202);
    EXPECT_EQ(post(*server_, "/cancel", json::object()).status, 400);
}

TEST_F(NativeApi, ClientDisconnectCancelsTheJob) {
    auto cancelled = [&] {
        auto m = server_->client().Get("/metrics");
        return metric_value(m->body, "worker_requests_total{component=\"worker-orcd\",worker_id=\"w-test\",outcome=\"cancelled\"}");
    };
    const double before = cancelled().get<double>();
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(server_->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    const std::string b = body("gone-1", "Keep talking", 2048).dump();
    const std::string req = "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(b.size()) + "\r\n\r\n" + b;
    ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    std::string got;
    char buf[1024];
    while (got.find("event: token") == std::string::npos) {
        const ssize_t k = read(fd, buf, sizeof buf);
        ASSERT_GT(k, 0);
        got.append(buf, static_cast<size_t>(k));
    }
    close(fd);
    EXPECT_TRUE(wait_idle(3000)) << "the slot was not freed after the client left";
    for (int i = 0; i < 100 && cancelled().get<double>() == before; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(cancelled().get<double>(), before + 1);
}

TEST_F(NativeApi, InjectedFaultsReachEveryErrorCode) {
    for (const char* code : {"VRAM_OOM", "CUDA_ERROR", "INTERNAL", "INFERENCE_TIMEOUT", "INSUFFICIENT_VRAM",
                             "MODEL_LOAD_FAILED"}) {
        auto r = post(*server_, "/execute", body(std::string("fault-") + code, "hi", 4), {{"X-Test-Fault", code}});
        ASSERT_EQ(r.status, 200) << code;
        ASSERT_GE(r.events.size(), 2u) << code;
        EXPECT_EQ(r.events[0].event, "started");
        EXPECT_EQ(last(r).event, "error");
        EXPECT_EQ(last(r).data["code"], code);
        const bool want_retry = std::string(code) == "VRAM_OOM" || std::string(code) == "INFERENCE_TIMEOUT" ||
                                std::string(code) == "INSUFFICIENT_VRAM";
        EXPECT_EQ(last(r).data["retriable"], want_retry) << code;
    }
    // The worker keeps serving after a fault.
    auto ok = post(*server_, "/execute", body("after-fault", "hi", 2));
    EXPECT_EQ(last(ok).event, "end");
}

TEST_F(NativeApi, DuplicateActiveJobIdIsRejected) {
    Result first;
    std::thread t([&] { first = post(*server_, "/execute", body("dup-1", "long", 2048)); });
    for (int i = 0; i < 500 && busy_slots() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    auto r = post(*server_, "/execute", body("dup-1", "again", 2));
    EXPECT_EQ(r.status, 400) << r;
    EXPECT_EQ(json::parse(r.body)["errors"][0]["field"], "job_id");
    post(*server_, "/cancel", {{"job_id", "dup-1"}});
    t.join();
    EXPECT_EQ(last(first).data["code"], "CANCELLED");
}

TEST_F(NativeApi, CorrelationIdIsEchoedAndLogged) {
    auto r = post(*server_, "/execute", body("corr-1", "hi", 2), {{"X-Correlation-Id", "trace-abc-123"}});
    EXPECT_EQ(r.correlation, "trace-abc-123");
    std::set<std::string> events;
    for (const auto& j : server_->log_lines())
        if (j.value("job_id", "") == "corr-1") {
            EXPECT_EQ(j.value("correlation_id", ""), "trace-abc-123") << j.dump();
            events.insert(j.value("event", ""));
        }
    EXPECT_TRUE(events.count("execute_start") && events.count("execute_end") && events.count("job_queued"));
    // An unusable id is replaced by a generated UUIDv4.
    r = post(*server_, "/execute", body("corr-2", "hi", 1), {{"X-Correlation-Id", "bad id with spaces"}});
    EXPECT_TRUE(std::regex_match(r.correlation,
                                 std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
}

TEST_F(NativeApi, MetricsCountTokensAndRequests) {
    auto m0 = server_->client().Get("/metrics")->body;
    const std::string L = "{component=\"worker-orcd\",worker_id=\"w-test\"}";
    const double gen0 = metric_value(m0, "worker_tokens_generated_total" + L).get<double>();
    const double ok0 = metric_value(m0, "worker_requests_total{component=\"worker-orcd\",worker_id=\"w-test\",outcome=\"success\"}").get<double>();
    auto r = post(*server_, "/execute", body("metrics-1", "count me", 5));
    ASSERT_EQ(last(r).data["tokens_out"], 5);
    auto m1 = server_->client().Get("/metrics");
    EXPECT_EQ(m1->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
    EXPECT_EQ(metric_value(m1->body, "worker_tokens_generated_total" + L).get<double>(), gen0 + 5);
    EXPECT_EQ(metric_value(m1->body, "tokens_out_total" + L).get<double>(), gen0 + 5);
    EXPECT_EQ(metric_value(m1->body, "worker_requests_total{component=\"worker-orcd\",worker_id=\"w-test\",outcome=\"success\"}")
                  .get<double>(), ok0 + 1);
    for (const char* name : {"worker_vram_bytes", "worker_tokens_in_total", "worker_inference_duration_ms_bucket",
                             "worker_time_to_first_token_ms_count", "worker_inter_token_ms_sum", "worker_queue_depth",
                             "worker_slots_busy", "worker_uptime_seconds"})
        EXPECT_NE(m1->body.find(name), std::string::npos) << name;
    EXPECT_EQ(m1->body.find("metrics-1"), std::string::npos) << "job ids must not be labels";
}

}  // namespace
}  // namespace wo::test
