// The HTTP server: native worker API (/execute, /cancel, /health, /metrics) and the
// OpenAI-compatible routes (/v1/...), over one Engine. Handlers never touch the model: they
// validate, tokenize, submit a job and stream its events.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>

#include "engine/engine.h"

namespace httplib {
struct Request;
struct Response;
}

namespace wo {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;  // 0 = any free port (see Server::port())
    std::string worker_id;
    std::string model_ref;  // what the orchestrator asked for (the --model path)
    bool enable_test_faults = false;  // honour the X-Test-Fault header (tests only)
    // Security: with a key, every route but /health needs `Authorization: Bearer KEY`; without
    // one, requests from a browser page of another site (an Origin header) are refused.
    std::string api_key;
    // Hostile clients: open connections (idle ones are closed first when full), the deadline
    // for a whole request (headers + body), and the largest request body.
    int max_connections = 256;
    int request_timeout_ms = 10000;
    size_t max_body_bytes = 2 * 1024 * 1024;
};

class HttpServer;

class Server {
public:
    Server(Engine& engine, ServerOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds the listening socket and returns the port; throws Error(IO_ERROR) naming host:port.
    int bind();
    int port() const { return port_; }
    int open_connections() const;
    // Prometheus lines for the connection counters (appended to GET /metrics).
    std::string http_metrics(const std::string& labels) const;
    // Serves until stop(); call after bind(), typically on its own thread.
    void listen();
    void stop();

private:
    using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
    void add_native_routes();
    void add_openai_routes();
    void add_responses_routes();
    // Registers a handler; the route table also answers 404/405 (with Allow) and bounds the body.
    // A path with a group, like /v1/models/(.+), is a regular expression (httplib's matching).
    void route(const std::string& method, const std::string& path, Handler h, size_t max_body);
    // Auth, Origin, method and size checks before the body is read; true when it answered.
    bool reject_early(const httplib::Request& req, httplib::Response& res);

    struct Route {
        std::string methods;  // for Allow
        size_t max_body = 0;
        std::optional<std::regex> pattern;  // for a path with a group
    };
    const Route* find_route(const std::string& path) const;
    Engine& engine_;
    ServerOptions options_;
    std::unique_ptr<HttpServer> http_;
    std::map<std::string, Route> routes_;
    int port_ = 0;
    std::chrono::steady_clock::time_point started_;
};

}  // namespace wo
