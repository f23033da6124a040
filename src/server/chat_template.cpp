// The three GGUF chat template families rendered in C++ (no Jinja engine): ChatML (Qwen2 and
// others), Llama 3 / 3.1, Phi-3. Each follows its reference template for plain text messages.
#include <algorithm>
#include <regex>

#include "server/chat.h"
#include "util/error.h"

namespace wo {

namespace {

bool has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    const auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

// Qwen2-style templates write a default system prompt when the conversation has none, as a
// literal inside the template: '<|im_start|>system\nYou are ...<|im_end|>\n'.
std::string chatml_default_system(const std::string& tpl) {
    static const std::regex re(R"(<\|im_start\|>system\\n([^'"+{}]+?)<\|im_end\|>)");
    std::smatch m;
    return std::regex_search(tpl, m, re) ? m[1].str() : "";
}

// A tool call's arguments as the templates print them: parsed, then written by tojson.
std::string call_arguments(const ToolCall& c) {
    const auto j = nlohmann::ordered_json::parse(c.arguments, nullptr, false);
    if (!j.is_object())
        throw Error(Code::INVALID_REQUEST, "tool call '" + c.id + "': arguments must be a JSON object for this model's template");
    return template_tojson(j);
}

// Qwen2.5's template with tools: the declarations in the system message, calls as
// <tool_call> blocks, consecutive tool results in one user message.
std::string render_qwen_tools(const std::string& tpl, const std::vector<ChatMessage>& ms, const std::vector<ToolDef>& tools) {
    size_t first = 0;
    std::string system = chatml_default_system(tpl);
    if (!ms.empty() && ms[0].role == "system") {
        system = ms[0].content;
        first = 1;
    }
    std::string s;
    if (!tools.empty()) {
        s = "<|im_start|>system\n" + system +
            "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided "
            "with function signatures within <tools></tools> XML tags:\n<tools>";
        for (const auto& t : tools) s += "\n" + template_tojson(t.declaration);
        s += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
             "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
             "<args-json-object>}\n</tool_call><|im_end|>\n";
    } else if (first == 1 || !system.empty()) {
        // No declarations (tool_choice none), only tool turns in the history: the plain header.
        s = "<|im_start|>system\n" + system + "<|im_end|>\n";
    }
    for (size_t i = first; i < ms.size(); ++i) {
        const ChatMessage& m = ms[i];
        if (m.role == "tool") {
            if (i == 0 || ms[i - 1].role != "tool") s += "<|im_start|>user";
            s += "\n<tool_response>\n" + m.content + "\n</tool_response>";
            if (i + 1 == ms.size() || ms[i + 1].role != "tool") s += "<|im_end|>\n";
        } else if (m.role == "assistant" && !m.tool_calls.empty()) {
            s += "<|im_start|>assistant";
            if (!m.content.empty()) s += "\n" + m.content;
            for (const auto& c : m.tool_calls)
                s += "\n<tool_call>\n{\"name\": \"" + c.name + "\", \"arguments\": " + call_arguments(c) + "}\n</tool_call>";
            s += "<|im_end|>\n";
        } else {
            s += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        }
    }
    return s + "<|im_start|>assistant\n";
}

std::string render_chatml(const std::string& tpl, const std::vector<ChatMessage>& ms) {
    std::string s;
    size_t first = 0;
    if (!ms.empty() && ms[0].role == "system") {
        s += "<|im_start|>system\n" + ms[0].content + "<|im_end|>\n";
        first = 1;
    } else if (const std::string def = chatml_default_system(tpl); !def.empty()) {
        s += "<|im_start|>system\n" + def + "<|im_end|>\n";
    }
    for (size_t i = first; i < ms.size(); ++i)
        s += "<|im_start|>" + ms[i].role + "\n" + ms[i].content + "<|im_end|>\n";
    return s + "<|im_start|>assistant\n";
}

