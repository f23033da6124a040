// The model's reply as the OpenAI routes report it: job events turned into reasoning,
// content, function calls (with ids) and the log-probabilities of content tokens, the same
// for Chat Completions and Responses, streamed or not.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/job.h"
#include "server/chat.h"
#include "server/oai.h"

namespace wo {

struct ReplyDelta {
    std::string reasoning, content;
    std::vector<HarmonyParser::CallDelta> calls;  // a delta with a name opens call `index`
    std::vector<TokenLogprob> logprobs;           // content tokens only
    bool empty() const { return reasoning.empty() && content.empty() && calls.empty() && logprobs.empty(); }
};

class ReplyParser {
public:
    ReplyParser(const ChatPrompt& prompt, const Tokenizer& tok);
    // What the prefill already says (a forced call's name); call once, before any push.
    ReplyDelta start();
    // A Token event's text and ids, or (end = true) the End event: whatever is held back.
    ReplyDelta push(const JobEvent& e, bool end);

    struct Call {
        std::string id, name, arguments;
    };
    const std::vector<Call>& calls() const { return calls_; }

private:
    void take(HarmonyParser::Delta d, ReplyDelta& out);
    bool content_token(int32_t id);

    const Tokenizer& tok_;
    bool harmony_, tools_;
    std::string prefill_;
    HarmonyParser parser_;
    std::optional<TextToolParser> text_tools_;  // a template family's calls
    std::vector<Call> calls_;
    // Token-level channel tracking, so only tokens of the content channels get logprobs.
    enum class TState { Start, Header, Body, AfterEnd, Plain } ts_ = TState::Start;
    std::string header_;
    bool body_is_content_ = false;
    int32_t t_start_ = -1, t_end_ = -1, t_message_ = -1, t_channel_ = -1, t_call_ = -1, t_return_ = -1;
};

}  // namespace wo
