// Harmony (gpt-oss) prompt rendering, following models/templates/openai-gpt-oss-120b.jinja
// line by line, and the lenient output parser.
#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>

#include "server/chat.h"
#include "util/error.h"

namespace wo {

namespace {

std::string today_utc() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

bool has_channel_markup(const std::string& s) {
    return s.find("<|channel|>analysis<|message|>") != std::string::npos ||
           s.find("<|channel|>final<|message|>") != std::string::npos;
}

constexpr std::array<std::string_view, 7> kMarkers = {"<|channel|>", "<|message|>", "<|end|>", "<|start|>",
                                                      "<|constrain|>", "<|return|>", "<|call|>"};

// Length of the longest tail of `s` that could be the start of a marker.
size_t marker_prefix_tail(const std::string& s) {
    const size_t from = s.rfind("<|");
    if (from == std::string::npos) return s.back() == '<' ? 1 : 0;
    const std::string_view tail(s.data() + from, s.size() - from);
    for (auto m : kMarkers)
        if (tail.size() < m.size() && m.substr(0, tail.size()) == tail) return tail.size();
    return s.back() == '<' ? 1 : 0;
}

}  // namespace

std::string render_harmony(const std::vector<ChatMessage>& messages, const HarmonyOptions& o) {
    const bool tools = !o.tools.empty();
    std::string s = "<|start|>system<|message|>";
    s += o.model_identity + "\n";
    s += "Knowledge cutoff: 2024-06\n";
    s += "Current date: " + (o.current_date.empty() ? today_utc() : o.current_date) + "\n\n";
    s += "Reasoning: " + o.reasoning_effort + "\n\n";
    s += "# Valid channels: analysis, commentary, final. Channel must be included for every message.";
    if (tools) s += "\nCalls to these tools must go to the commentary channel: 'functions'.";
    s += "<|end|>";
    // Only a first system or developer message becomes the developer instructions.
    size_t first = 0;
    std::string developer;
    if (!messages.empty() && (messages[0].role == "developer" || messages[0].role == "system")) {
        developer = messages[0].content;
        first = 1;
    }
    if (!developer.empty() || tools) {
        s += "<|start|>developer<|message|>";
        if (!developer.empty()) s += "# Instructions\n\n" + developer + "\n\n";
        if (tools) s += "# Tools\n\n" + harmony_tools_namespace(o.tools);
        s += "<|end|>";
    }
    // Reasoning is dropped from turns that ended in a final answer; the reasoning of tool
    // calls after the last final answer is part of the chain of thought still under way.
    size_t last_final = 0;
    for (size_t i = first; i < messages.size(); ++i)
        if (messages[i].role == "assistant" && messages[i].tool_calls.empty()) last_final = i + 1;
    for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (m.role == "assistant") {
            if (has_channel_markup(m.content) || has_channel_markup(m.thinking))
                throw Error(Code::INVALID_REQUEST,
                            "messages[" + std::to_string(i) +
                                "]: assistant content must not contain harmony channel tags; pass the analysis text "
                                "in reasoning_content and the final text in content");
            if (m.tool_calls.empty()) {
                // Earlier reasoning is dropped in history; only the final answer is rendered.
                s += "<|start|>assistant<|channel|>final<|message|>" + m.content + "<|end|>";
                continue;
            }
            if (i >= last_final && !m.thinking.empty())
                s += "<|start|>assistant<|channel|>analysis<|message|>" + m.thinking + "<|end|>";
            // Text beside a call is a preamble: commentary the user may see.
            if (!m.content.empty()) s += "<|start|>assistant<|channel|>commentary<|message|>" + m.content + "<|end|>";
            for (const ToolCall& c : m.tool_calls)
                s += "<|start|>assistant<|channel|>commentary to=functions." + c.name + " <|constrain|>json<|message|>" +
                     c.arguments + "<|call|>";
        } else if (m.role == "tool") {
            s += "<|start|>functions." + m.name + " to=assistant<|channel|>commentary<|message|>" + m.content + "<|end|>";
        } else if (m.role == "user") {
            s += "<|start|>user<|message|>" + m.content + "<|end|>";
        }
        // Like the official template, a later system/developer message is not rendered.
    }
    s += "<|start|>assistant";
    return s;
}

