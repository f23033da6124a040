// Server lifecycle: cpp-httplib setup (thread pool sized for long-lived streams), bind, listen.
#include "server/server.h"

#include <httplib.h>

#include "util/log.h"

namespace wo {

Server::Server(Engine& engine, ServerOptions options)
    : engine_(engine), options_(std::move(options)), http_(std::make_unique<httplib::Server>()),
      started_(std::chrono::steady_clock::now()) {
    // Each SSE stream holds a pool thread for its whole life, so the pool must cover every slot
    // and every queued job, plus a few for /health, /metrics and /cancel while all are busy.
    int threads = options_.http_threads;
    if (threads <= 0) threads = engine_.options().n_parallel + engine_.options().max_queue + 8;
    http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    http_->set_read_timeout(30, 0);
    http_->set_write_timeout(30, 0);
    http_->set_payload_max_length(8 * 1024 * 1024);
    http_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
        log::info("http_request", {{"method", req.method}, {"path", req.path}, {"status", res.status},
                                   {"correlation_id", res.get_header_value("X-Correlation-Id")}});
    });
    add_native_routes();
    add_openai_routes();
    add_responses_routes();
}

Server::~Server() { stop(); }

int Server::bind() {
    if (options_.port == 0)
        port_ = http_->bind_to_any_port(options_.host.c_str());
    else
        port_ = http_->bind_to_port(options_.host.c_str(), options_.port) ? options_.port : -1;
    if (port_ <= 0)
        throw Error(Code::IO_ERROR, "cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                                        " (in use, or not a local address)");
    return port_;
}

void Server::listen() { http_->listen_after_bind(); }

void Server::stop() {
    if (http_) http_->stop();
}

}  // namespace wo