std::string render_llama3(const std::string& tpl, const std::vector<ChatMessage>& ms, const std::string& bos) {
    auto block = [](const std::string& role, const std::string& content) {
        return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content + "<|eot_id|>";
    };
    std::string s = bos;
    size_t first = 0;
    if (has(tpl, "Cutting Knowledge Date")) {
        // Llama 3.1+: a system block always comes first, with the template's default dates.
        std::string system;
        if (!ms.empty() && ms[0].role == "system") {
            system = trim(ms[0].content);
            first = 1;
        }
        s += "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
             system + "<|eot_id|>";
    }
    for (size_t i = first; i < ms.size(); ++i) s += block(ms[i].role, trim(ms[i].content));
    return s + "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

// Llama 3.1's template with tools (its default tools_in_user_message): the declarations go
// into the first user message, a call is the JSON {"name", "parameters"}, a result is an
// ipython message (its content written by tojson, as the template does for strings).
std::string render_llama31_tools(const std::vector<ChatMessage>& ms, const std::string& bos, const std::vector<ToolDef>& tools) {
    auto block = [](const std::string& role, const std::string& content) {
        return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content + "<|eot_id|>";
    };
    size_t i = 0;
    std::string system;
    if (!ms.empty() && ms[0].role == "system") {
        system = trim(ms[0].content);
        i = 1;
    }
    std::string s = bos + block("system", std::string(tools.empty() ? "" : "Environment: ipython\n") +
                                              "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" + system);
    if (!tools.empty()) {
        if (i >= ms.size() || ms[i].role != "user")
            throw Error(Code::INVALID_REQUEST, "this model's template (Llama 3.1) puts the tools into the first user message; "
                                               "the conversation must start with a user message");
        std::string u = "Given the following functions, please respond with a JSON for a function call with its proper "
                        "arguments that best answers the given prompt.\n\nRespond in the format {\"name\": function name, "
                        "\"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n";
        for (const auto& t : tools) u += template_tojson(t.declaration, 4) + "\n\n";
        s += block("user", u + trim(ms[i].content));
        ++i;
    }
    for (; i < ms.size(); ++i) {
        const ChatMessage& m = ms[i];
        if (m.role == "tool") {
            s += block("ipython", nlohmann::ordered_json(m.content).dump(-1, ' ', false));
        } else if (!m.tool_calls.empty()) {
            if (m.tool_calls.size() != 1)
                throw Error(Code::INVALID_REQUEST, "this model's template (Llama 3.1) allows one tool call per assistant message");
            const ToolCall& c = m.tool_calls[0];
            s += block("assistant", "{\"name\": \"" + c.name + "\", \"parameters\": " + call_arguments(c) + "}");
        } else {
            s += block(m.role, trim(m.content));
        }
    }
    return s + "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

std::string render_phi3(const std::string& tpl, const std::vector<ChatMessage>& ms, const std::string& bos) {
    std::string s = has(tpl, "bos_token") ? bos : "";
    for (const auto& m : ms) {
        if (m.role == "system" && !m.content.empty()) s += "<|system|>\n" + m.content + "<|end|>\n";
        else if (m.role == "user") s += "<|user|>\n" + m.content + "<|end|>\n";
        else if (m.role == "assistant") s += "<|assistant|>\n" + m.content + "<|end|>\n";
    }
    return s + "<|assistant|>\n";
}

}  // namespace

TemplateFamily detect_template(const std::string& t) {
    if (has(t, "<|im_start|>") && has(t, "<|im_end|>")) return TemplateFamily::ChatML;
    if (has(t, "<|start_header_id|>") && has(t, "<|eot_id|>")) return TemplateFamily::Llama3;
    if (has(t, "<|user|>") && has(t, "<|assistant|>") && has(t, "<|end|>")) return TemplateFamily::Phi3;
    throw Error(Code::INVALID_REQUEST,
                t.empty() ? "this model has no chat template (tokenizer.chat_template); use /v1/completions"
                          : "the model's chat template is not one this worker renders (ChatML, Llama 3, Phi-3, or "
                            "harmony for gpt-oss); use /v1/completions with a formatted prompt");
}

ToolFormat template_tool_format(const std::string& t) {
    // Qwen2.5 writes each call as '\n<tool_call>\n{"name": "' (Qwen3's template, with <think>
    // handling and no newline before a first call, is a different format: not rendered).
    if (has(t, "<|im_start|>") && has(t, "<tools>") && has(t, "<tool_response>") && has(t, "\\n<tool_call>\\n{\"name\": \"") &&
        !has(t, "<think>"))
        return ToolFormat::QwenXml;
    if (has(t, "<|start_header_id|>") && has(t, "Environment: ipython") && has(t, "\"parameters\": ")) return ToolFormat::LlamaJson;
    return ToolFormat::None;
}

std::string render_template(const std::string& tpl, const std::vector<ChatMessage>& ms, const std::string& bos,
                            const std::vector<ToolDef>& tools) {
    bool tool_turns = !tools.empty();
    for (const auto& m : ms) tool_turns = tool_turns || m.role == "tool" || !m.tool_calls.empty();
    if (tool_turns) {
        switch (template_tool_format(tpl)) {
            case ToolFormat::QwenXml: return render_qwen_tools(tpl, ms, tools);
            case ToolFormat::LlamaJson: return render_llama31_tools(ms, bos, tools);
            case ToolFormat::None:
                detect_template(tpl);  // an unknown template says so first
                throw Error(Code::INVALID_REQUEST,
                            "this model's chat template defines no tool-call format this worker renders (it renders "
                            "harmony for gpt-oss, Qwen2.5's <tool_call> blocks and Llama 3.1's JSON calls): tools, "
                            "tool_calls and tool messages cannot be used with it");
        }
    }
    for (size_t i = 0; i < ms.size(); ++i)
        if (ms[i].role != "system" && ms[i].role != "user" && ms[i].role != "assistant")
            throw Error(Code::INVALID_REQUEST, "messages[" + std::to_string(i) + "].role '" + ms[i].role +
                                                   "' is not supported with this model's template");
    switch (detect_template(tpl)) {
        case TemplateFamily::ChatML: return render_chatml(tpl, ms);
        case TemplateFamily::Llama3: return render_llama3(tpl, ms, bos);
        case TemplateFamily::Phi3: return render_phi3(tpl, ms, bos);
    }
    return "";
}

}  // namespace wo
