// Shared pieces of the OpenAI-compatible routes.
#include "server/oai.h"

#include <httplib.h>

#include <cstdlib>

#include "server/http_util.h"
#include "util/error.h"

namespace wo {

using nlohmann::json;

json oai_error(Code c, const std::string& message, const std::string& param) {
    const char* type = c == Code::INVALID_REQUEST ? "invalid_request_error"
                       : c == Code::QUEUE_FULL    ? "overloaded_error"
                                                  : "server_error";
    return {{"error",
             {{"message", message},
              {"type", type},
              {"param", param.empty() ? json(nullptr) : json(param)},
              {"code", std::string(code_name(c))}}}};
}

void send_field_errors(httplib::Response& res, const std::vector<FieldError>& errors) {
    std::string msg;
    for (size_t i = 0; i < errors.size() && i < kMaxReportedErrors; ++i)
        msg += (msg.empty() ? "" : "; ") + clip(errors[i].message) + " [" + clip(errors[i].constraint, 128) + "]";
    if (errors.size() > kMaxReportedErrors) msg += "; and " + std::to_string(errors.size() - kMaxReportedErrors) + " more";
    json j = oai_error(Code::INVALID_REQUEST, msg, clip(errors.front().field, 128));
    j.update(errors_json(errors));  // "errors" and, past kMaxReportedErrors, "error_count"
    send_json(res, 400, j);
}

namespace {

// Text of an OpenAI message content: a string, null, or an array of {type:"text", text} parts.
bool content_text(const json& c, std::string& out) {
    if (c.is_null()) return true;
    if (c.is_string()) {
        out = c.get<std::string>();
        return true;
    }
    if (!c.is_array()) return false;
    for (const auto& p : c) {
        if (!p.is_object() || string_at(p, "type") != "text" || !p.contains("text") || !p["text"].is_string())
            return false;
        out += p["text"].get<std::string>();
    }
    return true;
}

}  // namespace

void read_chat_messages(const json& body, FieldReader& r, std::vector<ChatMessage>& out) {
    if (!r.present("messages") || !body["messages"].is_array() || body["messages"].empty()) {
        r.fail("messages", "non_empty", "messages must be a non-empty array");
        return;
    }
    if (body["messages"].size() > kMaxMessages) {
        r.fail("messages", "count(1..=" + std::to_string(kMaxMessages) + ")",
               "messages has " + std::to_string(body["messages"].size()) + " entries; at most " +
                   std::to_string(kMaxMessages) + " are allowed");
        return;
    }
    for (size_t i = 0; i < body["messages"].size(); ++i) {
        const json& m = body["messages"][i];
        const std::string f = "messages[" + std::to_string(i) + "]";
        ChatMessage cm;
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
            r.fail(f + ".role", "required", f + " needs a role");
            continue;
        }
        cm.role = m["role"].get<std::string>();
        if (cm.role != "system" && cm.role != "developer" && cm.role != "user" && cm.role != "assistant" &&
            cm.role != "tool") {
            r.fail(f + ".role", "one_of(system,developer,user,assistant,tool)",
                   f + ".role '" + cm.role.substr(0, 32) + "' is not supported");
            continue;
        }
        if (!content_text(m.value("content", json(nullptr)), cm.content))
            r.fail(f + ".content", "type(string|text parts)", f + ".content must be a string or text parts");
        for (const char* k : {"reasoning_content", "thinking"})
            if (m.contains(k) && m[k].is_string()) cm.thinking = m[k].get<std::string>();
        if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
            const json& tc = m["tool_calls"];
            if (cm.role != "assistant" || !tc.is_array()) {
                r.fail(f + ".tool_calls", "type(array)",
                       f + ".tool_calls must be an array, on an assistant message");
                continue;
            }
            for (size_t k = 0; k < tc.size(); ++k) {
                const std::string g = f + ".tool_calls[" + std::to_string(k) + "]";
                const json& c = tc[k];
                if (!c.is_object() || !c.contains("id") || !c["id"].is_string() ||
                    c["id"].get<std::string>().empty() || string_at(c, "type", "function") != "function" ||
                    !c.contains("function") || !c["function"].is_object() ||
                    !c["function"].contains("name") || !c["function"]["name"].is_string() ||
                    !c["function"].contains("arguments") || !c["function"]["arguments"].is_string()) {
                    r.fail(g, "shape({id,type:function,function:{name,arguments:string}})",
                           g + " must be {id, type:\"function\", function:{name, arguments}} with arguments "
                               "a JSON string");
                    continue;
                }
                cm.tool_calls.push_back({c["id"].get<std::string>(), c["function"]["name"].get<std::string>(),
                                         c["function"]["arguments"].get<std::string>()});
            }
        }
        if (cm.role == "tool") {
            if (!m.contains("tool_call_id") || !m["tool_call_id"].is_string()) {
                r.fail(f + ".tool_call_id", "required",
                       f + " is a tool result and needs the tool_call_id it answers");
                continue;
            }
            cm.tool_call_id = m["tool_call_id"].get<std::string>();
        }
        out.push_back(std::move(cm));
    }
}

