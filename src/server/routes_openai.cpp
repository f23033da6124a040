// OpenAI-compatible routes: POST /v1/completions, POST /v1/chat/completions (streaming and
// not), GET /v1/models. gpt-oss chats are rendered in harmony and their output split into
// reasoning_content and content; other models use their GGUF chat template family.
#include <httplib.h>

#include <ctime>

#include "server/chat.h"
#include "server/http_conn.h"
#include "server/http_util.h"
#include "server/requests.h"
#include "server/server.h"
#include "server/validate.h"
#include "util/log.h"

namespace wo {

namespace {

using nlohmann::json;


// OpenAI's error envelope; `param` names the first offending field.
json oai_error(Code c, const std::string& message, const std::string& param = "") {
    const char* type = c == Code::INVALID_REQUEST ? "invalid_request_error" : c == Code::QUEUE_FULL ? "overloaded_error" : "server_error";
    return {{"error", {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)},
                       {"code", std::string(code_name(c))}}}};
}

void send_field_errors(httplib::Response& res, const std::vector<FieldError>& errors) {
    std::string msg;
    for (size_t i = 0; i < errors.size() && i < kMaxReportedErrors; ++i)
        msg += (msg.empty() ? "" : "; ") + errors[i].message + " [" + errors[i].constraint + "]";
    if (errors.size() > kMaxReportedErrors) msg += "; and " + std::to_string(errors.size() - kMaxReportedErrors) + " more";
    json j = oai_error(Code::INVALID_REQUEST, msg, errors.front().field);
    j.update(errors_json(errors));  // "errors" and, past the first 16, "error_count"
    send_json(res, 400, j);
}

const char* finish_reason(StopReason r) {
    return r == StopReason::MAX_TOKENS || r == StopReason::CONTEXT_FULL ? "length" : "stop";
}

json usage_json(const OaiRequest& o, int completion) {
    return {{"prompt_tokens", o.prompt_tokens}, {"completion_tokens", completion}, {"total_tokens", o.prompt_tokens + completion}};
}

// Accumulates or streams one request's output in OpenAI shapes.
class OaiOutput {
public:
    OaiOutput(OaiRequest o, std::string model) : o_(std::move(o)), model_(std::move(model)) {}

