// OpenAI-compatible routes: POST /v1/completions, POST /v1/chat/completions (streaming and
// not), GET /v1/models. gpt-oss chats are rendered in harmony and their output split into
// reasoning_content and content; other models use their GGUF chat template family.
#include <httplib.h>

#include <ctime>

#include "server/chat.h"
#include "server/http_util.h"
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
    for (const auto& e : errors) msg += (msg.empty() ? "" : "; ") + e.message + " [" + e.constraint + "]";
    json j = oai_error(Code::INVALID_REQUEST, msg, errors.front().field);
    j["errors"] = errors_json(errors)["errors"];
    send_json(res, 400, j);
}

const char* finish_reason(StopReason r) {
    return r == StopReason::MAX_TOKENS || r == StopReason::CONTEXT_FULL ? "length" : "stop";
}

struct OaiRequest {
    bool chat = false, stream = false, include_usage = false, harmony = false;
    std::string id;
    int64_t created = 0;
    int prompt_tokens = 0;
    GenerateRequest gen;
};

// Text of an OpenAI message content: a string, null, or an array of {type:"text", text} parts.
bool content_text(const json& c, std::string& out) {
    if (c.is_null()) return true;
    if (c.is_string()) {
        out = c.get<std::string>();
        return true;
    }
    if (!c.is_array()) return false;
    for (const auto& p : c) {
        if (!p.is_object() || p.value("type", "") != "text" || !p.contains("text") || !p["text"].is_string()) return false;
        out += p["text"].get<std::string>();
    }
    return true;
}