bool render_chat(const Engine& engine, ChatRequest& chat, ChatPrompt& out, const std::string& field,
                 std::vector<FieldError>& errors) {
    const size_t before = errors.size();
    resolve_tool_messages(chat.messages, errors);
    if (errors.size() > before) return false;
    const ModelInfo& info = engine.info();
    const bool offer = !chat.tools.empty() && chat.tool_choice.mode != ToolChoice::Mode::None;
    out.harmony = info.arch == "gpt-oss";
    out.parse_tools = offer;
    try {
        if (out.harmony) {
            HarmonyOptions ho;
            ho.reasoning_effort = chat.reasoning_effort;
            if (offer) ho.tools = chat.tools;
            out.text = render_harmony(chat.messages, ho);
            // required / named: the reply starts as a call, so the model must make one.
            if (offer && chat.tool_choice.mode == ToolChoice::Mode::Required)
                out.prefill = "<|channel|>commentary to=functions.";
            if (offer && chat.tool_choice.mode == ToolChoice::Mode::Named)
                out.prefill = "<|channel|>commentary to=functions." + chat.tool_choice.name +
                              " <|constrain|>json<|message|>";
            out.text += out.prefill;
        } else {
            const Tokenizer& tok = engine.tokenizer();
            out.text = render_template(info.chat_template, chat.messages,
                                       tok.bos_id ? tok.token_bytes(*tok.bos_id) : "",
                                       offer ? chat.tools : std::vector<ToolDef>{});
            out.tool_format = template_tool_format(info.chat_template);
            const bool qwen = out.tool_format == ToolFormat::QwenXml;
            if (offer && chat.tool_choice.mode == ToolChoice::Mode::Required)
                out.prefill = qwen ? "<tool_call>\n" : "{\"name\": \"";
            if (offer && chat.tool_choice.mode == ToolChoice::Mode::Named)
                out.prefill =
                    qwen ? "<tool_call>\n{\"name\": \"" + chat.tool_choice.name + "\", \"arguments\": "
                         : "{\"name\": \"" + chat.tool_choice.name + "\", \"parameters\": ";
            out.text += out.prefill;
        }
    } catch (const Error& e) {
        errors.push_back({field, "template", e.what()});
        return false;
    }
    return true;
}

void read_test_headers(const httplib::Request& req, bool enabled, int vocab_size, GenerateRequest& gen,
                       std::vector<FieldError>& errors) {
    if (!enabled) return;
    if (req.has_header("X-Test-Fault")) {
        gen.inject_fault = code_from_name(req.get_header_value("X-Test-Fault"));
        if (!gen.inject_fault) errors.push_back({"X-Test-Fault", "code", "unknown error code"});
    }
    if (req.has_header("X-Test-Script")) {
        const std::string v = req.get_header_value("X-Test-Script");
        size_t from = 0;
        while (from <= v.size()) {
            const size_t comma = v.find(',', from);
            const std::string item =
                v.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
            char* end = nullptr;
            const long id = std::strtol(item.c_str(), &end, 10);
            if (item.empty() || *end != '\0' || id < 0 || id >= vocab_size) {
                errors.push_back(
                    {"X-Test-Script", "token_ids", "X-Test-Script must be comma-separated token ids"});
                return;
            }
            gen.script.push_back(static_cast<int32_t>(id));
            if (comma == std::string::npos) break;
            from = comma + 1;
        }
    }
}

void serve_generation(const httplib::Request& req, httplib::Response& res, Engine& engine, bool test_faults,
                      const OaiParse& parse) {
    const std::string cid = correlation_id(req, res);
    const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object()) {
        send_json(res, 400, oai_error(Code::INVALID_REQUEST, "body must be a JSON object"));
        return;
    }
    if (engine.wait_loaded() == Engine::State::Failed) {
        send_json(res, http_status(engine.load_error_code()), oai_error(engine.load_error_code(), engine.load_error()));
        return;
    }
    GenerateRequest gen;
    std::vector<FieldError> errors;
    std::shared_ptr<OaiReply> out = parse(body, req.body, gen, errors);
    gen.correlation_id = cid;
    read_test_headers(req, test_faults, engine.info().vocab_size, gen, errors);
    if (!errors.empty() || !out) {
        if (errors.empty()) errors.push_back({"body", "invalid", "the request was not understood"});
        send_field_errors(res, errors);
        return;
    }
    std::shared_ptr<Job> job;
    try {
        job = engine.submit(std::move(gen));
    } catch (const Error& e) {
        send_json(res, http_status(e.code()), oai_error(e.code(), e.what()));
        return;
    }
    if (out->stream()) {
        stream_job(res, engine, job, [out](const JobEvent& e, bool& last) { return out->stream_event(e, last); });
        return;
    }
    json result;
    int status = 500;
    collect_job(engine, *job, [&](const JobEvent& e) { return out->collect_event(e, result, status); });
    send_json(res, status, result);
}

json logprob_json(const Tokenizer& tok, const TokenLogprob& lp, bool with_top) {
    auto entry = [&](int32_t id, float logprob) {
        const std::string b = tok.token_bytes(id);
        json bytes = json::array();
        for (unsigned char c : b) bytes.push_back(static_cast<int>(c));
        return json{{"token", utf8_lossy(b)}, {"logprob", logprob}, {"bytes", bytes}};
    };
    json j = entry(lp.id, lp.logprob);
    if (with_top) {
        json top = json::array();
        for (const auto& [id, l] : lp.top) top.push_back(entry(id, l));
        j["top_logprobs"] = top;
    }
    return j;
}

}  // namespace wo
