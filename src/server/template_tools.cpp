// Tool calls in the GGUF chat template families: the `tojson` the templates print with, and
// the parser for calls in Qwen2.5 (`<tool_call>` blocks) and Llama 3.1 (a JSON reply) output.
#include <algorithm>

#include "server/chat.h"

namespace wo {

namespace {

void tojson_into(const nlohmann::ordered_json& v, int indent, int depth, std::string& out) {
    const std::string pad =
        indent > 0 ? "\n" + std::string(static_cast<size_t>(indent * (depth + 1)), ' ') : "";
    const std::string close = indent > 0 ? "\n" + std::string(static_cast<size_t>(indent * depth), ' ') : "";
    const char* sep = indent > 0 ? "," : ", ";
    if (v.is_object() && !v.empty()) {
        out += "{";
        bool first = true;
        for (const auto& [k, x] : v.items()) {
            out += (first ? "" : sep) + pad + nlohmann::ordered_json(k).dump(-1, ' ', false) + ": ";
            tojson_into(x, indent, depth + 1, out);
            first = false;
        }
        out += close + "}";
    } else if (v.is_array() && !v.empty()) {
        out += "[";
        for (size_t i = 0; i < v.size(); ++i) {
            out += (i ? sep : "") + pad;
            tojson_into(v[i], indent, depth + 1, out);
        }
        out += close + "]";
    } else {
        out += v.dump(-1, ' ', false);
    }
}

// Length of the longest tail of `s` that is a proper prefix of `tag`.
size_t partial_tail(const std::string& s, const std::string& tag) {
    for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
        if (s.compare(s.size() - n, n, tag, 0, n) == 0) return n;
    return 0;
}

}  // namespace

std::string template_tojson(const nlohmann::ordered_json& v, int indent) {
    std::string out;
    tojson_into(v, indent, 0, out);
    return out;
}

bool TextToolParser::take_call(const std::string& text, HarmonyParser::Delta& d) {
    const auto j = nlohmann::ordered_json::parse(text, nullptr, false);
    const char* args_key = format_ == ToolFormat::QwenXml ? "arguments" : "parameters";
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
    const nlohmann::ordered_json* args = j.contains(args_key)      ? &j[args_key]
                                         : j.contains("arguments") ? &j["arguments"]
                                                                   : nullptr;
    if (args && !args->is_object()) return false;
    d.calls.push_back({n_calls_++, j["name"].get<std::string>(), args ? args->dump() : "{}"});
    return true;
}

HarmonyParser::Delta TextToolParser::push(const std::string& text) {
    HarmonyParser::Delta d;
    buf_ += text;
    if (format_ == ToolFormat::LlamaJson) {
        if (decided_ == 0) {
            const size_t b = buf_.find_first_not_of(" \t\r\n");
            if (b == std::string::npos) return d;
            const std::string tag = "<|python_tag|>";
            const bool json = buf_[b] == '{' || buf_.compare(b, tag.size(), tag) == 0;
            const bool maybe_tag =
                buf_.size() - b < tag.size() && tag.compare(0, buf_.size() - b, buf_, b) == 0;
            if (!json && maybe_tag) return d;
            decided_ = json ? 1 : 2;
        }
        if (decided_ == 2) {
            d.content = std::move(buf_);
            buf_.clear();
        }
        return d;  // a JSON reply is held whole: only its end tells whether it is a call
    }
    for (;;) {
        const std::string tag = in_call_ ? "</tool_call>" : "<tool_call>";
        const size_t p = buf_.find(tag);
        if (p == std::string::npos) {
            if (!in_call_) {
                const size_t hold = partial_tail(buf_, tag);
                d.content += buf_.substr(0, buf_.size() - hold);
                buf_.erase(0, buf_.size() - hold);
            }
            return d;
        }
        if (!in_call_) {
            d.content += buf_.substr(0, p);
        } else if (!take_call(buf_.substr(0, p), d)) {
            d.content += "<tool_call>" + buf_.substr(0, p) + "</tool_call>";
        }
        buf_.erase(0, p + tag.size());
        in_call_ = !in_call_;
    }
}

HarmonyParser::Delta TextToolParser::flush() {
    HarmonyParser::Delta d;
    if (format_ == ToolFormat::LlamaJson) {
        std::string body = buf_;
        if (const size_t t = body.find("<|python_tag|>"); t != std::string::npos) body.erase(0, t + 14);
        if (decided_ != 1 || !take_call(body, d)) d.content = buf_;
    } else if (in_call_) {
        // The reply ended inside a block (no closing tag before the end of turn).
        if (!take_call(buf_, d)) d.content = "<tool_call>" + buf_;
    } else {
        d.content = buf_;
    }
    buf_.clear();
    return d;
}

}  // namespace wo
