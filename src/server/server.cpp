// Server lifecycle and the checks every request passes before its body is read: route table
// (404, 405 with Allow), API key, cross-site Origin, body size. Connection handling against
// slow and idle clients is in http_conn.cpp.
#include "server/server.h"

#include <httplib.h>

#include "server/http_conn.h"
#include "server/http_util.h"
#include "util/log.h"

namespace wo {

namespace {

// Host part of "host[:port]" or "[v6]:port", lower-cased.
std::string host_of(std::string hp) {
    if (!hp.empty() && hp.front() == '[') {
        const size_t e = hp.find(']');
        hp = hp.substr(1, e == std::string::npos ? std::string::npos : e - 1);
    } else if (const size_t c = hp.find(':'); c != std::string::npos) {
        hp = hp.substr(0, c);
    }
    for (char& ch : hp) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return hp;
}

// Content-Length as sent: digits only; -1 when absent, -2 when malformed.
int64_t content_length(const httplib::Request& req) {
    if (!req.has_header("Content-Length")) return -1;
    const std::string v = req.get_header_value("Content-Length");
    if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos) return -2;
    return std::stoll(v);
}

}  // namespace

bool constant_time_equal(std::string_view given, std::string_view key) {
    // Time depends on the key's length only, never on where the first difference is.
    unsigned char d = given.size() != key.size();
    for (size_t i = 0; i < key.size(); ++i)
        d |= static_cast<unsigned char>((i < given.size() ? given[i] : 0) ^ key[i]);
    return d == 0;
}

Server::Server(Engine& engine, ServerOptions options)
    : engine_(engine), options_(std::move(options)), started_(std::chrono::steady_clock::now()) {
    HttpLimits lim;
    // Every slot and queued job may hold a stream, plus room for /health and friends.
    lim.max_connections =
        std::max(options_.max_connections, engine_.options().n_parallel + engine_.options().max_queue + 16);
    lim.request_timeout = std::chrono::milliseconds(options_.request_timeout_ms);
    http_ = std::make_unique<HttpServer>(lim);
    http_->set_payload_max_length(options_.max_body_bytes);
    http_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
        log::info("http_request", {{"method", req.method}, {"path", req.path}, {"status", res.status},
                                   {"correlation_id", res.get_header_value("X-Correlation-Id")}});
    });
    http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        return reject_early(req, res) ? httplib::Server::HandlerResponse::Handled
                                      : httplib::Server::HandlerResponse::Unhandled;
    });
    // Errors httplib produces itself (malformed request, body past the limit, deadline) get the
    // documented JSON body; handlers' own error bodies are left alone.
    http_->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (HttpServer::request_timed_out()) {
            res.status = 408;
            HttpServer::close_after_response();
        }
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        const char* code = res.status == 408   ? "REQUEST_TIMEOUT"
                           : res.status == 413 ? "PAYLOAD_TOO_LARGE"
                           : res.status == 414 ? "URI_TOO_LONG"
                           : res.status == 404 ? "NOT_FOUND"
                                               : "INVALID_REQUEST";
        const std::string msg = res.status == 408   ? "the request was not received in time"
                                : res.status == 413 ? "the request body is too large"
                                : res.status == 404 ? "no such route: " + req.path.substr(0, 128)
                                                    : "malformed HTTP request";
        send_http_error(res, res.status, code, msg, req.get_header_value("X-Correlation-Id").substr(0, 64));
        return httplib::Server::HandlerResponse::Handled;
    }));
    http_->set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        log::error("handler_exception", {{"path", req.path}, {"message", what}});
        send_http_error(res, 500, "INTERNAL", "internal error (logged)", "");
    });
    add_native_routes();
    add_openai_routes();
    add_responses_routes();
}

Server::~Server() { stop(); }

void Server::route(const std::string& method, const std::string& path, Handler h, size_t max_body) {
    Route& r = routes_[path];
    if (path.find('(') != std::string::npos && !r.pattern) r.pattern.emplace(path);
    r.methods += (r.methods.empty() ? "" : ", ") + method + (method == "GET" ? ", HEAD" : "");
    r.max_body = std::max(r.max_body, max_body);
    auto wrapped = [h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
        HttpServer::mark_busy();  // read in full within its deadline; from here on it is served
        h(req, res);
    };
    if (method == "GET") http_->Get(path, wrapped);
    else http_->Post(path, wrapped);
}

