// Request parsing and validation for /execute, /cancel and the OpenAI routes.
#include "server/requests.h"

#include <ctime>

#include "server/chat.h"
#include "server/http_util.h"

namespace wo {

using nlohmann::json;

// Parses and validates an /execute body; on success fills `out` (prompt tokenized).
std::vector<FieldError> parse_execute(const nlohmann::json& body, const Engine& engine, GenerateRequest& out) {
    std::vector<FieldError> errors;
    FieldReader r(body, errors);
    const ModelInfo& info = engine.info();
    auto job_id = r.string("job_id", 1, 256);
    auto prompt = r.string("prompt", 1, 32768);
    out.max_tokens = static_cast<int>(r.integer("max_tokens", 1, 2048).value_or(2048));
    out.sampling = read_sampling(r, info.vocab_size);
    if (auto stop = read_stops(r, engine.tokenizer(), /*allow_single=*/false)) out.stop = *stop;
    if (prompt) {
        out.prompt = engine.tokenizer().encode(*prompt, /*parse_special=*/true, /*add_bos=*/true);
        if (out.prompt.empty() || static_cast<int>(out.prompt.size()) > info.n_ctx)
            r.fail("prompt", "tokens(1..=" + std::to_string(info.n_ctx) + ")",
                   "prompt is " + std::to_string(out.prompt.size()) + " tokens; the context holds " +
                       std::to_string(info.n_ctx));
    }
    if (job_id) out.job_id = *job_id;
    return errors;
}

std::vector<FieldError> parse_cancel(const json& body, std::string& job_id) {
    std::vector<FieldError> errors;
    if (!body.is_object()) {
        errors.push_back({"body", "type(object)", "body must be a JSON object"});
        return errors;
    }
    FieldReader r(body, errors);
    if (auto id = r.string("job_id", 1, 256)) job_id = *id;  // as on /execute: no longer id can be running
    return errors;
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
        if (!p.is_object() || !p.contains("type") || p["type"] != "text" || !p.contains("text") || !p["text"].is_string())
            return false;
        out += p["text"].get<std::string>();
    }
    return true;
}

}  // namespace

std::vector<FieldError> parse_oai(const json& body, bool chat, const Engine& engine, OaiRequest& o) {
    std::vector<FieldError> errors;
    FieldReader r(body, errors);
    const ModelInfo& info = engine.info();
    o.chat = chat;
    o.created = static_cast<int64_t>(std::time(nullptr));
    o.id = (chat ? "chatcmpl-" : "cmpl-") + uuid_v4();
    o.stream = r.boolean("stream").value_or(false);
    if (r.present("stream_options")) {
        const json& so = body["stream_options"];
        if (!so.is_object()) r.fail("stream_options", "type(object)", "stream_options must be an object");
        else if (so.contains("include_usage") && !so["include_usage"].is_null() && !so["include_usage"].is_boolean())
            r.fail("stream_options.include_usage", "type(boolean)", "stream_options.include_usage must be true or false");
        else if (so.contains("include_usage") && so["include_usage"].is_boolean()) o.include_usage = so["include_usage"].get<bool>();
    }
    if (auto n = r.integer("n", 1, 1); !n && r.present("n")) {}
    for (const char* f : {"frequency_penalty", "presence_penalty"})
        if (auto v = r.number(f, -2, 2); v && *v != 0)
            r.fail(f, "unsupported", std::string(f) + " is not supported (use repetition_penalty)");
    if (r.present("logprobs") && !(body["logprobs"].is_boolean() && !body["logprobs"].get<bool>()))
        r.fail("logprobs", "unsupported", "logprobs are not supported");
    o.gen.sampling = read_sampling(r, info.vocab_size);
    if (auto stop = read_stops(r, engine.tokenizer(), /*allow_single=*/true)) o.gen.stop = *stop;
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
        } else if (body["messages"].size() > kMaxMessages) {
            r.fail("messages", "count(1..=" + std::to_string(kMaxMessages) + ")",
                   "messages has " + std::to_string(body["messages"].size()) + " entries; at most " +
                       std::to_string(kMaxMessages) + " are allowed");
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
                           f + ".role '" + cm.role.substr(0, 32) + "' is not supported (tool calling is not implemented)");
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


}  // namespace wo
