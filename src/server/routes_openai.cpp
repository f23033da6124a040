// OpenAI-compatible routes: POST /v1/completions, POST /v1/chat/completions (streaming and
// not, with function tools and logprobs), GET /v1/models, and llama-server's /tokenize and
// /detokenize. gpt-oss chats are rendered in harmony and their output split into
// reasoning_content, content and tool_calls; other models use their GGUF chat template family.
#include <httplib.h>

#include <ctime>

#include "server/http_util.h"
#include "server/oai.h"
#include "server/reply.h"
#include "server/server.h"
#include "util/log.h"

namespace wo {

namespace {

using nlohmann::json;

struct OaiRequest {
    bool chat = false, stream = false, include_usage = false;
    bool logprobs = false;  // chat: logprobs=true; completions: logprobs=N
    std::string id;
    int64_t created = 0;
    int prompt_tokens = 0;
    ChatPrompt prompt;
    GenerateRequest gen;
};

const char* finish_reason(StopReason r, bool called) {
    if (r == StopReason::MAX_TOKENS || r == StopReason::CONTEXT_FULL) return "length";
    return called ? "tool_calls" : "stop";
}

std::vector<FieldError> parse_oai(const json& body, const std::string& raw, bool chat, const Engine& engine, OaiRequest& o) {
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
    if (chat) {
        o.logprobs = r.boolean("logprobs").value_or(false);
        const auto top = r.integer("top_logprobs", 0, 20);
        if (top && !o.logprobs) r.fail("top_logprobs", "requires(logprobs)", "top_logprobs requires logprobs: true");
        if (o.logprobs) o.gen.logprobs = static_cast<int>(top.value_or(0));
    } else if (const auto n = r.integer("logprobs", 0, 20)) {
        o.logprobs = true;
        o.gen.logprobs = static_cast<int>(*n);
    }
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
        ChatRequest cr;
        read_chat_messages(body, r, cr.messages);
        if (r.present("tools")) {
            // Parsed again keeping key order: a schema's properties render in the client's order.
            const auto ordered = nlohmann::ordered_json::parse(raw, nullptr, false);
            cr.tools = read_tools(ordered["tools"], /*responses_shape=*/false, "tools", errors);
        }
        if (r.present("tool_choice")) cr.tool_choice = read_tool_choice(body["tool_choice"], cr.tools, "tool_choice", errors);
        r.boolean("parallel_tool_calls");
        if (auto eff = r.string("reasoning_effort", 1, 16, /*required=*/false)) {
            if (*eff != "low" && *eff != "medium" && *eff != "high")
                r.fail("reasoning_effort", "one_of(low,medium,high)", "reasoning_effort must be low, medium or high");
            cr.reasoning_effort = *eff;
        }
        if (errors.empty() && render_chat(engine, cr, o.prompt, "messages", errors)) {
            prompt = o.prompt.text;
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
    OaiOutput(OaiRequest o, std::string model, const Tokenizer& tok)
        : o_(std::move(o)), model_(std::move(model)), tok_(tok), reply_(o_.prompt, tok) {}

    json chunk(const json& choice) const {
        return {{"id", o_.id}, {"object", o_.chat ? "chat.completion.chunk" : "text_completion"}, {"created", o_.created},
                {"model", model_}, {"choices", json::array({choice})}};
    }
    // Chat: {"content":[entries]}. Completions: the legacy parallel arrays.
    json logprobs_json(const std::vector<TokenLogprob>& lps) {
        if (o_.chat) {
            json a = json::array();
            for (const auto& lp : lps) a.push_back(logprob_json(tok_, lp, true));
            return {{"content", a}, {"refusal", nullptr}};
        }
        json tokens = json::array(), lp = json::array(), top = json::array(), offs = json::array();
        for (const auto& t : lps) {
            const std::string piece = utf8_lossy(tok_.token_bytes(t.id));
            tokens.push_back(piece);
            lp.push_back(t.logprob);
            json m = json::object();
            for (const auto& [id, l] : t.top) m[utf8_lossy(tok_.token_bytes(id))] = l;
            top.push_back(m);
            offs.push_back(text_offset_);
            text_offset_ += static_cast<int64_t>(tok_.token_bytes(t.id).size());
        }
        return {{"tokens", tokens}, {"token_logprobs", lp}, {"top_logprobs", top}, {"text_offset", offs}};
    }
    json delta_choice(const ReplyDelta& d) {
        json lp = o_.logprobs && !d.logprobs.empty() ? logprobs_json(d.logprobs) : json(nullptr);
        if (!o_.chat) return {{"index", 0}, {"text", d.content}, {"logprobs", lp}, {"finish_reason", nullptr}};
        json delta = json::object();
        if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
        if (!d.content.empty()) delta["content"] = d.content;
        if (!d.calls.empty()) {
            json calls = json::array();
            for (const auto& c : d.calls) {
                json j = {{"index", c.index}, {"function", {{"arguments", c.arguments}}}};
                if (!c.name.empty()) {  // the first delta of a call names it
                    j["id"] = reply_.calls()[static_cast<size_t>(c.index)].id;
                    j["type"] = "function";
                    j["function"]["name"] = c.name;
                }
                calls.push_back(j);
            }
            delta["tool_calls"] = calls;
        }
        json choice = {{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}};
        if (o_.logprobs) choice["logprobs"] = lp;
        return choice;
    }

    // SSE formatter for stream=true.
    std::string stream_event(const JobEvent& e, bool& last) {
        std::string out;
        switch (e.kind) {
            case JobEvent::Kind::Started:
                if (o_.chat) {
                    out = sse("", chunk({{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}));
                    if (ReplyDelta d = reply_.start(); !d.empty()) out += sse("", chunk(delta_choice(d)));
                }
                break;
            case JobEvent::Kind::Token: {
                if (ReplyDelta d = reply_.push(e, false); !d.empty()) out = sse("", chunk(delta_choice(d)));
                break;
            }
            case JobEvent::Kind::Metrics: break;
            case JobEvent::Kind::End: {
                last = true;
                if (ReplyDelta d = reply_.push(e, true); !d.empty()) out += sse("", chunk(delta_choice(d)));
                const char* why = finish_reason(e.stop_reason, !reply_.calls().empty());
                json fin = o_.chat ? json{{"index", 0}, {"delta", json::object()}, {"finish_reason", why}}
                                   : json{{"index", 0}, {"text", ""}, {"logprobs", nullptr}, {"finish_reason", why}};
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
        ReplyDelta all = reply_.start();
        for (;;) {
            auto e = job.pop(std::chrono::milliseconds(1000));
            if (!e) continue;
            if (e->kind == JobEvent::Kind::Token || e->kind == JobEvent::Kind::End) {
                ReplyDelta d = reply_.push(*e, e->kind == JobEvent::Kind::End);
                all.reasoning += d.reasoning;
                all.content += d.content;
                all.logprobs.insert(all.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
            }
            if (e->kind == JobEvent::Kind::Error) {
                body = oai_error(e->code, e->message);
                return http_status(e->code);
            }
            if (e->kind != JobEvent::Kind::End) continue;
            const char* why = finish_reason(e->stop_reason, !reply_.calls().empty());
            json lp = o_.logprobs ? logprobs_json(all.logprobs) : json(nullptr);
            json choice;
            if (o_.chat) {
                json msg = {{"role", "assistant"}, {"content", all.content}};
                if (o_.prompt.harmony) msg["reasoning_content"] = all.reasoning;
                if (!reply_.calls().empty()) {
                    json calls = json::array();
                    for (const auto& c : reply_.calls())
                        calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
                    msg["tool_calls"] = calls;
                    if (all.content.empty()) msg["content"] = nullptr;
                }
                choice = {{"index", 0}, {"message", msg}, {"logprobs", lp}, {"finish_reason", why}};
            } else {
                choice = {{"index", 0}, {"text", all.content}, {"logprobs", lp}, {"finish_reason", why}};
            }
            body = {{"id", o_.id}, {"object", o_.chat ? "chat.completion" : "text_completion"}, {"created", o_.created},
                    {"model", model_}, {"choices", json::array({choice})}, {"usage", usage_json(o_, e->tokens_out)}};
            return 200;
        }
    }

private:
    OaiRequest o_;
    std::string model_;
    const Tokenizer& tok_;
    ReplyParser reply_;
    int64_t text_offset_ = 0;
};

}  // namespace

void Server::add_openai_routes() {
    auto model_json = [this] {
        const ModelInfo& in = engine_.info();
        return json{{"id", in.name}, {"object", "model"}, {"created", 0}, {"owned_by", "worker-orcd"},
                    {"context_length", in.n_ctx}, {"max_model_len", in.n_ctx}, {"n_ctx_train", in.n_ctx_train}};
    };
    http_->Get("/v1/models", [this, model_json](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        json data = json::array();
        if (engine_.state() == Engine::State::Ready) data.push_back(model_json());
        send_json(res, 200, {{"object", "list"}, {"data", data}});
    });
    http_->Get(R"(/v1/models/(.+))", [this, model_json](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        if (engine_.state() == Engine::State::Ready && req.matches[1] == engine_.info().name) {
            send_json(res, 200, model_json());
            return;
        }
        json e = oai_error(Code::INVALID_REQUEST, "model '" + std::string(req.matches[1]) + "' is not served here", "model");
        e["error"]["code"] = "model_not_found";
        send_json(res, 404, e);
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
            auto errors = parse_oai(body, req.body, chat, engine_, o);
            read_test_headers(req, options_.enable_test_faults, engine_.info().vocab_size, o.gen, errors);
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
            auto out = std::make_shared<OaiOutput>(o, engine_.info().name, engine_.tokenizer());
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

    // llama-server's shapes: {"content", "add_special"=false, "parse_special"=true,
    // "with_pieces"=false} -> {"tokens":[ids]} or [{"id","piece"}]; {"tokens"} -> {"content"}.
    http_->Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        json body = json::parse(req.body, nullptr, false);
        std::vector<FieldError> errors;
        if (!body.is_object()) {
            send_json(res, 400, oai_error(Code::INVALID_REQUEST, "body must be a JSON object"));
            return;
        }
        FieldReader r(body, errors);
        const auto content = r.string("content", 0, 1 << 24);
        const bool add_special = r.boolean("add_special").value_or(false);
        const bool parse_special = r.boolean("parse_special").value_or(true);
        const bool pieces = r.boolean("with_pieces").value_or(false);
        if (!errors.empty()) return send_field_errors(res, errors);
        if (engine_.wait_loaded() == Engine::State::Failed)
            return send_json(res, 503, oai_error(engine_.load_error_code(), engine_.load_error()));
        const Tokenizer& tok = engine_.tokenizer();
        json out = json::array();
        for (int32_t id : tok.encode(*content, parse_special, add_special)) {
            if (!pieces) {
                out.push_back(id);
                continue;
            }
            const std::string b = tok.token_bytes(id);
            size_t n = 0;
            json piece = b;
            if (!utf8_length(b, n)) {  // a partial character: its bytes, as llama-server does
                piece = json::array();
                for (unsigned char c : b) piece.push_back(static_cast<int>(c));
            }
            out.push_back({{"id", id}, {"piece", piece}});
        }
        send_json(res, 200, {{"tokens", out}});
    });
    http_->Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        json body = json::parse(req.body, nullptr, false);
        if (engine_.wait_loaded() == Engine::State::Failed)
            return send_json(res, 503, oai_error(engine_.load_error_code(), engine_.load_error()));
        const int V = engine_.info().vocab_size;
        std::vector<int32_t> ids;
        bool ok = body.is_object() && body.contains("tokens") && body["tokens"].is_array();
        for (const auto& t : ok ? body["tokens"] : json::array()) {
            ok = ok && t.is_number_integer() && t.get<int64_t>() >= 0 && t.get<int64_t>() < V;
            if (ok) ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
        }
        if (!ok)
            return send_json(res, 400, oai_error(Code::INVALID_REQUEST, "tokens must be an array of token ids in 0.." + std::to_string(V - 1), "tokens"));
        send_json(res, 200, {{"content", utf8_lossy(engine_.tokenizer().decode(ids))}});
    });
}

}  // namespace wo
