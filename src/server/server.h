// The HTTP server: native worker API (/execute, /cancel, /health, /metrics) and the
// OpenAI-compatible routes (/v1/...), over one Engine. Handlers never touch the model: they
// validate, tokenize, submit a job and stream its events.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "engine/engine.h"

namespace httplib {
class Server;
}

namespace wo {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;  // 0 = any free port (see Server::port())
    std::string worker_id;
    std::string model_ref;  // what the orchestrator asked for (the --model path)
    int http_threads = 0;   // 0 = enough for every slot and queued job to hold a stream
    bool enable_test_faults = false;  // honour the X-Test-Fault header (tests only)
};

class Server {
public:
    Server(Engine& engine, ServerOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds the listening socket and returns the port; throws Error(IO_ERROR) naming host:port.
    int bind();
    int port() const { return port_; }
    // Serves until stop(); call after bind(), typically on its own thread.
    void listen();
    void stop();

private:
    void add_native_routes();
    void add_openai_routes();
    void add_responses_routes();

    Engine& engine_;
    ServerOptions options_;
    std::unique_ptr<httplib::Server> http_;
    int port_ = 0;
    std::chrono::steady_clock::time_point started_;
};

}  // namespace wo
