// Function tools as harmony declares them: JSON-schema parameters written as TypeScript-like
// types inside `namespace functions`, following the rules of the harmony format guide
// (openai/harmony docs/format.md, "Defining available tools"): `type NAME = () => any;` without
// arguments, else one argument `_` with its type inlined; descriptions as `//` comments on the
// line above; an empty line after each function.
#include "server/chat.h"

namespace wo {

namespace {

using ojson = nlohmann::ordered_json;

// Each line of `text` as a `// ` comment at `indent`.
std::string comment_lines(const std::string& text, const std::string& indent) {
    std::string out;
    size_t from = 0;
    for (;;) {
        const size_t nl = text.find('\n', from);
        out += indent + "// " + text.substr(from, nl == std::string::npos ? std::string::npos : nl - from) +
               "\n";
        if (nl == std::string::npos) return out;
        from = nl + 1;
    }
}

bool is_enum(const ojson& s) { return s.contains("enum") && s["enum"].is_array() && !s["enum"].empty(); }

std::string ts_type(const ojson& s, const std::string& indent);

// `{` NAME[?]: TYPE, ... `}` with properties at `indent` and the brace at `close`.
std::string object_type(const ojson& s, const std::string& indent, const std::string& close) {
    if (!s.contains("properties") || !s["properties"].is_object() || s["properties"].empty()) return "object";
    auto required = [&](const std::string& k) {
        if (!s.contains("required") || !s["required"].is_array()) return false;
        for (const auto& r : s["required"])
            if (r.is_string() && r.get<std::string>() == k) return true;
        return false;
    };
    std::string out = "{\n";
    for (const auto& [key, val] : s["properties"].items()) {
        if (val.is_object() && val.contains("description") && val["description"].is_string())
            out += comment_lines(val["description"].get<std::string>(), indent);
        out += indent + key + (required(key) ? "" : "?") + ": " + ts_type(val, indent) + ",";
        if (val.is_object() && val.contains("default")) {
            const ojson& d = val["default"];
            // An enum's default names one of the literals above; other strings are quoted.
            out += " // default: " + (d.is_string() && is_enum(val) ? d.get<std::string>() : d.dump());
        }
        out += "\n";
    }
    return out + close + "}";
}

std::string ts_type(const ojson& s, const std::string& indent) {
    if (!s.is_object()) return "any";
    std::string t;
    for (const char* k : {"oneOf", "anyOf"})
        if (s.contains(k) && s[k].is_array() && !s[k].empty()) {
            for (const auto& v : s[k]) t += (t.empty() ? "" : " | ") + ts_type(v, indent);
            return t;
        }
    if (is_enum(s)) {
        for (const auto& v : s["enum"]) t += (t.empty() ? "" : " | ") + v.dump();
    } else if (s.contains("type") && s["type"].is_array()) {
        for (const auto& v : s["type"]) {
            ojson one = s;
            one["type"] = v;
            t += (t.empty() ? "" : " | ") + ts_type(one, indent);
        }
        return t.empty() ? "any" : t;
    } else {
        const std::string type =
            s.contains("type") && s["type"].is_string() ? s["type"].get<std::string>() : "";
        if (type == "string" || type == "boolean" || type == "null")
            t = type;
        else if (type == "number" || type == "integer")
            t = "number";
        else if (type == "object")
            t = object_type(s, indent + "    ", indent);
        else if (type == "array") {
            const std::string item = s.contains("items") ? ts_type(s["items"], indent) : "any";
            t = (item.find(" | ") != std::string::npos ? "(" + item + ")" : item) + "[]";
        } else
            t = "any";
    }
    if (s.contains("nullable") && s["nullable"] == true && t != "null") t += " | null";
    return t;
}

}  // namespace

std::string harmony_tools_namespace(const std::vector<ToolDef>& tools) {
    std::string out = "## functions\n\nnamespace functions {\n\n";
    for (const ToolDef& t : tools) {
        if (!t.description.empty()) out += comment_lines(t.description, "");
        const ojson& p = t.parameters;
        const bool has_args = p.is_object() && p.contains("properties") && p["properties"].is_object() &&
                              !p["properties"].empty();
        // The argument object's own properties start flush left, as in the guide's examples.
        out += "type " + t.name + " = " +
               (has_args ? "(_: " + object_type(p, "", "") + ") => any;\n" : "() => any;\n");
        out += "\n";
    }
    return out + "} // namespace functions";
}

}  // namespace wo
