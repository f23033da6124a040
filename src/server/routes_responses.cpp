// POST /v1/responses: OpenAI's Responses API over the same rendering and reply parsing as chat
// completions. Output items are reasoning (analysis), message (output_text) and function_call;
// streamed as the typed events the openai SDK's Responses client accumulates. Nothing is
// stored, so previous_response_id is refused.
#include <httplib.h>

#include <ctime>

#include "server/http_util.h"
#include "server/oai.h"
#include "server/reply.h"
#include "server/server.h"

namespace wo {

namespace {

using nlohmann::json;

struct RespRequest {
    bool stream = false;
    std::string id;
    int64_t created = 0;
    int prompt_tokens = 0;
    std::string effort = "medium";
    json echo;  // request fields the response object repeats
    ChatPrompt prompt;
    GenerateRequest gen;
};

// Text of a Responses message content: a string or parts of type input_text/output_text/text.
bool parts_text(const json& c, std::string& out) {
    if (c.is_string()) {
        out = c.get<std::string>();
        return true;
    }
    if (!c.is_array()) return false;
    for (const auto& p : c) {
        const std::string t = p.is_object() ? p.value("type", "") : "";
        if ((t != "input_text" && t != "output_text" && t != "text" && t != "reasoning_text") ||
            !p.contains("text") || !p["text"].is_string())
            return false;
        out += p["text"].get<std::string>();
    }
    return true;
}

// `input` items to chat messages: messages, function_call (an assistant tool call),
// function_call_output (a tool message) and reasoning (the next assistant turn's thinking).
void read_input(const json& body, FieldReader& r, std::vector<ChatMessage>& ms) {
    if (body.contains("instructions") && body["instructions"].is_string())
        ms.push_back({"developer", body["instructions"].get<std::string>(), ""});
    if (!r.present("input")) {
        r.fail("input", "required", "input is required");
        return;
    }
    const json& in = body["input"];
    if (in.is_string()) {
        ms.push_back({"user", in.get<std::string>(), ""});
        return;
    }
    if (!in.is_array() || in.empty()) {
        r.fail("input", "type(string|items)", "input must be a string or a non-empty array of items");
        return;
    }
    std::string thinking;
    for (size_t i = 0; i < in.size(); ++i) {
        const json& it = in[i];
        const std::string f = "input[" + std::to_string(i) + "]";
        const std::string type = it.is_object() ? it.value("type", it.contains("role") ? "message" : "") : "";
        if (type == "message") {
            ChatMessage m;
            m.role = it.value("role", "");
            if (m.role != "user" && m.role != "assistant" && m.role != "system" && m.role != "developer") {
                r.fail(f + ".role", "one_of(user,assistant,system,developer)",
                       f + ".role must be user, assistant, system or developer");
                continue;
            }
            if (!parts_text(it.value("content", json(nullptr)), m.content)) {
                r.fail(f + ".content", "type(string|text parts)",
                       f + ".content must be a string or input_text/output_text parts");
                continue;
            }
            if (m.role == "assistant") m.thinking = std::exchange(thinking, "");
            // A leading system/developer item merges with `instructions`.
            if ((m.role == "system" || m.role == "developer") && ms.size() == 1 &&
                ms[0].role == "developer" && i == 0) {
                ms[0].content += "\n\n" + m.content;
                continue;
            }
            ms.push_back(std::move(m));
        } else if (type == "function_call") {
            if (!it.contains("call_id") || !it["call_id"].is_string() || !it.contains("name") ||
                !it["name"].is_string() || !it.contains("arguments") || !it["arguments"].is_string()) {
                r.fail(f, "shape({call_id,name,arguments})",
                       f + " must have string call_id, name and arguments");
                continue;
            }
            ToolCall c{it["call_id"].get<std::string>(), it["name"].get<std::string>(),
                       it["arguments"].get<std::string>()};
            if (!ms.empty() && ms.back().role == "assistant" && !ms.back().tool_calls.empty()) {
                ms.back().tool_calls.push_back(std::move(c));
            } else {
                ChatMessage m{"assistant", "", std::exchange(thinking, "")};
                m.tool_calls.push_back(std::move(c));
                ms.push_back(std::move(m));
            }
        } else if (type == "function_call_output") {
            ChatMessage m{"tool", "", ""};
            if (!it.contains("call_id") || !it["call_id"].is_string() ||
                !parts_text(it.value("output", json(nullptr)), m.content)) {
                r.fail(f, "shape({call_id,output})", f + " must have a string call_id and output");
                continue;
            }
            m.tool_call_id = it["call_id"].get<std::string>();
            ms.push_back(std::move(m));
        } else if (type == "reasoning") {
            std::string t;
            if (it.contains("content") && it["content"].is_array()) parts_text(it["content"], t);
            thinking += t;
        } else {
            r.fail(f + ".type", "one_of(message,function_call,function_call_output,reasoning)",
                   f + ".type '" + type + "' is not supported");
        }
    }
}

std::vector<FieldError> parse_responses(const json& body, const std::string& raw, const Engine& engine,
                                        RespRequest& o) {
    std::vector<FieldError> errors;
    FieldReader r(body, errors);
    const ModelInfo& info = engine.info();
    o.id = "resp_" + uuid_v4();
    o.created = static_cast<int64_t>(std::time(nullptr));
    o.stream = r.boolean("stream").value_or(false);
    if (r.present("previous_response_id"))
        r.fail("previous_response_id", "unsupported",
               "previous_response_id is not supported: this worker stores no responses; send the whole "
               "conversation in input");
    if (r.present("top_logprobs"))
        r.fail("top_logprobs", "unsupported", "logprobs are not supported on /v1/responses");
    if (r.present("text")) {
        const json& t = body["text"];
        const bool text_only =
            t.is_object() && (!t.contains("format") || t["format"].is_null() ||
                              (t["format"].is_object() && t["format"].value("type", "") == "text"));
        if (!text_only)
            r.fail("text.format", "one_of(text)",
                   "only text output is supported (no json_schema / json_object)");
    }
    if (r.boolean("background").value_or(false))
        r.fail("background", "unsupported", "background responses are not supported");
    o.gen.sampling = read_sampling(r, info.vocab_size);
    const auto max_out = r.integer("max_output_tokens", 1, info.n_ctx);
    ChatRequest cr;
    if (r.present("reasoning")) {
        const json& re = body["reasoning"];
        if (!re.is_object())
            r.fail("reasoning", "type(object)", "reasoning must be an object");
        else if (re.contains("effort") && !re["effort"].is_null()) {
            const std::string e = re["effort"].is_string() ? re["effort"].get<std::string>() : "";
            if (e != "low" && e != "medium" && e != "high")
                r.fail("reasoning.effort", "one_of(low,medium,high)",
                       "reasoning.effort must be low, medium or high");
            else
                cr.reasoning_effort = o.effort = e;
        }
    }
    read_input(body, r, cr.messages);
    if (r.present("tools")) {
        const auto ordered = nlohmann::ordered_json::parse(raw, nullptr, false);
        cr.tools = read_tools(ordered["tools"], /*responses_shape=*/true, "tools", errors);
    }
    if (r.present("tool_choice"))
        cr.tool_choice = read_tool_choice(body["tool_choice"], cr.tools, "tool_choice", errors);
    std::string prompt;
    if (errors.empty() && render_chat(engine, cr, o.prompt, "input", errors)) prompt = o.prompt.text;
    if (!errors.empty()) return errors;
    o.gen.prompt = engine.tokenizer().encode(prompt, /*parse_special=*/true, /*add_bos=*/false);
    o.prompt_tokens = static_cast<int>(o.gen.prompt.size());
    if (o.prompt_tokens >= info.n_ctx) {
        r.fail("input", "tokens(1..<" + std::to_string(info.n_ctx) + ")",
               "the prompt is " + std::to_string(o.prompt_tokens) + " tokens; the context holds " +
                   std::to_string(info.n_ctx));
        return errors;
    }
    o.gen.max_tokens = static_cast<int>(max_out.value_or(info.n_ctx - o.prompt_tokens));
    o.gen.job_id = o.id;
    // Echoed in the response object: validated values only (tools as the worker read them,
    // tool_choice normalized; metadata must be OpenAI's flat map of strings).
    json meta = json::object();
    if (r.present("metadata")) {
        bool flat = body["metadata"].is_object();
        for (const auto& v : flat ? body["metadata"] : json::object()) flat = flat && v.is_string();
        if (!flat) {
            r.fail("metadata", "type(map of strings)", "metadata must be an object of string values");
            return errors;
        }
        meta = body["metadata"];
    }
    o.echo["metadata"] = meta;
    for (const char* k : {"instructions", "temperature", "top_p", "max_output_tokens"})
        o.echo[k] = body.contains(k) && body[k].is_primitive() ? body[k] : json(nullptr);
    o.echo["tools"] = json::array();
    for (const auto& t : cr.tools) {
        json j = json::parse(t.declaration["function"].dump());  // Responses' flat shape
        j["type"] = "function";
        o.echo["tools"].push_back(std::move(j));
    }
    static const char* modes[] = {"none", "auto", "required", ""};
    const auto mode = static_cast<size_t>(cr.tool_choice.mode);
    o.echo["tool_choice"] = cr.tool_choice.mode == ToolChoice::Mode::Named
                                ? json{{"type", "function"}, {"name", cr.tool_choice.name}}
                                : json(modes[mode]);
    return errors;
}

// Builds the output items and the typed event stream from reply deltas.
class RespOutput {
public:
    RespOutput(RespRequest o, std::string model, const Tokenizer& tok)
        : o_(std::move(o)), model_(std::move(model)), reply_(o_.prompt, tok) {}

