// Pieces the OpenAI-compatible routes share: the error envelope, chat messages and tools read
// from a request, the prompt rendered for the model (harmony or its chat template), the test
// headers, log-probability JSON, and the handler body of the generating routes.
#pragma once
#include <functional>
#include <memory>
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

// Chat messages (Chat Completions) or input items (Responses) per request.
inline constexpr size_t kMaxMessages = 1024;

// OpenAI's error envelope {"error":{message,type,param,code}}; `param` names the first
// offending field.
nlohmann::json oai_error(Code c, const std::string& message, const std::string& param = "");
// 400 with the first field errors joined in the message (and listed under "errors", with
// "error_count" when there are more than kMaxReportedErrors).
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
// tool_calls, tool; at most kMaxMessages) into `out`; problems go to `r`.
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

// One generating request's reply in its route's shapes (Completions and Chat Completions,
// Responses), streamed as SSE or collected into one JSON body.
class OaiReply {
public:
    virtual ~OaiReply() = default;
    virtual bool stream() const = 0;
    // stream: the bytes for one job event ("" for none); `last` is set on the final one.
    virtual std::string stream_event(const JobEvent& e, bool& last) = 0;
    // Not stream: takes one job event; true once `body` and `status` hold the whole answer.
    virtual bool collect_event(const JobEvent& e, nlohmann::json& body, int& status) = 0;
};

// A route's parser: from a JSON object body (and its text), fills `gen` and returns the reply,
// or sets `errors` and returns nullptr.
using OaiParse = std::function<std::shared_ptr<OaiReply>(const nlohmann::json& body, const std::string& raw,
                                                         GenerateRequest& gen, std::vector<FieldError>& errors)>;

// What every generating OpenAI route does with a request: a JSON object body, the model loaded,
// `parse` plus the test headers (400 with every problem), submit (queue full etc. in OpenAI's
// envelope), then stream the reply or collect it. Either way a client that leaves cancels the
// job.
void serve_generation(const httplib::Request& req, httplib::Response& res, Engine& engine, bool test_faults,
                      const OaiParse& parse);

}  // namespace wo
