// Shared HTTP helpers and the SSE job streamer.
#include "server/http_util.h"

#include <httplib.h>

#include <random>
#include <regex>

#include "server/http_conn.h"
#include "util/log.h"

namespace wo {

int http_status(Code c) {
    switch (c) {
        case Code::INVALID_REQUEST:
        case Code::INVALID_ARGUMENT: return 400;
        case Code::INSUFFICIENT_VRAM:
        case Code::QUEUE_FULL: return 503;
        case Code::INFERENCE_TIMEOUT: return 504;
        case Code::CANCELLED: return 499;
        default: return 500;  // MODEL_LOAD_FAILED, VRAM_OOM, CUDA_ERROR, INTERNAL, ...
    }
}

std::optional<Code> code_from_name(const std::string& name) {
    for (int i = 0; i <= static_cast<int>(Code::QUEUE_FULL); ++i)
        if (code_name(static_cast<Code>(i)) == name) return static_cast<Code>(i);
    return std::nullopt;
}

bool retriable(Code c) {
    return c == Code::QUEUE_FULL || c == Code::INSUFFICIENT_VRAM || c == Code::VRAM_OOM || c == Code::INFERENCE_TIMEOUT;
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
    res.status = status;
    res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void send_http_error(httplib::Response& res, int status, const std::string& code, const std::string& message,
                     const std::string& correlation_id) {
    send_json(res, status,
              {{"error", {{"code", code}, {"message", message}, {"retriable", status == 503 || status == 408},
                          {"correlation_id", correlation_id}}}});
}

void send_error(httplib::Response& res, Code c, const std::string& message, const std::string& correlation_id) {
    send_json(res, http_status(c),
              {{"error", {{"code", std::string(code_name(c))}, {"message", message}, {"retriable", retriable(c)},
                          {"correlation_id", correlation_id}}}});
}

namespace {
std::mt19937_64& rng() {
    thread_local std::mt19937_64 g{std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32)};
    return g;
}
}  // namespace

uint64_t random_seed() { return rng()(); }

std::string uuid_v4() {
    const uint64_t a = rng()(), b = rng()();
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0x0fff),
                  static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                  static_cast<unsigned long long>(b & 0xffffffffffffULL));
    return buf;
}

std::string correlation_id(const httplib::Request& req, httplib::Response& res) {
    static const std::regex ok("^[A-Za-z0-9-]{1,64}$");
    std::string id = req.get_header_value("X-Correlation-Id");
    if (!std::regex_match(id, ok)) id = uuid_v4();
    res.set_header("X-Correlation-Id", id);
    return id;
}

std::string sse(std::string_view event, const nlohmann::json& data) {
    std::string s;
    if (!event.empty()) {
        s += "event: ";
        s += event;
        s += "\n";
    }
    s += "data: " + data.dump() + "\n\n";
    return s;
}

bool utf8_length(std::string_view s, size_t& n) {
    n = 0;
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; ++k) {
            const auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3f);
        }
        // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
        static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
        ++n;
    }
    return true;
}

std::string utf8_lossy(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
        // The character (1-4 bytes) that starts here, or one byte that starts none.
        size_t len = 0, n = 0;
        for (size_t k = 1; k <= 4 && i + k <= s.size(); ++k)
            if (utf8_length(s.substr(i, k), n) && n == 1) {
                len = k;
                break;
            }
        if (len == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else {
            out.append(s.substr(i, len));
            i += len;
        }
    }
    return out;
}

void stream_job(httplib::Response& res, Engine& engine, std::shared_ptr<Job> job, EventFormatter fmt) {
    struct State {
        std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
        bool done = false;
    };
    auto st = std::make_shared<State>();
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    const std::string job_id = job->request.job_id;
    auto gone = [&engine, job, job_id](const char* why) {
        if (job->finished()) return;
        log::info("client_disconnected", {{"job_id", job_id}, {"correlation_id", job->request.correlation_id},
                                          {"detected_by", why}});
        engine.cancel(job_id);
    };
    res.set_chunked_content_provider(
        "text/event-stream",
        [job, fmt, st, gone](size_t, httplib::DataSink& sink) {
            if (st->done) return false;
            auto ev = job->pop(std::chrono::milliseconds(100));
            const auto now = std::chrono::steady_clock::now();
            if (!ev) {
                // Idle (queued, or a long prefill): an SSE comment now and then finds a closed
                // connection even when no token is due.
                if (!sink.is_writable()) {
                    gone("not_writable");
                    return false;
                }
                if (now - st->last_write > std::chrono::milliseconds(500)) {
                    static const std::string ping = ": ping\n\n";
                    if (!sink.write(ping.data(), ping.size())) {
                        gone("write_failed");
                        return false;
                    }
                    st->last_write = now;
                }
                return true;
            }
            bool last = false;
            const std::string out = fmt(*ev, last);
            if (!out.empty()) {
                if (!sink.write(out.data(), out.size())) {
                    gone("write_failed");
                    return false;
                }
                st->last_write = now;
            }
            if (last) {
                st->done = true;
                sink.done();
            }
            return true;
        },
        [st, gone](bool success) {
            if (!success || !st->done) gone("stream_aborted");
        });
}

void collect_job(Engine& engine, Job& job, const std::function<bool(const JobEvent&)>& take) {
    auto checked = std::chrono::steady_clock::now();
    for (;;) {
        auto e = job.pop(std::chrono::milliseconds(50));
        // Checked on the clock, not only when idle: a busy job always has an event ready.
        if (const auto now = std::chrono::steady_clock::now(); now - checked >= std::chrono::milliseconds(50)) {
            checked = now;
            if (!job.cancelled() && !job.finished() && HttpServer::client_gone()) {
                log::info("client_disconnected", {{"job_id", job.request.job_id},
                                                  {"correlation_id", job.request.correlation_id},
                                                  {"detected_by", "peer_closed"}});
                engine.cancel(job.request.job_id);
            }
        }
        if (e && take(*e)) return;
    }
}

}  // namespace wo
