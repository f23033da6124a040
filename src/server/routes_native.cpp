// The native worker API: POST /execute (SSE), POST /cancel, GET /health, GET /metrics.
#include <httplib.h>

#include "server/http_conn.h"
#include "server/http_util.h"
#include "server/requests.h"
#include "server/server.h"
#include "server/validate.h"
#include "util/log.h"

namespace wo {

namespace {

// The native SSE payloads (docs/api.md).
EventFormatter native_formatter(const std::string& job_id, const std::string& model, uint64_t seed) {
    auto index = std::make_shared<int>(0);
    return [=](const JobEvent& e, bool& last) -> std::string {
        switch (e.kind) {
            case JobEvent::Kind::Started:
                return sse("started", {{"job_id", job_id}, {"model", model}, {"started_at", e.started_at}, {"seed", seed}});
            case JobEvent::Kind::Token:
                if (e.text.empty()) return "";
                return sse("token", {{"t", e.text}, {"i", (*index)++}});
            case JobEvent::Kind::Metrics:
                return sse("metrics", {{"job_id", job_id}, {"tokens_out", e.tokens_out},
                                       {"decode_time_ms", e.decode_time_ms}, {"vram_bytes", e.vram_bytes}});
            case JobEvent::Kind::End: {
                last = true;
                nlohmann::json j = {{"tokens_out", e.tokens_out}, {"decode_time_ms", e.decode_time_ms},
                                    {"stop_reason", stop_reason_name(e.stop_reason)}};
                if (e.stop_reason == StopReason::STOP_SEQUENCE) j["stop_sequence_matched"] = e.stop_matched;
                return sse("end", j);
            }
            case JobEvent::Kind::Error:
                last = true;
                return sse("error", {{"code", std::string(code_name(e.code))}, {"message", e.message},
                                     {"retriable", retriable(e.code)}});
        }
        return "";
    };
}

}  // namespace

void Server::add_native_routes() {
    route("POST", "/execute", [this](const httplib::Request& req, httplib::Response& res) {
        const std::string cid = correlation_id(req, res);
        if (req.has_header("X-Deadline"))  // M0: logged, not enforced
            log::info("execute_deadline", {{"correlation_id", cid}, {"x_deadline", req.get_header_value("X-Deadline")}});
        nlohmann::json body;
        try {
            body = nlohmann::json::parse(req.body);
        } catch (const std::exception& e) {
            // The parser's message quotes the offending bytes, which may not be UTF-8 (send_json
            // replaces them) and may be long (cut).
            send_json(res, 400, errors_json({{"body", "json", std::string("body is not valid JSON: ") +
                                                                  std::string(e.what()).substr(0, 200)}}));
            return;
        }
        if (!body.is_object()) {
            send_json(res, 400, errors_json({{"body", "type(object)", "body must be a JSON object"}}));
            return;
        }
        // Requests that arrive while the model loads wait for it (the orchestrator normally waits
        // for /health to say ready); the tokenizer and vocabulary bounds come with the model.
        if (engine_.wait_loaded() == Engine::State::Failed) {
            send_error(res, engine_.load_error_code(), engine_.load_error(), cid);
            return;
        }
        GenerateRequest gr;
        gr.correlation_id = cid;
        auto errors = parse_execute(body, engine_, gr);
        if (options_.enable_test_faults && req.has_header("X-Test-Fault")) {
            gr.inject_fault = code_from_name(req.get_header_value("X-Test-Fault"));
            if (!gr.inject_fault) errors.push_back({"X-Test-Fault", "code", "unknown error code"});
        }
        if (!errors.empty()) {
            log::info("execute_rejected", {{"correlation_id", cid}, {"errors", errors_json(errors)["errors"]}});
            send_json(res, 400, errors_json(errors));
            return;
        }
        const uint64_t seed = gr.sampling.seed;
        const std::string job_id = gr.job_id;
        std::shared_ptr<Job> job;
        try {
            job = engine_.submit(std::move(gr));
        } catch (const Error& e) {
            if (e.code() == Code::INVALID_REQUEST) {
                const std::string msg = e.what();
                const std::string field = msg.rfind("job_id", 0) == 0 ? "job_id" : "prompt";
                send_json(res, 400, errors_json({{field, field == "job_id" ? "unique" : "tokens", msg}}));
            } else {
                send_error(res, e.code(), e.what(), cid);
            }
            return;
        }
        stream_job(res, engine_, job, native_formatter(job_id, engine_.info().name, seed));
    }, options_.max_body_bytes);

    route("POST", "/cancel", [this](const httplib::Request& req, httplib::Response& res) {
        const std::string cid = correlation_id(req, res);
        std::string id;
        const auto errors = parse_cancel(nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false), id);
        if (!errors.empty()) {
            send_json(res, 400, errors_json(errors));
            return;
        }
        // Idempotent: a finished or unknown job is acknowledged the same way.
        const bool known = engine_.cancel(id);
        log::info("cancel", {{"job_id", id}, {"correlation_id", cid}, {"active", known}});
        send_json(res, 202, {{"status", "cancelling"}, {"job_id", id}});
    }, 4096);