void HarmonyParser::route(const std::string& text, Delta& d) const {
    if (text.empty()) return;
    if (in_call_) {
        if (d.calls.empty() || d.calls.back().index != n_calls_ - 1) d.calls.push_back({n_calls_ - 1, "", ""});
        d.calls.back().arguments += text;
        return;
    }
    (channel_ == "analysis" ? d.reasoning : d.content) += text;
}

// A header is the text between <|start|> (or the prompt's "<|start|>assistant") and
// <|message|>: a role, `<|channel|>NAME`, optionally ` to=RECIPIENT` (before or after the
// channel) and a content type (` <|constrain|>json` or ` json`).
void HarmonyParser::open_message(const std::string& header, Delta& d) {
    auto word_at = [&](size_t p) {
        size_t e = p;
        while (e < header.size() && !std::isspace(static_cast<unsigned char>(header[e])) && header[e] != '<') ++e;
        return header.substr(p, e - p);
    };
    channel_ = "final";
    if (const size_t c = header.find("<|channel|>"); c != std::string::npos) {
        size_t e = c + 11;
        while (e < header.size() && (std::isalnum(static_cast<unsigned char>(header[e])) || header[e] == '_')) ++e;
        channel_ = header.substr(c + 11, e - c - 11);
    }
    in_call_ = false;
    const size_t to = header.find("to=");
    if (tools_ && to != std::string::npos && (to == 0 || header[to - 1] == ' ' || header[to - 1] == '>')) {
        const std::string recipient = word_at(to + 3);
        if (recipient.rfind("functions.", 0) == 0 && recipient.size() > 10) {
            in_call_ = true;
            d.calls.push_back({n_calls_++, recipient.substr(10), ""});
        }
    }
}

HarmonyParser::Delta HarmonyParser::push(const std::string& text) {
    Delta d;
    buf_ += text;
    for (;;) {
        if (state_ == State::Plain) {
            route(buf_, d);
            buf_.clear();
            return d;
        }
        if (state_ == State::Start || state_ == State::AfterEnd) {
            // A message header must follow: "<|channel|>..." (or " to=...") right after the
            // prompt's "<|start|>assistant", or "<|start|>assistant..." after an <|end|>.
            // Anything else means the model is not speaking harmony: the rest is plain content.
            std::string_view want = state_ == State::Start ? "<|channel|>" : "<|start|>";
            if (state_ == State::Start && !buf_.empty() && buf_[0] == ' ') want = " to=";
            const size_t n = std::min(buf_.size(), want.size());
            if (buf_.compare(0, n, want, 0, n) != 0) {
                channel_ = "final";
                in_call_ = false;
                state_ = State::Plain;
                continue;
            }
            if (buf_.size() < want.size()) return d;  // could still be the marker
            state_ = State::Header;
            continue;
        }
        if (state_ == State::Header) {
            const size_t m = buf_.find("<|message|>");
            if (m == std::string::npos) {
                if (buf_.size() > 256) {  // no header is this long: not harmony after all
                    channel_ = "final";
                    in_call_ = false;
                    state_ = State::Plain;
                    continue;
                }
                return d;
            }
            open_message(buf_.substr(0, m), d);
            buf_.erase(0, m + 11);
            state_ = State::Body;
            continue;
        }
        // Body: text up to the end of the message goes to its channel.
        size_t end = std::string::npos, len = 0;
        for (std::string_view mk : {"<|end|>", "<|return|>", "<|call|>"}) {
            const size_t p = buf_.find(mk);
            if (p < end) {
                end = p;
                len = mk.size();
            }
        }
        if (end == std::string::npos) {
            const size_t hold = buf_.empty() ? 0 : marker_prefix_tail(buf_);
            route(buf_.substr(0, buf_.size() - hold), d);
            buf_.erase(0, buf_.size() - hold);
            return d;
        }
        route(buf_.substr(0, end), d);
        buf_.erase(0, end + len);
        in_call_ = false;
        state_ = State::AfterEnd;
    }
}

HarmonyParser::Delta HarmonyParser::flush() {
    Delta d;
    // Held text that never became a marker is content of the current message (or plain
    // content, when the output ended before it could tell).
    if (state_ == State::Start) {
        channel_ = "final";
        in_call_ = false;
    }
    if (state_ == State::Body || state_ == State::Plain || state_ == State::Start) route(buf_, d);
    buf_.clear();
    return d;
}

}  // namespace wo
