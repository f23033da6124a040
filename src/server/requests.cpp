// Request parsing and validation for /execute, /cancel and the OpenAI routes.
#include "server/requests.h"

#include <ctime>

#include "server/http_util.h"
#include "server/tools.h"

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

std::vector<FieldError> parse_oai(const json& body, const std::string& raw, bool chat, const Engine& engine, OaiRequest& o) {
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


}  // namespace wo
