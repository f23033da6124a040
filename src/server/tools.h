// Function tools in OpenAI requests: reading and validating `tools` and `tool_choice` (Chat
// Completions and Responses shapes), and tying `tool` messages to the calls they answer.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/chat.h"
#include "server/validate.h"

namespace wo {

struct ToolChoice {
    enum class Mode { None, Auto, Required, Named };
    Mode mode = Mode::Auto;
    std::string name;  // Named
};

// `tools` of a request: Chat Completions nests each function ({type:"function", function:{name,
// description, parameters, strict}}), Responses does not ({type:"function", name, ...}).
// Names must match ^[A-Za-z0-9_-]{1,64}$ and be unique; parameters must be a JSON-schema
// object. Every problem is appended to `errors` under `field` ("tools[1].function.name", ...).
std::vector<ToolDef> read_tools(const nlohmann::ordered_json& tools, bool responses_shape,
                                const std::string& field, std::vector<FieldError>& errors);

// `tool_choice`: "none", "auto", "required", or a named function ({type:"function",
// function:{name}} in chat, {type:"function", name} in Responses) that must be in `tools`.
ToolChoice read_tool_choice(const nlohmann::json& v, const std::vector<ToolDef>& tools,
                            const std::string& field, std::vector<FieldError>& errors);

// Gives each tool message the function name of the call it answers (by tool_call_id, among
// the calls of earlier assistant messages); a tool message with no such call is an error.
void resolve_tool_messages(std::vector<ChatMessage>& messages, std::vector<FieldError>& errors);

// A fresh OpenAI-style call id ("call_" + 24 alphanumerics).
std::string new_call_id();

}  // namespace wo