    json chunk(const json& choice) const {
        return {{"id", o_.id}, {"object", o_.chat ? "chat.completion.chunk" : "text_completion"}, {"created", o_.created},
                {"model", model_}, {"choices", json::array({choice})}};
    }
    json delta_choice(const std::string& reasoning, const std::string& content) const {
        if (!o_.chat) return {{"index", 0}, {"text", content}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
        json d = json::object();
        if (!reasoning.empty()) d["reasoning_content"] = reasoning;
        if (!content.empty()) d["content"] = content;
        return {{"index", 0}, {"delta", d}, {"finish_reason", nullptr}};
    }
    // Splits text into (reasoning, content).
    std::pair<std::string, std::string> split(const std::string& text, bool end) {
        if (!o_.harmony) return {"", text};
        HarmonyParser::Delta d = parser_.push(text);
        if (end) {
            HarmonyParser::Delta f = parser_.flush();
            d.reasoning += f.reasoning;
            d.content += f.content;
        }
        return {d.reasoning, d.content};
    }

    // SSE formatter for stream=true.
    std::string stream_event(const JobEvent& e, bool& last) {
        std::string out;
        switch (e.kind) {
            case JobEvent::Kind::Started:
                if (o_.chat)
                    out = sse("", chunk({{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}));
                break;
            case JobEvent::Kind::Token: {
                auto [r, c] = split(e.text, false);
                if (!r.empty() || !c.empty()) out = sse("", chunk(delta_choice(r, c)));
                break;
            }
            case JobEvent::Kind::Metrics: break;
            case JobEvent::Kind::End: {
                last = true;
                auto [r, c] = split("", true);
                if (!r.empty() || !c.empty()) out += sse("", chunk(delta_choice(r, c)));
                json fin = o_.chat ? json{{"index", 0}, {"delta", json::object()}, {"finish_reason", finish_reason(e.stop_reason)}}
                                   : json{{"index", 0}, {"text", ""}, {"logprobs", nullptr}, {"finish_reason", finish_reason(e.stop_reason)}};
                out += sse("", chunk(fin));
                if (o_.include_usage) {
                    json u = chunk(fin);
                    u["choices"] = json::array();
                    u["usage"] = usage_json(o_, e.tokens_out);
                    out += sse("", u);
                }
                out += "data: [DONE]\n\n";
                break;
            }
            case JobEvent::Kind::Error:
                last = true;
                out = sse("", oai_error(e.code, e.message));
                break;
        }
        return out;
    }

    // Whole response for stream=false; returns the HTTP status. `gone` is asked between events:
    // a client that left cancels the job (nobody would read the answer).
    int collect(Job& job, json& body, const std::function<bool()>& gone) {
        std::string reasoning, content;
        auto checked = std::chrono::steady_clock::now();
        for (;;) {
            auto e = job.pop(std::chrono::milliseconds(50));
            // Checked every 50 ms whether or not tokens flow (a busy job always has an event).
            if (const auto now = std::chrono::steady_clock::now(); now - checked >= std::chrono::milliseconds(50)) {
                checked = now;
                if (!job.cancelled() && !job.finished() && gone()) job_gone_(job);
            }
            if (!e) continue;
            if (e->kind == JobEvent::Kind::Token || e->kind == JobEvent::Kind::End) {
                auto [r, c] = split(e->text, e->kind == JobEvent::Kind::End);
                reasoning += r;
                content += c;
            }
            if (e->kind == JobEvent::Kind::Error) {
                body = oai_error(e->code, e->message);
                return http_status(e->code);
            }
            if (e->kind != JobEvent::Kind::End) continue;
            json choice;
            if (o_.chat) {
                json msg = {{"role", "assistant"}, {"content", content}};
                if (o_.harmony) msg["reasoning_content"] = reasoning;
                choice = {{"index", 0}, {"message", msg}, {"finish_reason", finish_reason(e->stop_reason)}};
            } else {
                choice = {{"index", 0}, {"text", content}, {"logprobs", nullptr}, {"finish_reason", finish_reason(e->stop_reason)}};
            }
            body = {{"id", o_.id}, {"object", o_.chat ? "chat.completion" : "text_completion"}, {"created", o_.created},
                    {"model", model_}, {"choices", json::array({choice})}, {"usage", usage_json(o_, e->tokens_out)}};
            return 200;
        }
    }

private:
public:
    std::function<void(Job&)> job_gone_;

private:
    OaiRequest o_;
    std::string model_;
    HarmonyParser parser_;
};

}  // namespace

void Server::add_openai_routes() {
    route("GET", "/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        json data = json::array();
        if (engine_.state() == Engine::State::Ready)
            data.push_back({{"id", engine_.info().name}, {"object", "model"}, {"created", 0}, {"owned_by", "worker-orcd"}});
        send_json(res, 200, {{"object", "list"}, {"data", data}});
    }, 4096);

    auto completions = [this](bool chat) {
        return [this, chat](const httplib::Request& req, httplib::Response& res) {
            const std::string cid = correlation_id(req, res);
            json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
            if (!body.is_object()) {
                send_json(res, 400, oai_error(Code::INVALID_REQUEST, "body must be a JSON object"));
                return;
            }
            if (engine_.wait_loaded() == Engine::State::Failed) {
                send_json(res, http_status(engine_.load_error_code()), oai_error(engine_.load_error_code(), engine_.load_error()));
                return;
            }
            OaiRequest o;
            o.gen.correlation_id = cid;
            auto errors = parse_oai(body, chat, engine_, o);
            if (!errors.empty()) {
                send_field_errors(res, errors);
                return;
            }
            std::shared_ptr<Job> job;
            try {
                job = engine_.submit(o.gen);
            } catch (const Error& e) {
                send_json(res, http_status(e.code()), oai_error(e.code(), e.what()));
                return;
            }
            auto out = std::make_shared<OaiOutput>(o, engine_.info().name);
            if (o.stream) {
                stream_job(res, engine_, job, [out](const JobEvent& e, bool& last) { return out->stream_event(e, last); });
            } else {
                json result;
                out->job_gone_ = [this](Job& j) {
                    log::info("client_disconnected", {{"job_id", j.request.job_id},
                                                      {"correlation_id", j.request.correlation_id},
                                                      {"detected_by", "peer_closed"}});
                    engine_.cancel(j.request.job_id);
                };
                const int status = out->collect(*job, result, [] { return HttpServer::client_gone(); });
                send_json(res, status, result);
            }
        };
    };
    route("POST", "/v1/completions", completions(false), options_.max_body_bytes);
    route("POST", "/v1/chat/completions", completions(true), options_.max_body_bytes);
}

}  // namespace wo
