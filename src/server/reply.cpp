// Job events to reply deltas (server/reply.h).
#include "server/reply.h"

#include "server/tools.h"

namespace wo {

ReplyParser::ReplyParser(const ChatPrompt& prompt, const Tokenizer& tok)
    : tok_(tok),
      harmony_(prompt.harmony),
      tools_(prompt.parse_tools),
      prefill_(prompt.prefill),
      parser_(prompt.parse_tools) {
    auto id = [&](const char* s) { return tok.find_token(s).value_or(-1); };
    t_start_ = id("<|start|>");
    t_end_ = id("<|end|>");
    t_message_ = id("<|message|>");
    t_channel_ = id("<|channel|>");
    t_call_ = id("<|call|>");
    t_return_ = id("<|return|>");
    if (!harmony_ && tools_ && prompt.tool_format != ToolFormat::None)
        text_tools_.emplace(prompt.tool_format);
}

void ReplyParser::take(HarmonyParser::Delta d, ReplyDelta& out) {
    out.reasoning += d.reasoning;
    out.content += d.content;
    for (auto& c : d.calls) {
        if (!c.name.empty()) calls_.push_back({new_call_id(), c.name, ""});
        calls_[static_cast<size_t>(c.index)].arguments += c.arguments;
        if (!out.calls.empty() && out.calls.back().index == c.index && c.name.empty())
            out.calls.back().arguments += c.arguments;
        else
            out.calls.push_back(std::move(c));
    }
}

ReplyDelta ReplyParser::start() {
    ReplyDelta out;
    if (prefill_.empty()) return out;
    if (text_tools_) {
        take(text_tools_->push(prefill_), out);
        out.content.clear();
        return out;
    }
    if (!harmony_) return out;
    take(parser_.push(prefill_), out);
    for (int32_t id : tok_.encode(prefill_, /*parse_special=*/true)) content_token(id);
    out.content.clear();  // the prefill itself is prompt, never reply text
    return out;
}

// Mirrors HarmonyParser on token ids: a message body is content when its channel is final,
// or commentary without a function recipient.
bool ReplyParser::content_token(int32_t id) {
    if (!harmony_) return true;
    switch (ts_) {
        case TState::Start:
            if (const std::string b = tok_.token_bytes(id);
                id == t_channel_ || b == " to" || b.rfind(" to=", 0) == 0) {
                ts_ = TState::Header;
                header_ = b;
                return false;
            }
            ts_ = TState::Plain;
            return true;
        case TState::AfterEnd:
            if (id == t_start_) {
                ts_ = TState::Header;
                header_.clear();
                return false;
            }
            ts_ = TState::Plain;
            return true;
        case TState::Header:
            if (id != t_message_) {
                header_ += tok_.token_bytes(id);
                return false;
            }
            {
                const size_t c = header_.find("<|channel|>");
                const std::string ch =
                    c == std::string::npos
                        ? "final"
                        : header_.substr(c + 11, header_.find_first_of(" <", c + 11) - c - 11);
                const bool call = tools_ && header_.find("to=functions.") != std::string::npos;
                body_is_content_ = ch == "final" || (ch == "commentary" && !call);
            }
            ts_ = TState::Body;
            return false;
        case TState::Body:
            if (id == t_end_ || id == t_call_ || id == t_return_) {
                ts_ = TState::AfterEnd;
                return false;
            }
            return body_is_content_;
        case TState::Plain:
            return true;
    }
    return true;
}

ReplyDelta ReplyParser::push(const JobEvent& e, bool end) {
    ReplyDelta out;
    if (text_tools_) {
        take(text_tools_->push(e.text), out);
        if (end) take(text_tools_->flush(), out);
    } else if (!harmony_) {
        out.content = e.text;
    } else {
        take(parser_.push(e.text), out);
        if (end) take(parser_.flush(), out);
    }
    for (size_t i = 0; i < e.tokens.size(); ++i) {
        const bool content = content_token(e.tokens[i]);
        if (content && i < e.logprobs.size()) out.logprobs.push_back(e.logprobs[i]);
    }
    return out;
}

}  // namespace wo
