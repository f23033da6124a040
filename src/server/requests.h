// Request parsing for every route, apart from the HTTP handlers so that the fuzzer
// (tests/fuzz/fuzz_requests.cpp) can drive it: each returns every problem as a FieldError and
// fills its output only when there are none. Nothing here throws for any JSON value.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/oai.h"
#include "server/validate.h"

namespace wo {

// POST /execute; on success `out` holds the tokenized prompt.
std::vector<FieldError> parse_execute(const nlohmann::json& body, const Engine& engine, GenerateRequest& out);

// POST /cancel: job_id of 1..256 characters.
std::vector<FieldError> parse_cancel(const nlohmann::json& body, std::string& job_id);

struct OaiRequest {
    bool chat = false, stream = false, include_usage = false;
    bool logprobs = false;  // chat: logprobs=true; completions: logprobs=N
    std::string id;
    int64_t created = 0;
    int prompt_tokens = 0;
    ChatPrompt prompt;
    GenerateRequest gen;
};

// POST /v1/completions (chat=false) and /v1/chat/completions (chat=true); `raw` is the body's
// text (tools are read again from it keeping key order).
std::vector<FieldError> parse_oai(const nlohmann::json& body, const std::string& raw, bool chat, const Engine& engine,
                                  OaiRequest& o);

struct RespRequest {
    bool stream = false;
    std::string id;
    int64_t created = 0;
    int prompt_tokens = 0;
    std::string effort = "medium";
    nlohmann::json echo;  // request fields the response object repeats
    ChatPrompt prompt;
    GenerateRequest gen;
};

// POST /v1/responses (requests_responses.cpp).
std::vector<FieldError> parse_responses(const nlohmann::json& body, const std::string& raw, const Engine& engine,
                                        RespRequest& o);

}  // namespace wo
