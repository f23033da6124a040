// Tool declarations, tool_choice and tool messages of OpenAI requests.
#include "server/tools.h"

#include <regex>
#include <set>

#include "server/http_util.h"

namespace wo {

namespace {

using ojson = nlohmann::ordered_json;

// The JSON-schema shape checks that make a declaration unusable when they fail: the argument
// must be an object schema whose properties are schemas and whose `required` names strings.
void check_schema(const ojson& p, const std::string& f, std::vector<FieldError>& errors) {
    if (!p.is_object()) {
        errors.push_back({f, "type(object)", f + " must be a JSON schema object"});
        return;
    }
    if (p.contains("type") && p["type"] != "object")
        errors.push_back({f + ".type", "one_of(object)",
                          f + ".type must be \"object\" (a function takes one object argument)"});
    if (p.contains("properties")) {
        if (!p["properties"].is_object()) {
            errors.push_back(
                {f + ".properties", "type(object)", f + ".properties must be an object of schemas"});
        } else {
            for (const auto& [k, v] : p["properties"].items())
                if (!v.is_object() && !v.is_boolean())
                    errors.push_back({f + ".properties." + k, "type(object)",
                                      f + ".properties." + k + " must be a schema object"});
        }
    }
    if (p.contains("required")) {
        bool ok = p["required"].is_array();
        if (ok)
            for (const auto& r : p["required"]) ok = ok && r.is_string();
        if (!ok)
            errors.push_back(
                {f + ".required", "type(string[])", f + ".required must be an array of property names"});
    }
}

// Deeper than `limit` levels of arrays/objects; iterative, so a hostile nesting cannot
// exhaust the stack here (the recursive renderers and copies run only after this check).
bool too_deep(const ojson& v, int limit) {
    std::vector<std::pair<const ojson*, int>> todo = {{&v, 0}};
    while (!todo.empty()) {
        auto [x, d] = todo.back();
        todo.pop_back();
        if (!x->is_structured()) continue;
        if (d >= limit) return true;
        for (const auto& c : *x) todo.push_back({&c, d + 1});
    }
    return false;
}

}  // namespace

std::vector<ToolDef> read_tools(const ojson& tools, bool responses_shape, const std::string& field,
                                std::vector<FieldError>& errors) {
    static const std::regex name_re("^[A-Za-z0-9_-]{1,64}$");
    std::vector<ToolDef> out;
    if (tools.is_null()) return out;
    if (!tools.is_array()) {
        errors.push_back({field, "type(array)", field + " must be an array of function tools"});
        return out;
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < tools.size(); ++i) {
        const std::string f = field + "[" + std::to_string(i) + "]";
        const ojson& t = tools[i];
        if (too_deep(t, 32)) {
            errors.push_back({f, "depth(32)", f + " is nested more than 32 levels deep"});
            continue;
        }
        if (!t.is_object() || !t.contains("type") || !t["type"].is_string()) {
            errors.push_back({f + ".type", "required", f + " must be an object with a type"});
            continue;
        }
        if (t["type"] != "function") {
            errors.push_back({f + ".type", "one_of(function)",
                              f + ".type '" + t["type"].get<std::string>() +
                                  "' is not supported: only function tools are"});
            continue;
        }
        const std::string ff = responses_shape ? f : f + ".function";
        const ojson* fn = &t;
        if (!responses_shape) {
            if (!t.contains("function") || !t["function"].is_object()) {
                errors.push_back(
                    {ff, "required", ff + " is required (an object with name, description, parameters)"});
                continue;
            }
            fn = &t["function"];
        }
        ToolDef d;
        if (!fn->contains("name") || !(*fn)["name"].is_string() ||
            !std::regex_match((*fn)["name"].get<std::string>(), name_re)) {
            errors.push_back({ff + ".name", "pattern(^[A-Za-z0-9_-]{1,64}$)",
                              ff + ".name must be 1-64 letters, digits, underscores or dashes"});
            continue;
        }
        d.name = (*fn)["name"].get<std::string>();
        if (!seen.insert(d.name).second) {
            errors.push_back({ff + ".name", "unique", "function '" + d.name + "' is declared twice"});
            continue;
        }
        if (fn->contains("description") && !(*fn)["description"].is_null()) {
            if (!(*fn)["description"].is_string())
                errors.push_back({ff + ".description", "type(string)", ff + ".description must be a string"});
            else
                d.description = (*fn)["description"].get<std::string>();
        }
        if (fn->contains("parameters") && !(*fn)["parameters"].is_null()) {
            const size_t before = errors.size();
            check_schema((*fn)["parameters"], ff + ".parameters", errors);
            if (errors.size() > before) continue;
            d.parameters = (*fn)["parameters"];
        }
        if (!responses_shape) {
            d.declaration = t;
        } else {
            d.declaration = {{"type", "function"}, {"function", {{"name", d.name}}}};
            for (const char* k : {"description", "parameters", "strict"})
                if (fn->contains(k)) d.declaration["function"][k] = (*fn)[k];
        }
        out.push_back(std::move(d));
    }
    return out;
}

ToolChoice read_tool_choice(const nlohmann::json& v, const std::vector<ToolDef>& tools,
                            const std::string& field, std::vector<FieldError>& errors) {
    ToolChoice c;
    if (v.is_null()) return c;
    if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (s == "none")
            c.mode = ToolChoice::Mode::None;
        else if (s == "auto")
            c.mode = ToolChoice::Mode::Auto;
        else if (s == "required")
            c.mode = ToolChoice::Mode::Required;
        else {
            errors.push_back({field, "one_of(none,auto,required,{type:function})",
                              field + " must be none, auto, required or a named function (got '" + s + "')"});
            return c;
        }
    } else if (string_at(v, "type") == "function") {
        // Chat: {type, function:{name}}; Responses: {type, name}.
        const nlohmann::json* n = nullptr;
        if (v.contains("function") && v["function"].is_object() && v["function"].contains("name"))
            n = &v["function"]["name"];
        else if (v.contains("name"))
            n = &v["name"];
        if (!n || !n->is_string()) {
            errors.push_back({field, "required", field + " names no function (function.name)"});
            return c;
        }
        c.mode = ToolChoice::Mode::Named;
        c.name = n->get<std::string>();
        bool known = false;
        for (const auto& t : tools) known = known || t.name == c.name;
        if (!known) {
            errors.push_back(
                {field, "tool_name", field + " names function '" + c.name + "', which is not in tools"});
            return c;
        }
    } else {
        errors.push_back({field, "one_of(none,auto,required,{type:function})",
                          field + " must be none, auto, required or {\"type\":\"function\",...}"});
        return c;
    }
    if (tools.empty() && (c.mode == ToolChoice::Mode::Required || c.mode == ToolChoice::Mode::Named))
        errors.push_back({field, "requires(tools)", field + " requires tools"});
    return c;
}

void resolve_tool_messages(std::vector<ChatMessage>& ms, std::vector<FieldError>& errors) {
    for (size_t i = 0; i < ms.size(); ++i) {
        if (ms[i].role != "tool") continue;
        const std::string f = "messages[" + std::to_string(i) + "]";
        bool found = false;
        for (size_t j = i; j-- > 0 && !found;)
            for (const ToolCall& c : ms[j].tool_calls)
                if (c.id == ms[i].tool_call_id) {
                    ms[i].name = c.name;
                    found = true;
                    break;
                }
        if (!found)
            errors.push_back({f + ".tool_call_id", "tool_call",
                              f + " is a tool result for tool_call_id '" + ms[i].tool_call_id +
                                  "', but no earlier assistant message made that call"});
    }
}

std::string new_call_id() {
    static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::string id = "call_";
    uint64_t r = random_seed(), r2 = random_seed();
    for (int i = 0; i < 24; ++i) {
        uint64_t& x = i < 12 ? r : r2;
        id += a[x % 62];
        x /= 62;
    }
    return id;
}

}  // namespace wo
