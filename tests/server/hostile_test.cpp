// The server against hostile and careless clients (issue 12's table, one test per row):
// trickling and idle connections, clients that leave, a second worker on a taken port, queued
// cancels, invalid bytes and wrong types on every route, oversized inputs, wrong methods,
// cross-site requests and API keys. Loopback only; every loop is bounded.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <random>

#include "latency_bound.h"
#include "require_goldens.h"
#include "server/server_process.h"
#include "server/test_model.h"

namespace wo::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

int connect_to(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void send_str(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
        const ssize_t k = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (k <= 0) return;
        off += static_cast<size_t>(k);
    }
}

// Reads until the peer closes or `timeout_ms` passes; `closed` says which.
std::string read_until_close(int fd, int timeout_ms, bool* closed = nullptr) {
    std::string out;
    const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
    if (closed) *closed = false;
    for (;;) {
        const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
        if (left <= 0) return out;
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0) return out;
        char buf[4096];
        const ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k <= 0) {
            if (closed) *closed = true;
            return out;
        }
        out.append(buf, static_cast<size_t>(k));
    }
}

std::string raw_request(const std::string& method, const std::string& path, const std::string& body,
                        const std::string& extra_headers = "") {
    return method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n" +
           extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

struct Raw {
    int status = 0;
    std::string headers, body;
};
// One request on its own connection, the answer read to the end.
Raw raw_call(int port, const std::string& request, int timeout_ms = 30000) {
    Raw r;
    const int fd = connect_to(port);
    if (fd < 0) return r;
    send_str(fd, request);
    const std::string got = read_until_close(fd, timeout_ms);
    close(fd);
    const size_t he = got.find("\r\n\r\n");
    if (got.rfind("HTTP/1.1 ", 0) != 0 || he == std::string::npos) return r;
    r.status = std::stoi(got.substr(9, 3));
    r.headers = got.substr(0, he);
    r.body = got.substr(he + 4);
    return r;
}

double metric(const ServeProcess& p, const std::string& prefix) {
    auto m = p.client().Get("/metrics");
    if (!m) return -1;
    std::istringstream in(m->body);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(line.rfind(' ') + 1));
    return -1;
}

class Hostile : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        model_ = tiny_gptoss_model();
        if (model_.empty()) return;
        // The worker's defaults where they matter (4 slots, queue of 64), a short request
        // deadline so the tests are quick, and a connection bound the idle test can exceed.
        server_ = new ServeProcess(model_, {"--parallel", "4", "--ctx", "4096", "--threads", "1",
                                            "--request-timeout-sec", "2", "--max-connections", "100"});
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override {
        if (model_.empty()) WO_SKIP_WITHOUT_GOLDENS("gpt-oss tokenizer not installed (run scripts/goldens)");
        ASSERT_GT(server_->port(), 0) << server_->log_text();
    }
    static int port() { return server_->port(); }
    static json health() {
        auto r = server_->client().Get("/health");
        return r ? json::parse(r->body, nullptr, false) : json();
    }
    static int busy() {
        const json h = health();
        return h.is_object() ? h["slots"]["busy"].get<int>() : -1;
    }
    static bool wait_idle(int ms) {
        for (int i = 0; i < ms / 20; ++i) {
            if (busy() == 0) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return false;
    }
    static double health_ms() {
        const auto t = Clock::now();
        httplib::Client c("127.0.0.1", port());
        c.set_connection_timeout(20, 0);
        c.set_read_timeout(20, 0);
        auto r = c.Get("/health");
        return r && r->status == 200 ? ms_since(t) : 1e9;
    }
    static double cancelled_total() {
        return metric(*server_, "worker_requests_total{component=\"worker-orcd\",worker_id=\"" + worker_id() +
                                    "\",outcome=\"cancelled\"}");
    }
    static std::string worker_id() { return health()["worker_id"].get<std::string>(); }
    static double http_counter(const std::string& name) {
        return metric(*server_, name + "{component=\"worker-orcd\",worker_id=\"" + worker_id() + "\"}");
    }
public:
    static std::string execute(const std::string& id, int n) {
        return json{{"job_id", id}, {"prompt", "Hello"}, {"max_tokens", n}, {"temperature", 0}}.dump();
    }

protected:
    static inline std::string model_;
    static inline ServeProcess* server_ = nullptr;
};

