// Pieces the OpenAI-compatible routes share: the error envelope, chat messages and tools read
// from a request, the prompt rendered for the model (harmony or its chat template), the test
// headers, and log-probability JSON.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/chat.h"
#include "server/tools.h"
#include "server/validate.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace wo {

// OpenAI's error envelope {"error":{message,type,param,code}}; `param` names the first
// offending field.
nlohmann::json oai_error(Code c, const std::string& message, const std::string& param = "");
// 400 with every field error joined in the message (and listed under "errors").
void send_field_errors(httplib::Response& res, const std::vector<FieldError>& errors);

// A conversation to render, however the route received it.
struct ChatRequest {
    std::vector<ChatMessage> messages;
    std::vector<ToolDef> tools;
    ToolChoice tool_choice;
    std::string reasoning_effort = "medium";
};

// What the model is asked to continue.
struct ChatPrompt {
    std::string text;     // the whole prompt
    std::string prefill;  // the start of the reply forced by tool_choice (already in `text`)
    bool harmony = false;
    bool parse_tools = false;                   // tools were offered: look for calls in the reply
    ToolFormat tool_format = ToolFormat::None;  // not harmony: how calls look
};

// Reads Chat Completions `messages` (roles system, developer, user, assistant with
// tool_calls, tool) into `out`; problems go to `r`.
void read_chat_messages(const nlohmann::json& body, FieldReader& r, std::vector<ChatMessage>& out);

// Renders `chat` for the loaded model: harmony for gpt-oss, else the GGUF chat template.
// tool_choice none leaves tools out; required and named start the reply with a function
// call header (harmony) so the model must call. Template errors are appended to `errors`
// under `field`; returns false on any.
bool render_chat(const Engine& engine, ChatRequest& chat, ChatPrompt& out, const std::string& field,
                 std::vector<FieldError>& errors);

// X-Test-Fault (an error code) and X-Test-Script (comma-separated token ids the model
// "samples" first), honoured only under serve --enable-test-faults.
void read_test_headers(const httplib::Request& req, bool enabled, int vocab_size, GenerateRequest& gen,
                       std::vector<FieldError>& errors);

// One token's entry in Chat Completions / Responses logprobs: {token, logprob, bytes,
// top_logprobs:[{token, logprob, bytes}]}.
nlohmann::json logprob_json(const Tokenizer& tok, const TokenLogprob& lp, bool with_top);

}  // namespace wo
