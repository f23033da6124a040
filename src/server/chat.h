// Chat messages as the OpenAI routes receive them, and the renderers that turn them into a
// prompt: harmony for gpt-oss (harmony.cpp) and the GGUF chat template families ChatML,
// Llama 3 and Phi-3 (chat_template.cpp).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace wo {

// One function call an assistant made: `arguments` is JSON text, passed through verbatim.
struct ToolCall {
    std::string id, name, arguments;
};

struct ChatMessage {
    std::string role;      // system, developer, user, assistant, tool
    std::string content;
    std::string thinking;  // assistant reasoning_content (harmony drops it from history)
    std::vector<ToolCall> tool_calls;  // assistant
    std::string tool_call_id, name;    // tool: the call it answers and that call's function
};

// A function tool as the request declared it; `parameters` keeps the schema's key order
// (properties render in the order the client wrote them).
struct ToolDef {
    std::string name, description;
    nlohmann::ordered_json parameters;  // a JSON-schema object, or null
    // The declaration as Chat Completions writes it ({"type":"function","function":{...}}), for
    // templates that print it as JSON (Qwen2.5, Llama 3.1).
    nlohmann::ordered_json declaration;
};

struct HarmonyOptions {
    std::string model_identity = "You are ChatGPT, a large language model trained by OpenAI.";
    std::string reasoning_effort = "medium";  // low, medium, high
    std::string current_date;                 // YYYY-MM-DD; empty = today (UTC)
    std::vector<ToolDef> tools;               // declared in the developer message
};

// The prompt for `messages` in harmony, ending with "<|start|>assistant". Without tools it
// is exactly what the official gpt-oss chat template renders; tools, tool calls and tool
// results follow the harmony format documentation (openai/harmony docs/format.md): a
// TypeScript `namespace functions` in the developer message, calls as
// `<|start|>assistant<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>ARGS<|call|>`,
// results as `<|start|>functions.NAME to=assistant<|channel|>commentary<|message|>OUT<|end|>`.
// Reasoning is kept only for tool-calling turns after the last final answer. Throws
// Error(INVALID_REQUEST) where the template raises (channel markup inside content).
std::string render_harmony(const std::vector<ChatMessage>& messages, const HarmonyOptions& options);

// The developer-message tools section for `tools` ("## functions\n\nnamespace functions {...").
std::string harmony_tools_namespace(const std::vector<ToolDef>& tools);

// Splits streamed assistant output into reasoning (analysis channel), content (final and
// commentary channels) and function calls (messages to `functions.NAME`, when enabled).
// Output with no channel markup at all is content. Never throws.
class HarmonyParser {
public:
    explicit HarmonyParser(bool parse_tool_calls = false) : tools_(parse_tool_calls) {}
    struct CallDelta {
        int index = 0;          // 0, 1, ... in order of the calls
        std::string name;       // set on the first delta of a call only
        std::string arguments;  // appended to the call's arguments
    };
    struct Delta {
        std::string reasoning, content;
        std::vector<CallDelta> calls;
    };
    Delta push(const std::string& text);
    Delta flush();  // end of output: whatever was held back for a possible marker
    int calls() const { return n_calls_; }

private:
    enum class State { Start, Header, Body, AfterEnd, Plain };
    void route(const std::string& text, Delta& d) const;
    void open_message(const std::string& header, Delta& d);
    bool tools_;
    State state_ = State::Start;
    std::string buf_;      // unconsumed text
    std::string channel_;  // current message's channel
    bool in_call_ = false;  // the current message is a function call
    int n_calls_ = 0;
};

enum class TemplateFamily { ChatML, Llama3, Phi3 };

// Recognizes which family a GGUF tokenizer.chat_template belongs to; throws
// Error(INVALID_REQUEST) naming the supported families when it is none of them.
TemplateFamily detect_template(const std::string& chat_template);

// How a template lets the model call functions: none, Qwen2.5's ChatML `<tool_call>` JSON
// blocks (tool results in `<tool_response>`), or Llama 3.1's reply that is one JSON object
// {"name", "parameters"} (tools listed in the first user message, results as ipython).
enum class ToolFormat { None, QwenXml, LlamaJson };
ToolFormat template_tool_format(const std::string& chat_template);

// Renders with add_generation_prompt=true. `bos` is the BOS token's text, used where the
// template writes bos_token. Tools, tool calls and tool messages need a template whose
// tool_format is not None (else Error(INVALID_REQUEST) naming what is missing); assistant
// tool-call arguments must then be JSON objects.
std::string render_template(const std::string& chat_template, const std::vector<ChatMessage>& messages,
                            const std::string& bos, const std::vector<ToolDef>& tools = {});

// Python's json.dumps as chat templates' `tojson` writes it: ", " and ": " separators, or with
// `indent` > 0 one member per line; key order kept; non-ASCII as is.
std::string template_tojson(const nlohmann::ordered_json& v, int indent = 0);

// Function calls in the reply of a ToolFormat template: QwenXml finds
// `<tool_call>{"name", "arguments"}</tool_call>` blocks among content; LlamaJson takes a reply
// that is one JSON object {"name", "parameters"} as a call (it is held until the end to tell).
// A block that is not such JSON stays content. Calls come whole, name and arguments at once.
class TextToolParser {
public:
    explicit TextToolParser(ToolFormat f) : format_(f) {}
    HarmonyParser::Delta push(const std::string& text);
    HarmonyParser::Delta flush();
    int calls() const { return n_calls_; }

private:
    bool take_call(const std::string& json_text, HarmonyParser::Delta& d);
    ToolFormat format_;
    std::string buf_;
    bool in_call_ = false;       // QwenXml: inside <tool_call>
    int decided_ = 0;            // LlamaJson: 0 undecided, 1 a JSON reply, 2 plain text
    int n_calls_ = 0;
};

}  // namespace wo