const Server::Route* Server::find_route(const std::string& path) const {
    if (auto it = routes_.find(path); it != routes_.end() && !it->second.pattern) return &it->second;
    for (const auto& [p, r] : routes_)
        if (r.pattern && std::regex_match(path, *r.pattern)) return &r;
    return nullptr;
}

bool Server::reject_early(const httplib::Request& req, httplib::Response& res) {
    const int64_t len = content_length(req);
    const bool has_body = req.has_header("Transfer-Encoding") || len != -1;
    auto fail = [&](int status, const char* code, const std::string& msg) {
        // The body was not read: the connection cannot carry another request.
        if (has_body) {
            HttpServer::close_after_response();
            res.set_header("Connection", "close");
        }
        send_http_error(res, status, code, msg, correlation_id(req, res));
        return true;
    };
    const Route* found = find_route(req.path);
    if (!found) return fail(404, "NOT_FOUND", "no such route: " + req.path.substr(0, 128));
    const Route& r = *found;
    if ((", " + r.methods + ",").find(", " + req.method + ",") == std::string::npos) {
        res.set_header("Allow", r.methods);
        return fail(405, "METHOD_NOT_ALLOWED", req.method.substr(0, 16) + " is not allowed on " + req.path.substr(0, 128) + " (allowed: " +
                                                   r.methods + ")");
    }
    if (!options_.api_key.empty() && req.path != "/health") {
        const std::string auth = req.get_header_value("Authorization");
        const std::string bearer = "Bearer ";
        if (auth.rfind(bearer, 0) != 0 || !constant_time_equal(std::string_view(auth).substr(bearer.size()), options_.api_key)) {
            res.set_header("WWW-Authenticate", "Bearer");
            return fail(401, "UNAUTHORIZED", "missing or wrong API key (Authorization: Bearer KEY)");
        }
    }
    // Without a key, a web page must not be able to drive the worker: browsers send Origin on
    // cross-site requests (even "simple" text/plain POSTs that need no preflight).
    if (options_.api_key.empty() && req.has_header("Origin")) {
        const std::string origin = req.get_header_value("Origin");
        const size_t scheme = origin.find("://");
        const std::string ohost = scheme == std::string::npos ? "" : host_of(origin.substr(scheme + 3));
        if (ohost.empty() || ohost != host_of(req.get_header_value("Host")))
            return fail(403, "FORBIDDEN", "cross-site requests are refused (Origin " + origin.substr(0, 128) +
                                              "); start the worker with --api-key to allow them");
    }
    if (req.has_header("Transfer-Encoding"))
        return fail(411, "LENGTH_REQUIRED", "send the body with Content-Length (chunked bodies are not accepted)");
    if (len == -2 || req.get_header_value_count("Content-Length") > 1)
        return fail(400, "INVALID_REQUEST", "malformed Content-Length");
    if (len > static_cast<int64_t>(r.max_body))
        return fail(413, "PAYLOAD_TOO_LARGE", "the body is " + std::to_string(len) + " bytes; " + req.path + " accepts at most " +
                                                  std::to_string(r.max_body));
    return false;
}

int Server::bind() {
    port_ = http_->bind_exclusive(options_.host, options_.port);
    if (port_ <= 0)
        throw Error(Code::IO_ERROR, "cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                                        " (in use, or not a local address)");
    return port_;
}

void Server::listen() { http_->listen_after_bind(); }

void Server::stop() {
    if (http_) http_->stop();
}

int Server::open_connections() const { return http_->open_connections(); }

std::string Server::http_metrics(const std::string& labels) const {
    std::string out;
    auto line = [&](const char* name, const char* type, const char* help, uint64_t v) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + "{" + labels +
               "} " + std::to_string(v) + "\n";
    };
    line("worker_http_connections_open", "gauge", "Open HTTP connections", static_cast<uint64_t>(open_connections()));
    line("worker_http_connections_evicted_total", "counter", "Idle or slow connections closed to make room",
         http_->evicted());
    line("worker_http_request_timeouts_total", "counter", "Requests not received within the request deadline (408)",
         http_->timed_out());
    line("worker_http_connections_refused_total", "counter", "Connections refused with 503 (all busy)", http_->refused());
    return out;
}

}  // namespace wo
