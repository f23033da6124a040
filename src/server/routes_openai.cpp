// OpenAI-compatible routes: POST /v1/completions, POST /v1/chat/completions (streaming and
// not, with function tools and logprobs), GET /v1/models, and llama-server's /tokenize and
// /detokenize. gpt-oss chats are rendered in harmony and their output split into
// reasoning_content, content and tool_calls; other models use their GGUF chat template family.
#include <httplib.h>

#include "server/http_util.h"
#include "server/oai.h"
#include "server/reply.h"
#include "server/requests.h"
#include "server/server.h"

namespace wo {

namespace {

using nlohmann::json;

const char* finish_reason(StopReason r, bool called) {
    if (r == StopReason::MAX_TOKENS || r == StopReason::CONTEXT_FULL) return "length";
    return called ? "tool_calls" : "stop";
}

json usage_json(const OaiRequest& o, int completion) {
    return {{"prompt_tokens", o.prompt_tokens}, {"completion_tokens", completion}, {"total_tokens", o.prompt_tokens + completion}};
}

// Accumulates or streams one request's output in OpenAI shapes.
class OaiOutput : public OaiReply {
public:
    OaiOutput(OaiRequest o, std::string model, const Tokenizer& tok)
        : o_(std::move(o)), model_(std::move(model)), tok_(tok), reply_(o_.prompt, tok) {}
    bool stream() const override { return o_.stream; }

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
    std::string stream_event(const JobEvent& e, bool& last) override {
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

    // stream=false: the reply accumulates until the End (or Error) event.
    bool collect_event(const JobEvent& e, json& body, int& status) override {
        if (e.kind == JobEvent::Kind::Started) all_ = reply_.start();
        if (e.kind == JobEvent::Kind::Token || e.kind == JobEvent::Kind::End) {
            ReplyDelta d = reply_.push(e, e.kind == JobEvent::Kind::End);
            all_.reasoning += d.reasoning;
            all_.content += d.content;
            all_.logprobs.insert(all_.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
        }
        if (e.kind == JobEvent::Kind::Error) {
            body = oai_error(e.code, e.message);
            status = http_status(e.code);
            return true;
        }
        if (e.kind != JobEvent::Kind::End) return false;
        const char* why = finish_reason(e.stop_reason, !reply_.calls().empty());
        json lp = o_.logprobs ? logprobs_json(all_.logprobs) : json(nullptr);
        json choice;
        if (o_.chat) {
            json msg = {{"role", "assistant"}, {"content", all_.content}};
            if (o_.prompt.harmony) msg["reasoning_content"] = all_.reasoning;
            if (!reply_.calls().empty()) {
                json calls = json::array();
                for (const auto& c : reply_.calls())
                    calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
                msg["tool_calls"] = calls;
                if (all_.content.empty()) msg["content"] = nullptr;
            }
            choice = {{"index", 0}, {"message", msg}, {"logprobs", lp}, {"finish_reason", why}};
        } else {
            choice = {{"index", 0}, {"text", all_.content}, {"logprobs", lp}, {"finish_reason", why}};
        }
        body = {{"id", o_.id}, {"object", o_.chat ? "chat.completion" : "text_completion"}, {"created", o_.created},
                {"model", model_}, {"choices", json::array({choice})}, {"usage", usage_json(o_, e.tokens_out)}};
        status = 200;
        return true;
    }

private:
    OaiRequest o_;
    std::string model_;
    const Tokenizer& tok_;
    ReplyParser reply_;
    int64_t text_offset_ = 0;
    ReplyDelta all_;  // collected so far (stream=false)
};

}  // namespace

void Server::add_openai_routes() {
    auto model_json = [this] {
        const ModelInfo& in = engine_.info();
        return json{{"id", in.name}, {"object", "model"}, {"created", 0}, {"owned_by", "worker-orcd"},
                    {"context_length", in.n_ctx}, {"max_model_len", in.n_ctx}, {"n_ctx_train", in.n_ctx_train}};
    };
    route("GET", "/v1/models", [this, model_json](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        json data = json::array();
        if (engine_.state() == Engine::State::Ready) data.push_back(model_json());
        send_json(res, 200, {{"object", "list"}, {"data", data}});
    }, 4096);
    route("GET", R"(/v1/models/(.+))", [this, model_json](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        if (engine_.state() == Engine::State::Ready && req.matches[1] == engine_.info().name) {
            send_json(res, 200, model_json());
            return;
        }
        json e = oai_error(Code::INVALID_REQUEST, "model '" + std::string(req.matches[1]).substr(0, 128) + "' is not served here",
                           "model");
        e["error"]["code"] = "model_not_found";
        send_json(res, 404, e);
    }, 4096);

    auto completions = [this](bool chat) {
        return [this, chat](const httplib::Request& req, httplib::Response& res) {
            serve_generation(req, res, engine_, options_.enable_test_faults,
                             [this, chat](const json& body, const std::string& raw, GenerateRequest& gen,
                                          std::vector<FieldError>& errors) -> std::shared_ptr<OaiReply> {
                                 OaiRequest o;
                                 errors = parse_oai(body, raw, chat, engine_, o);
                                 if (!errors.empty()) return nullptr;
                                 gen = o.gen;
                                 return std::make_shared<OaiOutput>(std::move(o), engine_.info().name,
                                                                    engine_.tokenizer());
                             });
        };
    };
    route("POST", "/v1/completions", completions(false), options_.max_body_bytes);
    route("POST", "/v1/chat/completions", completions(true), options_.max_body_bytes);

    // llama-server's shapes: {"content", "add_special"=false, "parse_special"=true,
    // "with_pieces"=false} -> {"tokens":[ids]} or [{"id","piece"}]; {"tokens"} -> {"content"}.
    route("POST", "/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
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
    }, options_.max_body_bytes);
    route("POST", "/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
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
    }, options_.max_body_bytes);
}

}  // namespace wo