    json response(const std::string& status) const {
        json r = {{"id", o_.id},
                  {"object", "response"},
                  {"created_at", o_.created},
                  {"status", status},
                  {"model", model_},
                  {"output", output_},
                  {"error", nullptr},
                  {"incomplete_details", nullptr},
                  {"parallel_tool_calls", false},
                  {"previous_response_id", nullptr},
                  {"reasoning", {{"effort", o_.effort}, {"summary", nullptr}}},
                  {"store", false},
                  {"text", {{"format", {{"type", "text"}}}}},
                  {"truncation", "disabled"},
                  {"usage", nullptr}};
        r.update(o_.echo);
        if (status == "incomplete") r["incomplete_details"] = {{"reason", "max_output_tokens"}};
        if (status != "in_progress")
            r["usage"] = {{"input_tokens", o_.prompt_tokens},
                          {"input_tokens_details", {{"cached_tokens", 0}}},
                          {"output_tokens", tokens_out_},
                          {"output_tokens_details", {{"reasoning_tokens", 0}}},
                          {"total_tokens", o_.prompt_tokens + tokens_out_}};
        return r;
    }

    // Events for one delta (and, at the end, for closing the last item).
    std::vector<json> feed(const ReplyDelta& d) {
        std::vector<json> ev;
        if (!d.reasoning.empty()) {
            if (open_ != "reasoning") open_item("reasoning", ev);
            output_.back()["content"][0]["text"] =
                output_.back()["content"][0]["text"].get<std::string>() + d.reasoning;
            ev.push_back(
                event("response.reasoning_text.delta", {{"content_index", 0}, {"delta", d.reasoning}}));
        }
        if (!d.content.empty()) {
            if (open_ != "message") open_item("message", ev);
            output_.back()["content"][0]["text"] =
                output_.back()["content"][0]["text"].get<std::string>() + d.content;
            ev.push_back(event("response.output_text.delta",
                               {{"content_index", 0}, {"delta", d.content}, {"logprobs", json::array()}}));
        }
        for (const auto& c : d.calls) {
            if (!c.name.empty()) {
                call_ = c.index;
                open_item("function_call", ev);
            }
            if (c.arguments.empty()) continue;
            output_.back()["arguments"] = output_.back()["arguments"].get<std::string>() + c.arguments;
            ev.push_back(event("response.function_call_arguments.delta", {{"delta", c.arguments}}));
        }
        return ev;
    }
    std::vector<json> finish(const JobEvent& end) {
        std::vector<json> ev;
        const bool cut =
            end.stop_reason == StopReason::MAX_TOKENS || end.stop_reason == StopReason::CONTEXT_FULL;
        close_item(ev, cut ? "incomplete" : "completed");
        tokens_out_ = end.tokens_out;
        const std::string status = cut ? "incomplete" : "completed";
        ev.push_back(with_seq({{"type", "response." + status}, {"response", response(status)}}));
        return ev;
    }

