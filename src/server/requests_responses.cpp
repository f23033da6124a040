// POST /v1/responses request parsing: `input` items (messages, function calls and their
// outputs, reasoning) become chat messages rendered like a chat completion's; the fields the
// response object repeats are kept, validated.
#include <ctime>
#include <utility>

#include "server/http_util.h"
#include "server/requests.h"
#include "server/tools.h"

namespace wo {

using nlohmann::json;

namespace {

// Text of a Responses message content: a string or parts of type input_text/output_text/text.
bool parts_text(const json& c, std::string& out) {
    if (c.is_string()) {
        out = c.get<std::string>();
        return true;
    }
    if (!c.is_array()) return false;
    for (const auto& p : c) {
        const std::string t = string_at(p, "type");
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
    if (in.size() > kMaxMessages) {
        r.fail("input", "count(1..=" + std::to_string(kMaxMessages) + ")",
               "input has " + std::to_string(in.size()) + " items; at most " + std::to_string(kMaxMessages) +
                   " are allowed");
        return;
    }
    std::string thinking;
    for (size_t i = 0; i < in.size(); ++i) {
        const json& it = in[i];
        const std::string f = "input[" + std::to_string(i) + "]";
        const std::string type =
            it.is_object() && it.contains("type") ? string_at(it, "type") : it.contains("role") ? "message" : "";
        if (type == "message") {
            ChatMessage m;
            m.role = string_at(it, "role");
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
                   f + ".type '" + type.substr(0, 32) + "' is not supported");
        }
    }
}

}  // namespace

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
                              (t["format"].is_object() && string_at(t["format"], "type") == "text"));
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

}  // namespace wo
