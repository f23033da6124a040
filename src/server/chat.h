// Chat messages as the OpenAI routes receive them, and the renderers that turn them into a
// prompt: harmony for gpt-oss (harmony.cpp) and the GGUF chat template families ChatML,
// Llama 3 and Phi-3 (chat_template.cpp).
#pragma once
#include <string>
#include <vector>

namespace wo {

struct ChatMessage {
    std::string role;      // system, developer, user, assistant
    std::string content;
    std::string thinking;  // assistant reasoning_content (harmony drops it from history)
};

struct HarmonyOptions {
    std::string model_identity = "You are ChatGPT, a large language model trained by OpenAI.";
    std::string reasoning_effort = "medium";  // low, medium, high
    std::string current_date;                 // YYYY-MM-DD; empty = today (UTC)
};

// The prompt the official gpt-oss chat template renders for `messages` with
// add_generation_prompt=true and no tools; ends with "<|start|>assistant". Throws
// Error(INVALID_REQUEST) where the template raises (channel markup inside content).
std::string render_harmony(const std::vector<ChatMessage>& messages, const HarmonyOptions& options);

// Splits streamed assistant output into reasoning (analysis channel) and content (final and
// commentary channels). Output with no channel markup at all is content. Never throws.
class HarmonyParser {
public:
    struct Delta {
        std::string reasoning, content;
    };
    Delta push(const std::string& text);
    Delta flush();  // end of output: whatever was held back for a possible marker

private:
    enum class State { Start, Header, Body, AfterEnd, Plain };
    void route(const std::string& text, Delta& d) const;
    State state_ = State::Start;
    std::string buf_;      // unconsumed text
    std::string channel_;  // current message's channel
};

enum class TemplateFamily { ChatML, Llama3, Phi3 };

// Recognizes which family a GGUF tokenizer.chat_template belongs to; throws
// Error(INVALID_REQUEST) naming the supported families when it is none of them.
TemplateFamily detect_template(const std::string& chat_template);
// Renders with add_generation_prompt=true. `bos` is the BOS token's text, used where the
// template writes bos_token.
std::string render_template(const std::string& chat_template, const std::vector<ChatMessage>& messages,
                            const std::string& bos);

}  // namespace wo