    std::string stream_event(const JobEvent& e, bool& last) {
        std::vector<json> ev;
        switch (e.kind) {
            case JobEvent::Kind::Started:
                ev.push_back(with_seq({{"type", "response.created"}, {"response", response("in_progress")}}));
                ev.push_back(
                    with_seq({{"type", "response.in_progress"}, {"response", response("in_progress")}}));
                ev_append(ev, feed(reply_.start()));
                break;
            case JobEvent::Kind::Token:
                ev = feed(reply_.push(e, false));
                break;
            case JobEvent::Kind::Metrics:
                break;
            case JobEvent::Kind::End:
                last = true;
                ev = feed(reply_.push(e, true));
                ev_append(ev, finish(e));
                break;
            case JobEvent::Kind::Error:
                last = true;
                ev.push_back(with_seq({{"type", "error"},
                                       {"code", std::string(code_name(e.code))},
                                       {"message", e.message},
                                       {"param", nullptr}}));
                break;
        }
        std::string out;
        for (const auto& j : ev) out += sse(j["type"].get<std::string>(), j);
        return out;
    }

    int collect(Job& job, json& body) {
        feed(reply_.start());
        for (;;) {
            auto e = job.pop(std::chrono::milliseconds(1000));
            if (!e) continue;
            if (e->kind == JobEvent::Kind::Token) feed(reply_.push(*e, false));
            if (e->kind == JobEvent::Kind::Error) {
                body = oai_error(e->code, e->message);
                return http_status(e->code);
            }
            if (e->kind != JobEvent::Kind::End) continue;
            feed(reply_.push(*e, true));
            body = finish(*e).back()["response"];
            return 200;
        }
    }

private:
    static void ev_append(std::vector<json>& a, std::vector<json> b) {
        for (auto& j : b) a.push_back(std::move(j));
    }
    json with_seq(json j) {
        j["sequence_number"] = seq_++;
        return j;
    }
    // An event about the open item: adds item_id and output_index.
    json event(const std::string& type, json j) {
        j["type"] = type;
        j["item_id"] = output_.back()["id"];
        j["output_index"] = output_.size() - 1;
        return with_seq(std::move(j));
    }
    void open_item(const std::string& kind, std::vector<json>& ev) {
        close_item(ev);
        json item;
        const std::string suffix = uuid_v4();
        if (kind == "reasoning") {
            item = {{"type", "reasoning"},
                    {"id", "rs_" + suffix},
                    {"summary", json::array()},
                    {"content", json::array({{{"type", "reasoning_text"}, {"text", ""}}})},
                    {"status", "in_progress"}};
        } else if (kind == "message") {
            item = {{"type", "message"},
                    {"id", "msg_" + suffix},
                    {"role", "assistant"},
                    {"status", "in_progress"},
                    {"content", json::array({{{"type", "output_text"},
                                              {"text", ""},
                                              {"annotations", json::array()},
                                              {"logprobs", json::array()}}})}};
        } else {
            const auto& c = reply_.calls()[static_cast<size_t>(call_)];
            item = {{"type", "function_call"}, {"id", "fc_" + suffix}, {"call_id", c.id},
                    {"name", c.name},          {"arguments", ""},      {"status", "in_progress"}};
        }
        open_ = kind;
        output_.push_back(item);
        // The added item is announced empty; its content part (if any) follows.
        json announced = item;
        if (kind != "function_call") announced["content"] = json::array();
        ev.push_back(with_seq({{"type", "response.output_item.added"},
                               {"output_index", output_.size() - 1},
                               {"item", announced}}));
        if (kind != "function_call")
            ev.push_back(
                event("response.content_part.added", {{"content_index", 0}, {"part", item["content"][0]}}));
    }
    // `status`: completed, or incomplete for the item the token limit cut.
    void close_item(std::vector<json>& ev, const char* status = "completed") {
        if (open_.empty()) return;
        json& item = output_.back();
        item["status"] = status;
        if (open_ == "reasoning") {
            ev.push_back(event("response.reasoning_text.done",
                               {{"content_index", 0}, {"text", item["content"][0]["text"]}}));
        } else if (open_ == "message") {
            ev.push_back(event(
                "response.output_text.done",
                {{"content_index", 0}, {"text", item["content"][0]["text"]}, {"logprobs", json::array()}}));
        } else {
            ev.push_back(event("response.function_call_arguments.done",
                               {{"arguments", item["arguments"]}, {"name", item["name"]}}));
        }
        if (open_ != "function_call")
            ev.push_back(
                event("response.content_part.done", {{"content_index", 0}, {"part", item["content"][0]}}));
        ev.push_back(with_seq(
            {{"type", "response.output_item.done"}, {"output_index", output_.size() - 1}, {"item", item}}));
        open_.clear();
    }