    route("GET", "/health", [this](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        const auto st = engine_.state();
        const bool device_lost = st == Engine::State::Ready && !engine_.device_healthy();
        const double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
        nlohmann::json j = {{"status", device_lost                    ? "unhealthy"
                                       : st == Engine::State::Ready   ? "healthy"
                                       : st == Engine::State::Loading ? "loading"
                                                                      : "unhealthy"},
                            {"ready", st == Engine::State::Ready && !device_lost},
                            {"worker_id", options_.worker_id},
                            {"model_ref", options_.model_ref},
                            {"resident", st == Engine::State::Ready},
                            {"slots", {{"busy", engine_.slots_busy()}, {"total", engine_.slots_total()}}},
                            {"uptime_seconds", static_cast<int64_t>(uptime)},
                            {"capabilities", {"text-gen"}},
                            {"protocol", "sse"}};
        if (st == Engine::State::Ready) {
            const ModelInfo& in = engine_.info();
            j["model"] = in.name;
            j["architecture"] = in.arch;
            j["quant_kind"] = in.quant_kind;
            j["vram_bytes_used"] = in.weight_bytes + in.kv_bytes + in.buffer_bytes;
            j["memory_bytes"] = {{"weights", in.weight_bytes}, {"kv_cache", in.kv_bytes}, {"buffers", in.buffer_bytes}};
            j["tokenizer_kind"] = in.tokenizer_kind;
            j["vocab_size"] = in.vocab_size;
            j["context_length"] = in.n_ctx;
            j["backend"] = in.backend;
            j["device"] = in.device;
            if (device_lost)
                j["error"] = {{"code", "CUDA_ERROR"}, {"message", "the device hit an unrecoverable error"}};
        } else {
            j["backend"] = engine_.options().backend;
            if (st == Engine::State::Failed)
                j["error"] = {{"code", std::string(code_name(engine_.load_error_code()))}, {"message", engine_.load_error()}};
        }
        send_json(res, st == Engine::State::Ready && !device_lost ? 200 : 503, j);
    }, 4096);

    route("GET", "/metrics", [this](const httplib::Request&, httplib::Response& res) {
        const double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
        uint64_t bytes = 0;
        if (engine_.state() == Engine::State::Ready)
            bytes = engine_.info().weight_bytes + engine_.info().kv_bytes + engine_.info().buffer_bytes;
        std::string labels = "component=\"worker-orcd\"";
        if (!options_.worker_id.empty()) {
            std::string v;  // label values escape backslash, quote and newline
            for (char c : options_.worker_id) v += c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : std::string(1, c);
            labels += ",worker_id=\"" + v + "\"";
        }
        res.set_content(engine_.metrics().render(labels, bytes, uptime, engine_.slots_total()) + http_metrics(labels),
                        "text/plain; version=0.0.4");
    }, 4096);
}

}  // namespace wo