// Row 1: ninety connections sending one header byte at a time.
TEST_F(Hostile, TricklingClientsCannotStallHealthOrStreams) {
    const double timeouts0 = http_counter("worker_http_request_timeouts_total");
    std::vector<int> fds;
    for (int i = 0; i < 90; ++i) {
        const int fd = connect_to(port());
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
    }
    const std::string head = raw_request("POST", "/execute", execute("trickle", 1));
    double worst = 0;
    std::string stream_body;
    double stream_ms = 0;
    std::thread honest([&] {
        const auto t = Clock::now();
        stream_body = raw_call(port(), raw_request("POST", "/execute", execute("honest-1", 8))).body;
        stream_ms = ms_since(t);
    });
    const auto start = Clock::now();
    for (size_t k = 0; ms_since(start) < 3500; ++k) {  // one byte per connection every 250 ms
        for (int fd : fds) send_str(fd, head.substr(k % head.size(), 1));
        worst = std::max(worst, health_ms());
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    honest.join();
    // The target is 100 ms (docs/reliability.md has the figures); a test on two busy cores
    // asserts the order of magnitude: today's per-read timeout made this 20 s.
    EXPECT_LT(worst, latency_bound_ms(1000)) << "slowest /health while 90 clients trickle";
    EXPECT_NE(stream_body.find("event: end"), std::string::npos) << stream_body;
    EXPECT_LT(stream_ms, latency_bound_ms(10000));
    // Every trickler hit the 2 s whole-request deadline: answered 408 and closed.
    int closed_n = 0, r408 = 0;
    for (int fd : fds) {
        bool closed = false;
        const std::string got = read_until_close(fd, static_cast<int>(latency_bound_ms(3000)), &closed);
        closed_n += closed;
        r408 += got.rfind("HTTP/1.1 408", 0) == 0;
        close(fd);
    }
    EXPECT_EQ(closed_n, 90);
    EXPECT_EQ(r408, 90);
    EXPECT_GE(http_counter("worker_http_request_timeouts_total") - timeouts0, 90);
}

// Row 1 again, the body instead of the headers: the deadline covers both together.
TEST_F(Hostile, SlowBodyGets408WithinTheRequestDeadline) {
    const int fd = connect_to(port());
    ASSERT_GE(fd, 0);
    const std::string body = execute("slow-body", 1);
    send_str(fd, "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n");
    const auto t = Clock::now();
    bool closed = false;
    std::string got;
    for (size_t i = 0; i < body.size() && !closed && ms_since(t) < 8000; ++i) {
        send_str(fd, body.substr(i, 1));
        got += read_until_close(fd, 200, &closed);
    }
    got += read_until_close(fd, 3000, &closed);
    close(fd);
    EXPECT_TRUE(closed);
    // Not scaled under a sanitizer (latency_bound.h): this times the server's own 2 s timer, and
    // 2.5 s of slack covers a slow build; a scaled bound would exceed the loop's 8 s and mean nothing.
    EXPECT_LT(ms_since(t), 4500) << "a body trickled byte by byte must not outlive the 2 s deadline";
    EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
    EXPECT_NE(got.find("REQUEST_TIMEOUT"), std::string::npos) << got;
}

// Row 2: three hundred idle sockets against a bound of 100 connections.
TEST_F(Hostile, IdleSocketsAreClosedOldestFirstAndHealthStaysFast) {
    const double evicted0 = http_counter("worker_http_connections_evicted_total");
    ASSERT_GE(evicted0, 0);
    std::vector<int> fds;
    for (int i = 0; i < 300; ++i) {
        const int fd = connect_to(port());
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
    }
    double worst = 0;
    for (int i = 0; i < 5; ++i) worst = std::max(worst, health_ms());
    EXPECT_LT(worst, latency_bound_ms(1000));
    const auto t = Clock::now();
    auto r = raw_call(port(), raw_request("POST", "/execute", execute("idle-honest", 8)));
    EXPECT_NE(r.body.find("event: end"), std::string::npos) << r.status << " " << r.body;
    EXPECT_LT(ms_since(t), latency_bound_ms(5000));
    // At most 100 open: at least 200 of the 300 were closed to make room (not by their deadline),
    // the oldest first.
    EXPECT_GE(http_counter("worker_http_connections_evicted_total") - evicted0, 200);
    bool closed = false;
    read_until_close(fds[0], static_cast<int>(latency_bound_ms(1000)), &closed);
    EXPECT_TRUE(closed) << "the oldest idle socket is still open";
    EXPECT_LE(http_counter("worker_http_connections_open"), 100);
    for (int fd : fds) close(fd);
}

// Row 3: a non-streaming OpenAI request whose client leaves cancels its job.
TEST_F(Hostile, ClientLeavingCancelsNonStreamingAndStreamingJobs) {
    const double before = cancelled_total();
    ASSERT_TRUE(wait_idle(5000));
    const json bodies[] = {
        {{"prompt", "Tell me a story"}, {"max_tokens", 3000}},
        {{"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}}, {"max_tokens", 3000}},
        {{"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}}, {"max_tokens", 3000}, {"stream", true}},
        {{"input", "Tell me a story"}, {"max_output_tokens", 3000}},
        {{"input", "Tell me a story"}, {"max_output_tokens", 3000}, {"stream", true}},
    };
    const char* paths[] = {"/v1/completions", "/v1/chat/completions", "/v1/chat/completions", "/v1/responses",
                           "/v1/responses"};
    for (int k = 0; k < 5; ++k) {
        const int fd = connect_to(port());
        ASSERT_GE(fd, 0);
        send_str(fd, raw_request("POST", paths[k], bodies[k].dump()));
        for (int i = 0; i < 500 && busy() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ASSERT_EQ(busy(), 1) << paths[k];
        close(fd);
        const auto t = Clock::now();
        EXPECT_TRUE(wait_idle(static_cast<int>(latency_bound_ms(3000))))
            << paths[k] << ": the slot stayed busy after the client left";
        EXPECT_LT(ms_since(t), latency_bound_ms(3000));
    }
    for (int i = 0; i < 100 && cancelled_total() < before + 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(cancelled_total(), before + 5);
}

// Row 4: a second worker on a port already in use refuses to start.
TEST_F(Hostile, SecondServeOnATakenPortRefusesToStart) {
    // `timeout` ends a second server that did bind (SO_REUSEPORT) instead of refusing.
    const std::string cmd = "timeout 30 " + std::string(WO_BINARY) + " serve --model " + model_ +
                            " --host 127.0.0.1 --port " + std::to_string(port()) + " 2>&1";
    std::string out;
    FILE* f = popen(cmd.c_str(), "r");
    ASSERT_TRUE(f);
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, k);
    const int st = pclose(f);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 124) << out;
    EXPECT_NE(out.find("cannot listen on 127.0.0.1:" + std::to_string(port())), std::string::npos) << out;
    EXPECT_EQ(health()["status"], "healthy");
}

// Row 5: cancelling a queued job ends it at once and frees its place in the queue.
TEST_F(Hostile, CancellingAQueuedJobEndsItAtOnce) {
    ASSERT_TRUE(wait_idle(5000));
    std::vector<std::thread> running;
    for (int i = 0; i < 4; ++i)  // all four slots busy
        running.emplace_back([i] { raw_call(port(), raw_request("POST", "/execute", execute("hold-" + std::to_string(i), 2048))); });
    for (int i = 0; i < 500 && busy() < 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(busy(), 4);
    Raw queued;
    std::atomic<bool> done{false};
    Clock::time_point finished;
    std::thread q([&] {
        queued = raw_call(port(), raw_request("POST", "/execute", execute("queued-1", 4)));
        finished = Clock::now();
        done = true;
    });
    const std::string depth = "worker_queue_depth{component=\"worker-orcd\",worker_id=\"" + worker_id() + "\"}";
    for (int i = 0; i < 500 && metric(*server_, depth) != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(metric(*server_, depth), 1);
    const auto t = Clock::now();
    auto c = raw_call(port(), raw_request("POST", "/cancel", json{{"job_id", "queued-1"}}.dump()));
    EXPECT_EQ(c.status, 202);
    EXPECT_EQ(metric(*server_, depth), 0) << "the cancelled job still counts against the queue";
    for (int i = 0; i < latency_bound_ms(2000) / 10 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(done) << "the queued job's stream did not end while every slot stayed busy";
    const double cancel_ms = std::chrono::duration<double, std::milli>(finished - t).count();
    EXPECT_LT(cancel_ms, latency_bound_ms(1500));
    EXPECT_EQ(busy(), 4) << "the running jobs are unaffected";
    const auto ev = parse_sse(queued.body);
    ASSERT_FALSE(ev.empty()) << queued.body;
    EXPECT_EQ(ev.back().event, "error");
    EXPECT_EQ(ev.back().data["code"], "CANCELLED");
    q.join();
    for (int i = 0; i < 4; ++i) raw_call(port(), raw_request("POST", "/cancel", json{{"job_id", "hold-" + std::to_string(i)}}.dump()));
    for (auto& t2 : running) t2.join();
    EXPECT_TRUE(wait_idle(3000));
}

// A 4xx answer carries the documented JSON body, small whatever the request.
void expect_4xx_json(const Raw& r, const std::string& what) {
    EXPECT_GE(r.status, 400) << what << "\n" << r.headers << "\n" << r.body.substr(0, 500);
    EXPECT_LT(r.status, 500) << what << "\n" << r.headers << "\n" << r.body.substr(0, 500);
    const json j = json::parse(r.body, nullptr, false);
    EXPECT_TRUE(j.is_object() && (j.contains("error") || j.contains("errors"))) << what << ": " << r.body.substr(0, 500);
    EXPECT_LT(r.body.size(), 16384u) << what;
    EXPECT_EQ(r.headers.find("EXCEPTION_WHAT"), std::string::npos) << what;
}

// Row 6: invalid UTF-8 and wrong types are a 4xx with a JSON body, never a 500.
TEST_F(Hostile, InvalidUtf8AndWrongTypesAre400) {
    // Raw bytes that are not UTF-8 inside a JSON string.
    expect_4xx_json(raw_call(port(), raw_request("POST", "/execute", "{\"job_id\":\"u\",\"prompt\":\"a\xff\xfe b\"}")),
                    "invalid UTF-8 prompt");
    expect_4xx_json(raw_call(port(), raw_request("POST", "/v1/completions", "{\"prompt\":\"\xc3\x28\"}")), "invalid UTF-8");
    expect_4xx_json(raw_call(port(), raw_request("POST", "/cancel", "{\"job_id\":\"\xed\xa0\x80\"}")), "surrogate bytes");
    auto r = raw_call(port(), raw_request("POST", "/v1/chat/completions",
                                          json{{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                               {"stream", true},
                                               {"stream_options", {{"include_usage", "x"}}}}
                                              .dump()));
    expect_4xx_json(r, "include_usage: \"x\"");
    EXPECT_NE(r.body.find("stream_options.include_usage"), std::string::npos) << r.body;
    expect_4xx_json(raw_call(port(), raw_request("POST", "/v1/chat/completions",
                                                 json{{"messages", {{{"role", "user"}, {"content", {{{"type", 7}}}}}}}}.dump())),
                    "content part type 7");
}

// Every JSON path of a valid request on every route, replaced by values of every kind.
TEST_F(Hostile, FuzzedBodiesOnEveryRouteAreNever5xx) {
    const std::vector<std::pair<std::string, json>> routes = {
        {"/execute", {{"job_id", "fz"}, {"prompt", "Hi"}, {"max_tokens", 1}, {"temperature", 0.5}, {"top_p", 0.9},
                      {"top_k", 5}, {"min_p", 0.1}, {"repetition_penalty", 1.1}, {"stop", {"x"}}, {"seed", 3}}},
        {"/cancel", {{"job_id", "fz"}}},
        {"/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 1}, {"stream", false}, {"stop", "x"}, {"seed", 1},
                             {"n", 1}, {"logprobs", false}, {"stream_options", {{"include_usage", true}}}}},
        {"/v1/chat/completions",
         {{"messages", {{{"role", "system"}, {"content", "s"}}, {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "t"}}}}}}},
          {"max_tokens", 1}, {"reasoning_effort", "low"}, {"tools", json::array()}, {"max_completion_tokens", 1},
          {"frequency_penalty", 0}, {"temperature", 1}}},
        {"/v1/chat/completions",
         {{"messages",
           {{{"role", "user"}, {"content", "w?"}},
            {{"role", "assistant"}, {"content", nullptr},
             {"tool_calls", {{{"id", "c1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}}}}},
            {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "ok"}}}},
          {"tools", {{{"type", "function"},
                      {"function", {{"name", "f"}, {"parameters", {{"type", "object"}, {"properties", {{"x", {{"type", "string"}, {"nullable", true}}}}}}}}}}}},
          {"tool_choice", "auto"}, {"logprobs", true}, {"top_logprobs", 2}, {"max_tokens", 1},
          {"max_completion_tokens", 1}}},
        {"/v1/responses",
         {{"input", {{{"type", "message"}, {"role", "user"}, {"content", {{{"type", "input_text"}, {"text", "hi"}}}}},
                     {{"type", "function_call"}, {"call_id", "c1"}, {"name", "f"}, {"arguments", "{}"}},
                     {{"type", "function_call_output"}, {"call_id", "c1"}, {"output", "ok"}}}},
          {"instructions", "brief"}, {"max_output_tokens", 1}, {"reasoning", {{"effort", "low"}}},
          {"tools", {{{"type", "function"}, {"name", "f"}, {"parameters", {{"type", "object"}}}}}},
          {"tool_choice", {{"type", "function"}, {"name", "f"}}}, {"text", {{"format", {{"type", "text"}}}}},
          {"metadata", {{"k", "v"}}}}},
        {"/tokenize", {{"content", "Hi there"}, {"add_special", true}, {"parse_special", false}, {"with_pieces", true}}},
        {"/detokenize", {{"tokens", {1, 2, 3}}}},
    };
    const std::vector<std::string> replacements = {
        "\"x\"", "1", "-1", "0", "1e300", "-1e300", "18446744073709551616", "-9223372036854775809", "2.5", "true", "null",
        "[]", "{}", "[1,2]", "{\"a\":1}", "\"" + std::string(300, 'z') + "\"", "\"\xff\"", "\"\\ud800\"", "\"\"",
    };
    std::mt19937 rng(12);
    int n = 0;
    for (const auto& [path, base] : routes) {
        // Every path in the request (objects and arrays, recursively).
        std::vector<json::json_pointer> ptrs;
        const json flat = base.flatten();
        for (auto it = flat.begin(); it != flat.end(); ++it) {
            json::json_pointer p(it.key());
            for (; !p.empty(); p = p.parent_pointer()) ptrs.push_back(p);
        }
        std::sort(ptrs.begin(), ptrs.end());
        ptrs.erase(std::unique(ptrs.begin(), ptrs.end()), ptrs.end());
        for (const auto& p : ptrs)
            for (const auto& rep : replacements) {
                // null is "absent": the reply would run to the end of the context.
                if (rep == "null" && p.to_string() == "/max_output_tokens") continue;
                json b = base;
                b[p] = "@@";
                std::string s = b.dump();
                s.replace(s.find("\"@@\""), 4, rep);
                if (path == "/execute") {  // a fresh id, so a valid mutation is a new job
                    auto pos = s.find("\"fz\"");
                    if (pos != std::string::npos) s.replace(pos, 4, "\"fz" + std::to_string(n) + "\"");
                }
                const Raw r = raw_call(port(), raw_request("POST", path, s));
                ++n;
                ASSERT_GT(r.status, 0) << path << " " << s;
                if (r.status >= 300) expect_4xx_json(r, path + " " + s.substr(0, 300));
                else EXPECT_TRUE(r.status == 200 || r.status == 202) << path << " " << s;
            }
        // Not JSON, not an object, truncated, random bytes.
        std::vector<std::string> junk = {"", "null", "[]", "\"x\"", "{", base.dump().substr(0, base.dump().size() / 2), "\xff\xfe"};
        for (int i = 0; i < 20; ++i) {
            std::string s(static_cast<size_t>(rng() % 64), '\0');
            for (char& c : s) c = static_cast<char>(rng());
            junk.push_back(s);
        }
        for (const auto& s : junk) expect_4xx_json(raw_call(port(), raw_request("POST", path, s)), path + " junk");
    }
    // The GET routes ignore bodies but bound them.
    for (const char* path : {"/health", "/metrics", "/v1/models"}) {
        auto r = raw_call(port(), raw_request("GET", path, ""));
        EXPECT_EQ(r.status, 200) << path;
        expect_4xx_json(raw_call(port(), raw_request("GET", path, std::string(8192, 'x'))), std::string(path) + " big body");
    }
    auto m = raw_call(port(), raw_request("GET", "/v1/models/" + std::string(3000, 'm'), ""));
    EXPECT_EQ(m.status, 404) << m.body;
    expect_4xx_json(m, "unknown model");
    expect_4xx_json(raw_call(port(), raw_request("GET", "/v1/models/x", std::string(8192, 'x'))), "/v1/models/x big body");
    EXPECT_GT(n, 300);
    EXPECT_EQ(health()["status"], "healthy");
}

// Row 7: ten thousand bogus messages get a small error body, and the memory stays flat.
TEST_F(Hostile, ErrorBodiesAreBounded) {
    json msgs = json::array();
    for (int i = 0; i < 10000; ++i) msgs.push_back({{"role", "bogus"}, {"content", "x"}});
    auto r = raw_call(port(), raw_request("POST", "/v1/chat/completions", json{{"messages", msgs}}.dump()));
    expect_4xx_json(r, "10000 messages");
    EXPECT_NE(r.body.find("count(1..=1024)"), std::string::npos) << r.body.substr(0, 300);
    msgs.erase(msgs.begin() + 1000, msgs.end());
    r = raw_call(port(), raw_request("POST", "/v1/chat/completions", json{{"messages", msgs}}.dump()));
    expect_4xx_json(r, "1000 messages");
    const json j = json::parse(r.body);
    EXPECT_EQ(j["errors"].size(), 16u);
    EXPECT_EQ(j["error_count"], 1000);
    // The same bounds for /v1/responses input items.
    json items = json::array();
    for (int i = 0; i < 10000; ++i) items.push_back({{"type", "bogus"}});
    r = raw_call(port(), raw_request("POST", "/v1/responses", json{{"input", items}}.dump()));
    expect_4xx_json(r, "10000 input items");
    EXPECT_NE(r.body.find("count(1..=1024)"), std::string::npos) << r.body.substr(0, 300);
    items.erase(items.begin() + 1000, items.end());
    for (auto& it : items) it["type"] = std::string(1000, 't');  // echoed types are cut
    r = raw_call(port(), raw_request("POST", "/v1/responses", json{{"input", items}}.dump()));
    expect_4xx_json(r, "1000 input items");
    const json k = json::parse(r.body);
    EXPECT_EQ(k["errors"].size(), 16u);
    EXPECT_EQ(k["error_count"], 1000);
}

// Row 8: stop strings, job ids and bodies have limits on every route.
TEST_F(Hostile, StopStringsJobIdsAndBodiesAreLimited) {
    const std::string long_stop(300, 'a');
    auto r = raw_call(port(), raw_request("POST", "/v1/completions", json{{"prompt", "x"}, {"stop", long_stop}}.dump()));
    expect_4xx_json(r, "300-char stop");
    EXPECT_NE(r.body.find("length(1..=256)"), std::string::npos) << r.body;
    r = raw_call(port(), raw_request("POST", "/execute", json{{"job_id", "s"}, {"prompt", "x"}, {"stop", {long_stop}}}.dump()));
    expect_4xx_json(r, "300-char stop on /execute");
    r = raw_call(port(), raw_request("POST", "/v1/chat/completions",
                                     json{{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"stop", std::string(3 << 20, 'a')}}.dump()));
    EXPECT_EQ(r.status, 413) << r.body;
    expect_4xx_json(r, "3 MB stop");
    r = raw_call(port(), raw_request("POST", "/cancel", json{{"job_id", std::string(1 << 20, 'j')}}.dump()));
    EXPECT_EQ(r.status, 413) << r.body;
    r = raw_call(port(), raw_request("POST", "/cancel", json{{"job_id", std::string(300, 'j')}}.dump()));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("length(1..=256)"), std::string::npos) << r.body;
}

// Row 9: a huge Content-Length is refused before any body arrives.
TEST_F(Hostile, HugeContentLengthIs413AtOnce) {
    const int fd = connect_to(port());
    ASSERT_GE(fd, 0);
    const auto t = Clock::now();
    send_str(fd, "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n");
    bool closed = false;
    const std::string got = read_until_close(fd, 5000, &closed);
    close(fd);
    EXPECT_LT(ms_since(t), latency_bound_ms(1000));
    EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
    EXPECT_NE(got.find("PAYLOAD_TOO_LARGE"), std::string::npos) << got;
    EXPECT_TRUE(closed) << "the unread body must not be parsed as a next request";
}

// Row 10: the listen backlog is sized for bursts (the kernel reports it as Send-Q).
TEST_F(Hostile, ListenBacklogIsLarge) {
    FILE* f = popen(("ss -ltnH 'sport = :" + std::to_string(port()) + "' 2>/dev/null").c_str(), "r");
    ASSERT_TRUE(f);
    char buf[512] = {};
    const size_t k = fread(buf, 1, sizeof buf - 1, f);
    pclose(f);
    if (k == 0) GTEST_SKIP() << "ss (iproute2) not available";
    std::istringstream in(buf);
    std::string state;
    long recvq = 0, sendq = 0;
    in >> state >> recvq >> sendq;
    EXPECT_GE(sendq, 128) << buf;  // 1024 asked; the kernel caps it at net.core.somaxconn
}

// Row 11: a wrong method is 405 with Allow; an unknown path is 404 with a JSON body.
TEST_F(Hostile, WrongMethodIs405WithAllow) {
    struct Case {
        const char *method, *path, *allow;
    } cases[] = {{"GET", "/execute", "POST"},        {"PUT", "/cancel", "POST"},
                 {"POST", "/health", "GET, HEAD"},   {"DELETE", "/v1/models", "GET, HEAD"},
                 {"GET", "/v1/chat/completions", "POST"}, {"OPTIONS", "/execute", "POST"},
                 {"GET", "/v1/responses", "POST"},        {"POST", "/v1/models/some-model", "GET, HEAD"},
                 {"GET", "/tokenize", "POST"},            {"PUT", "/detokenize", "POST"}};
    for (const auto& c : cases) {
        auto r = raw_call(port(), raw_request(c.method, c.path, ""));
        EXPECT_EQ(r.status, 405) << c.method << " " << c.path;
        EXPECT_NE(r.headers.find(std::string("Allow: ") + c.allow), std::string::npos) << r.headers;
        expect_4xx_json(r, std::string(c.method) + " " + c.path);
    }
    auto r = raw_call(port(), raw_request("GET", "/nope", ""));
    EXPECT_EQ(r.status, 404);
    expect_4xx_json(r, "unknown path");
}

// Row 12: without an API key, a page from another site cannot drive the worker.
TEST_F(Hostile, CrossSiteOriginIsRefusedWithoutAKey) {
    const double jobs = metric(*server_, "worker_tokens_in_total");
    const std::string body = execute("evil", 4);
    auto r = raw_call(port(), "POST /execute HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port()) +
                                  "\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                                  "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    EXPECT_EQ(r.status, 403) << r.body;
    expect_4xx_json(r, "cross-site");
    const std::string oai = json{{"input", "hi"}, {"max_output_tokens", 2}}.dump();
    r = raw_call(port(), raw_request("POST", "/v1/responses", oai, "Origin: http://evil.example\r\n"));
    EXPECT_EQ(r.status, 403) << r.body;
    expect_4xx_json(r, "cross-site /v1/responses");
    EXPECT_EQ(metric(*server_, "worker_tokens_in_total"), jobs) << "a cross-site request ran";
    // The same site (a page served by this host) is allowed.
    r = raw_call(port(), raw_request("GET", "/v1/models", "", "Origin: http://127.0.0.1:3000\r\n"));
    EXPECT_EQ(r.status, 200) << r.body;
}

// Row 12 with a key: Bearer on every route but /health, from the flag, a file or the environment.
TEST(HostileAuth, ApiKeyIsRequiredEverywhereButHealth) {
    const std::string model = tiny_gptoss_model();
    if (model.empty()) WO_SKIP_WITHOUT_GOLDENS("gpt-oss tokenizer not installed (run scripts/goldens)");
    const std::string key_file = std::filesystem::temp_directory_path() / ("wo-key-" + std::to_string(getpid()));
    std::ofstream(key_file) << "file-secret\n";
    setenv("WORKER_API_KEY", "env-secret", 1);
    struct Way {
        std::vector<std::string> args;
        std::string key;
    } ways[] = {{{"--api-key", "flag-secret"}, "flag-secret"}, {{"--api-key-file", key_file}, "file-secret"}, {{}, "env-secret"}};
    for (const auto& w : ways) {
        std::vector<std::string> args = {"--parallel", "1", "--ctx", "256", "--threads", "1"};
        args.insert(args.end(), w.args.begin(), w.args.end());
        ServeProcess p(model, args);
        ASSERT_GT(p.port(), 0) << p.log_text();
        auto call = [&](const char* method, const char* path, const std::string& auth, const std::string& body = "") {
            return raw_call(p.port(), raw_request(method, path, body, auth.empty() ? "" : "Authorization: " + auth + "\r\n"));
        };
        EXPECT_EQ(call("GET", "/health", "").status, 200) << w.key;
        for (const char* path : {"/metrics", "/v1/models"}) {
            auto r = call("GET", path, "");
            EXPECT_EQ(r.status, 401) << path;
            EXPECT_NE(r.headers.find("WWW-Authenticate: Bearer"), std::string::npos);
            expect_4xx_json(r, path);
            EXPECT_EQ(call("GET", path, "Bearer wrong-" + w.key).status, 401);
            EXPECT_EQ(call("GET", path, "Bearer " + w.key.substr(0, w.key.size() - 1)).status, 401);
            EXPECT_EQ(call("GET", path, "Bearer " + w.key).status, 200) << path << " " << w.key;
        }
        EXPECT_EQ(call("POST", "/execute", "", Hostile::execute("k1", 1)).status, 401);
        EXPECT_EQ(call("POST", "/cancel", "", json{{"job_id", "k1"}}.dump()).status, 401);
        auto ok = call("POST", "/execute", "Bearer " + w.key, Hostile::execute("k1", 1));
        EXPECT_EQ(ok.status, 200);
        EXPECT_NE(ok.body.find("event: end"), std::string::npos) << ok.body;
        EXPECT_EQ(call("POST", "/v1/completions", "Bearer " + w.key, json{{"prompt", "x"}, {"max_tokens", 1}}.dump()).status, 200);
        const std::string resp = json{{"input", "x"}, {"max_output_tokens", 1}}.dump();
        EXPECT_EQ(call("POST", "/v1/responses", "", resp).status, 401);
        auto r = call("POST", "/v1/responses", "Bearer " + w.key, resp);
        EXPECT_EQ(r.status, 200) << r.body;
        unsetenv("WORKER_API_KEY");  // the last way uses it; the first two must win over it
        if (w.key == "env-secret") break;
        setenv("WORKER_API_KEY", "env-secret", 1);
    }
    unsetenv("WORKER_API_KEY");
    std::filesystem::remove(key_file);
}

TEST(HostileAuth, ListeningBeyondLoopbackWithoutAKeyWarns) {
    const std::string model = tiny_gptoss_model();
    if (model.empty()) WO_SKIP_WITHOUT_GOLDENS("gpt-oss tokenizer not installed (run scripts/goldens)");
    ServeProcess open(model, {"--host", "0.0.0.0", "--parallel", "1", "--ctx", "256", "--threads", "1"});
    ASSERT_GT(open.port(), 0) << open.log_text();
    bool warned = false;
    for (const auto& j : open.log_lines()) warned |= j.value("event", "") == "no_api_key";
    EXPECT_TRUE(warned) << open.log_text();
    ServeProcess keyed(model, {"--host", "0.0.0.0", "--api-key", "k", "--parallel", "1", "--ctx", "256", "--threads", "1"});
    ASSERT_GT(keyed.port(), 0);
    for (const auto& j : keyed.log_lines()) EXPECT_NE(j.value("event", ""), "no_api_key");
    ServeProcess local(model, {"--parallel", "1", "--ctx", "256", "--threads", "1"});
    for (const auto& j : local.log_lines()) EXPECT_NE(j.value("event", ""), "no_api_key");
}

}  // namespace
}  // namespace wo::test
