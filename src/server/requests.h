// Request parsing for every route, apart from the HTTP handlers so that the fuzzer
// (tests/fuzz/fuzz_requests.cpp) can drive it: each returns every problem as a FieldError and
// fills its output only when there are none. Nothing here throws for any JSON value.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/validate.h"

namespace wo {

inline constexpr size_t kMaxMessages = 1024;  // chat messages per request

// POST /execute; on success `out` holds the tokenized prompt.
std::vector<FieldError> parse_execute(const nlohmann::json& body, const Engine& engine, GenerateRequest& out);

// POST /cancel: job_id of 1..256 characters.
std::vector<FieldError> parse_cancel(const nlohmann::json& body, std::string& job_id);

struct OaiRequest {
    bool chat = false, stream = false, include_usage = false, harmony = false;
    std::string id;
    int64_t created = 0;
    int prompt_tokens = 0;
    GenerateRequest gen;
};

// POST /v1/completions (chat=false) and /v1/chat/completions (chat=true).
std::vector<FieldError> parse_oai(const nlohmann::json& body, bool chat, const Engine& engine, OaiRequest& o);

}  // namespace wo