    RespRequest o_;
    std::string model_;
    ReplyParser reply_;
    json output_ = json::array();
    std::string open_;  // kind of the item still receiving deltas, "" = none
    int call_ = 0;
    int seq_ = 0;
    int tokens_out_ = 0;
};

}  // namespace

void Server::add_responses_routes() {
    http_->Post("/v1/responses", [this](const httplib::Request& req, httplib::Response& res) {
        const std::string cid = correlation_id(req, res);
        json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
        if (!body.is_object()) {
            send_json(res, 400, oai_error(Code::INVALID_REQUEST, "body must be a JSON object"));
            return;
        }
        if (engine_.wait_loaded() == Engine::State::Failed) {
            send_json(res, http_status(engine_.load_error_code()),
                      oai_error(engine_.load_error_code(), engine_.load_error()));
            return;
        }
        RespRequest o;
        o.gen.correlation_id = cid;
        auto errors = parse_responses(body, req.body, engine_, o);
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
        auto out = std::make_shared<RespOutput>(o, engine_.info().name, engine_.tokenizer());
        if (o.stream) {
            stream_job(res, engine_, job,
                       [out](const JobEvent& e, bool& last) { return out->stream_event(e, last); });
        } else {
            json result;
            const int status = out->collect(*job, result);
            send_json(res, status, result);
        }
    });
}

}  // namespace wo
