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

std::string render_template(const std::string& tpl, const std::vector<ChatMessage>& ms, const std::string& bos) {
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