std::vector<FieldError> parse_oai(const json& body, bool chat, const Engine& engine, OaiRequest& o) {
    std::vector<FieldError> errors;
    FieldReader r(body, errors);
    const ModelInfo& info = engine.info();
    o.chat = chat;
    o.created = static_cast<int64_t>(std::time(nullptr));
    o.id = (chat ? "chatcmpl-" : "cmpl-") + uuid_v4();
    o.stream = r.boolean("stream").value_or(false);
    if (r.present("stream_options")) {
        if (!body["stream_options"].is_object()) r.fail("stream_options", "type(object)", "stream_options must be an object");
        else o.include_usage = body["stream_options"].value("include_usage", false);
    }
    if (auto n = r.integer("n", 1, 1); !n && r.present("n")) {}
    for (const char* f : {"frequency_penalty", "presence_penalty"})
        if (auto v = r.number(f, -2, 2); v && *v != 0)
            r.fail(f, "unsupported", std::string(f) + " is not supported (use repetition_penalty)");
    if (r.present("logprobs") && !(body["logprobs"].is_boolean() && !body["logprobs"].get<bool>()))
        r.fail("logprobs", "unsupported", "logprobs are not supported");
    o.gen.sampling = read_sampling(r, info.vocab_size);
    if (auto stop = r.strings("stop", 4, /*allow_single=*/true)) o.gen.stop = *stop;
    std::optional<int64_t> max_tokens = r.integer("max_tokens", 1, info.n_ctx);
    if (chat && !max_tokens) max_tokens = r.integer("max_completion_tokens", 1, info.n_ctx);

    std::string prompt;
    bool add_bos = true;
    if (!chat) {
        if (!r.present("prompt")) {
            r.fail("prompt", "required", "prompt is required");
        } else if (body["prompt"].is_string()) {
            prompt = body["prompt"].get<std::string>();
        } else if (body["prompt"].is_array() && body["prompt"].size() == 1 && body["prompt"][0].is_string()) {
            prompt = body["prompt"][0].get<std::string>();
        } else {
            r.fail("prompt", "type(string)", "prompt must be a string (batches of prompts are not supported)");
        }
    } else {
        std::vector<ChatMessage> msgs;
        if (!r.present("messages") || !body["messages"].is_array() || body["messages"].empty()) {
            r.fail("messages", "non_empty", "messages must be a non-empty array");
        } else {
            for (size_t i = 0; i < body["messages"].size(); ++i) {
                const json& m = body["messages"][i];
                const std::string f = "messages[" + std::to_string(i) + "]";
                ChatMessage cm;
                if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
                    r.fail(f + ".role", "required", f + " needs a role");
                    continue;
                }
                cm.role = m["role"].get<std::string>();
                if (cm.role != "system" && cm.role != "developer" && cm.role != "user" && cm.role != "assistant") {
                    r.fail(f + ".role", "one_of(system,developer,user,assistant)",
                           f + ".role '" + cm.role + "' is not supported (tool calling is not implemented)");
                    continue;
                }
                if (!content_text(m.value("content", json(nullptr)), cm.content))
                    r.fail(f + ".content", "type(string|text parts)", f + ".content must be a string or text parts");
                for (const char* k : {"reasoning_content", "thinking"})
                    if (m.contains(k) && m[k].is_string()) cm.thinking = m[k].get<std::string>();
                if (m.contains("tool_calls") && !m["tool_calls"].is_null())
                    r.fail(f + ".tool_calls", "unsupported", "tool calls are not supported");
                msgs.push_back(std::move(cm));
            }
        }
        if (r.present("tools") && !(body["tools"].is_array() && body["tools"].empty()))
            r.fail("tools", "unsupported", "tools are not supported by this worker");
        HarmonyOptions ho;
        if (auto eff = r.string("reasoning_effort", 1, 16, /*required=*/false)) {
            if (*eff != "low" && *eff != "medium" && *eff != "high")
                r.fail("reasoning_effort", "one_of(low,medium,high)", "reasoning_effort must be low, medium or high");
            ho.reasoning_effort = *eff;
        }
        if (errors.empty()) {
            o.harmony = info.arch == "gpt-oss";
            try {
                if (o.harmony) {
                    prompt = render_harmony(msgs, ho);
                } else {
                    const Tokenizer& tok = engine.tokenizer();
                    prompt = render_template(info.chat_template, msgs, tok.bos_id ? tok.token_bytes(*tok.bos_id) : "");
                }
            } catch (const Error& e) {
                r.fail("messages", "template", e.what());
            }
            add_bos = false;  // the rendered text carries any BOS the template wants
        }
    }
    if (!errors.empty()) return errors;
    o.gen.prompt = engine.tokenizer().encode(prompt, /*parse_special=*/true, add_bos);
    o.prompt_tokens = static_cast<int>(o.gen.prompt.size());
    if (o.gen.prompt.empty() || o.prompt_tokens >= info.n_ctx) {
        r.fail(chat ? "messages" : "prompt", "tokens(1..<" + std::to_string(info.n_ctx) + ")",
               "the prompt is " + std::to_string(o.prompt_tokens) + " tokens; the context holds " + std::to_string(info.n_ctx));
        return errors;
    }
    // OpenAI's defaults: 16 tokens for completions; chat runs until the context is full.
    o.gen.max_tokens = static_cast<int>(max_tokens.value_or(chat ? info.n_ctx - o.prompt_tokens : 16));
    o.gen.job_id = o.id;
    return errors;
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

    // Whole response for stream=false; returns the HTTP status.
    int collect(Job& job, json& body) {
        std::string reasoning, content;
        for (;;) {
            auto e = job.pop(std::chrono::milliseconds(1000));
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
    OaiRequest o_;
    std::string model_;
    HarmonyParser parser_;
};

}  // namespace

void Server::add_openai_routes() {
    http_->Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        json data = json::array();
        if (engine_.state() == Engine::State::Ready)
            data.push_back({{"id", engine_.info().name}, {"object", "model"}, {"created", 0}, {"owned_by", "worker-orcd"}});
        send_json(res, 200, {{"object", "list"}, {"data", data}});
    });

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
                const int status = out->collect(*job, result);
                send_json(res, status, result);
            }
        };
    };
    http_->Post("/v1/completions", completions(false));
    http_->Post("/v1/chat/completions", completions(true));
}

}  // namespace wo
