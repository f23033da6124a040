// Chat prompt rendering against the official templates rendered by @huggingface/jinja
// (tests/golden/gen-chat-templates.mjs), and the harmony output parser on hand-written streams.
#include <gtest/gtest.h>

#include "require_goldens.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "server/chat.h"
#include "server/tools.h"
#include "util/error.h"

namespace wo {
namespace {

using nlohmann::json;

using ojson = nlohmann::ordered_json;

// Golden messages to ChatMessages; tool-call arguments (objects for the templates) become
// JSON text, as an OpenAI client sends them.
std::vector<ChatMessage> messages_of(const ojson& a) {
    std::vector<ChatMessage> out;
    for (const auto& m : a) {
        ChatMessage cm{m["role"], m["content"], m.value("thinking", "")};
        if (m.contains("tool_calls"))
            for (const auto& c : m["tool_calls"])
                cm.tool_calls.push_back({c["id"], c["function"]["name"], c["function"]["arguments"].dump()});
        cm.tool_call_id = m.value("tool_call_id", "");
        out.push_back(std::move(cm));
    }
    return out;
}

TEST(ChatTemplates, MatchTheOfficialTemplatesRenderedByJinja) {
    const std::string path = std::string(WO_GOLDEN) + "/chat/templates.json";
    if (!std::filesystem::exists(path)) WO_SKIP_WITHOUT_GOLDENS(path << " missing (run scripts/goldens)");
    std::ifstream in(path);
    const ojson g = ojson::parse(in);  // key order matters: tools are printed as JSON
    int n = 0, with_tools = 0;
    std::set<std::string> families;
    for (const auto& c : g["cases"]) {
        auto msgs = messages_of(c["messages"]);
        std::vector<ToolDef> tools;
        if (c.contains("tools")) {
            std::vector<FieldError> errors;
            tools = read_tools(c["tools"], false, "tools", errors);
            resolve_tool_messages(msgs, errors);
            ASSERT_TRUE(errors.empty()) << errors[0].message;
            ++with_tools;
        }
        std::string got;
        if (c["family"] == "harmony") {
            HarmonyOptions o;
            o.current_date = "2025-06-28";
            o.reasoning_effort = c["options"].value("reasoning_effort", "medium");
            got = render_harmony(msgs, o);
        } else {
            const std::string tpl = g["templates"][c["template"].get<std::string>()];
            const TemplateFamily want = c["family"] == "chatml"   ? TemplateFamily::ChatML
                                        : c["family"] == "llama3" ? TemplateFamily::Llama3
                                                                  : TemplateFamily::Phi3;
            EXPECT_EQ(detect_template(tpl), want) << c["template"];
            got = render_template(tpl, msgs, c["bos"], tools);
        }
        EXPECT_EQ(got, c["rendered"].get<std::string>()) << c["template"] << " " << c["messages"].dump();
        families.insert(c["family"]);
        ++n;
    }
    EXPECT_GE(n, 30);
    EXPECT_GE(with_tools, 7);
    EXPECT_EQ(families.size(), 4u);
}

TEST(ChatTemplates, UnknownTemplateIsAClearError) {
    try {
        detect_template("{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::INVALID_REQUEST);
        EXPECT_NE(std::string(e.what()).find("ChatML, Llama 3, Phi-3"), std::string::npos);
    }
    EXPECT_THROW(detect_template(""), Error);
}

TEST(Harmony, ChannelMarkupInAssistantContentIsRejected) {
    std::vector<ChatMessage> m = {{"user", "hi", ""}, {"assistant", "<|channel|>final<|message|>x", ""}, {"user", "y", ""}};
    EXPECT_THROW(render_harmony(m, {}), Error);
}

// Feeds `text` in pieces of `step` bytes and returns (reasoning, content).
std::pair<std::string, std::string> parse(const std::string& text, size_t step) {
    HarmonyParser p;
    std::string r, c;
    for (size_t i = 0; i < text.size(); i += step) {
        auto d = p.push(text.substr(i, step));
        r += d.reasoning;
        c += d.content;
    }
    auto d = p.flush();
    return {r + d.reasoning, c + d.content};
}

TEST(HarmonyParser, SplitsAnalysisFromFinalWhateverTheChunking) {
    const std::string out =
        "<|channel|>analysis<|message|>User says hi. Reply.<|end|><|start|>assistant<|channel|>final<|message|>Hello! <3";
    for (size_t step : {1, 2, 3, 7, 1000}) {
        auto [r, c] = parse(out, step);
        EXPECT_EQ(r, "User says hi. Reply.") << step;
        EXPECT_EQ(c, "Hello! <3") << step;
    }
}

TEST(HarmonyParser, OutputWithoutChannelMarkupIsContent) {
    for (size_t step : {1, 4, 100}) {
        EXPECT_EQ(parse("Just an answer.", step), std::make_pair(std::string(), std::string("Just an answer.")));
        EXPECT_EQ(parse("<b>bold</b>", step), std::make_pair(std::string(), std::string("<b>bold</b>")));
        // Stray specials and noise never throw; they come out as content.
        EXPECT_EQ(parse("<|end|><|start|>x", step).second, "<|end|><|start|>x");
    }
    EXPECT_EQ(parse("<", 1).second, "<");
}

// A message body is held back while its tail could still become <|end|> (or another marker);
// when the output ends there, flush() gives that tail to the message's channel.
TEST(HarmonyParser, FlushReleasesTheHeldBackTailToItsChannel) {
    const std::string final_msg = "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>";
    for (size_t step : {1, 2, 5, 1000}) {
        for (const std::string tail : {"a <", "a <|", "a <|en", "a <|end|"}) {
            auto [r, c] = parse(final_msg + tail, step);
            EXPECT_EQ(r, "Think.") << step << " " << tail;
            EXPECT_EQ(c, tail) << step;
        }
        // In the analysis channel the tail is reasoning, not content.
        auto [r, c] = parse("<|channel|>analysis<|message|>so x <|", step);
        EXPECT_EQ(r, "so x <|") << step;
        EXPECT_EQ(c, "") << step;
    }
    // What push() returns and what flush() adds are the whole message, nothing twice.
    HarmonyParser p;
    auto d = p.push(final_msg + "a <");
    EXPECT_EQ(d.content, "a ");
    d = p.flush();
    EXPECT_EQ(d.content, "<");
    EXPECT_EQ(d.reasoning, "");
}

TEST(HarmonyParser, CommentaryIsContentAndEndMarkersAreDropped) {
    auto [r, c] = parse("<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant<|channel|>final<|message|>Done<|return|>", 5);
    EXPECT_EQ(r, "");
    EXPECT_EQ(c, "Checking.Done");
    // A header that never reaches <|message|> within 256 bytes is not harmony.
    const std::string noise = "<|channel|>" + std::string(300, 'z');
    EXPECT_EQ(parse(noise, 10).second, noise);
}

}  // namespace
}  // namespace wo

namespace wo {
namespace {

// The three functions of the harmony format guide's function-calling example
// (openai/harmony docs/format.md), in the OpenAI tools shape.
std::vector<ToolDef> guide_tools() {
    using oj = nlohmann::ordered_json;
    const oj format = {{"type", "string"}, {"enum", {"celsius", "fahrenheit"}}, {"default", "celsius"}};
    return {
        {"get_location", "Gets the location of the user.", nullptr},
        {"get_current_weather", "Gets the current weather in the provided location.",
         oj{{"type", "object"},
            {"properties", {{"location", {{"type", "string"}, {"description", "The city and state, e.g. San Francisco, CA"}}},
                            {"format", format}}},
            {"required", {"location"}}}},
        {"get_multiple_weathers", "Gets the current weather in the provided list of locations.",
         oj{{"type", "object"},
            {"properties", {{"locations", {{"type", "array"}, {"items", {{"type", "string"}}},
                                           {"description", "List of city and state, e.g. [\"San Francisco, CA\", \"New York, NY\"]"}}},
                            {"format", format}}},
            {"required", {"locations"}}}},
    };
}

// Written out by hand from the guide's "complete input example including the definition of
// two functions" (three, in fact).
const char* kGuidePrefix =
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: high\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.\n"
    "Calls to these tools must go to the commentary channel: 'functions'.<|end|>"
    "<|start|>developer<|message|># Instructions\n\nUse a friendly tone.\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n"
    "// Gets the location of the user.\ntype get_location = () => any;\n\n"
    "// Gets the current weather in the provided location.\ntype get_current_weather = (_: {\n"
    "// The city and state, e.g. San Francisco, CA\nlocation: string,\n"
    "format?: \"celsius\" | \"fahrenheit\", // default: celsius\n}) => any;\n\n"
    "// Gets the current weather in the provided list of locations.\ntype get_multiple_weathers = (_: {\n"
    "// List of city and state, e.g. [\"San Francisco, CA\", \"New York, NY\"]\nlocations: string[],\n"
    "format?: \"celsius\" | \"fahrenheit\", // default: celsius\n}) => any;\n\n"
    "} // namespace functions<|end|><|start|>user<|message|>What is the weather like in SF?<|end|>";

HarmonyOptions guide_options() {
    HarmonyOptions o;
    o.current_date = "2025-06-28";
    o.reasoning_effort = "high";
    o.tools = guide_tools();
    return o;
}

TEST(HarmonyTools, DeclaresFunctionsAsTheFormatGuideShows) {
    const std::vector<ChatMessage> m = {{"developer", "Use a friendly tone.", ""}, {"user", "What is the weather like in SF?", ""}};
    EXPECT_EQ(render_harmony(m, guide_options()), std::string(kGuidePrefix) + "<|start|>assistant");
}

TEST(HarmonyTools, ToolCallAndResultRenderAsInTheGuideKeepingTheCallsReasoning) {
    ChatMessage call{"assistant", "", "Need to use function get_weather."};
    call.tool_calls = {{"call_1", "get_weather", "{\"location\":\"San Francisco\"}"}};
    ChatMessage result{"tool", "{\"sunny\": true, \"temperature\": 20}", ""};
    result.tool_call_id = "call_1";
    result.name = "get_weather";
    const std::vector<ChatMessage> m = {{"developer", "Use a friendly tone.", ""}, {"user", "What is the weather like in SF?", ""}, call, result};
    EXPECT_EQ(render_harmony(m, guide_options()),
              std::string(kGuidePrefix) +
                  "<|start|>assistant<|channel|>analysis<|message|>Need to use function get_weather.<|end|>"
                  "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
                  "{\"location\":\"San Francisco\"}<|call|>"
                  "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"sunny\": true, \"temperature\": 20}<|end|>"
                  "<|start|>assistant");

    // Once a final answer follows, the call's reasoning is dropped like any earlier reasoning.
    std::vector<ChatMessage> later = m;
    later.push_back({"assistant", "It is sunny.", "The tool says sunny."});
    later.push_back({"user", "Thanks", ""});
    const std::string r = render_harmony(later, guide_options());
    EXPECT_EQ(r.find("Need to use function"), std::string::npos);
    EXPECT_EQ(r.find("The tool says"), std::string::npos);
    EXPECT_NE(r.find("<|start|>assistant<|channel|>final<|message|>It is sunny.<|end|><|start|>user<|message|>Thanks<|end|>"),
              std::string::npos);
    EXPECT_NE(r.find("to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"San Francisco\"}<|call|>"), std::string::npos);
}

TEST(HarmonyTools, NestedObjectsNullableAndUnions) {
    using oj = nlohmann::ordered_json;
    ToolDef t{"book", "", oj{{"type", "object"},
                             {"properties", {{"when", {{"type", "object"}, {"properties", {{"day", {{"type", "integer"}}}}}, {"required", {"day"}}}},
                                             {"note", {{"type", "string"}, {"nullable", true}}},
                                             {"id", {{"type", {"string", "integer"}}}},
                                             {"tags", {{"type", "array"}, {"items", {{"enum", {"a", "b"}}}}}}}}}};
    EXPECT_EQ(harmony_tools_namespace({t}),
              "## functions\n\nnamespace functions {\n\ntype book = (_: {\nwhen?: {\n    day: number,\n},\n"
              "note?: string | null,\nid?: string | number,\ntags?: (\"a\" | \"b\")[],\n}) => any;\n\n} // namespace functions");
}

// Feeds `text` in pieces of `step` bytes; returns (reasoning, content, [(name, arguments)]).
struct Parsed {
    std::string reasoning, content;
    std::vector<std::pair<std::string, std::string>> calls;
};
Parsed parse_tools(const std::string& text, size_t step, bool tools = true) {
    HarmonyParser p(tools);
    Parsed out;
    auto take = [&](const HarmonyParser::Delta& d) {
        out.reasoning += d.reasoning;
        out.content += d.content;
        for (const auto& c : d.calls) {
            if (!c.name.empty()) {
                EXPECT_EQ(c.index, static_cast<int>(out.calls.size()));
                out.calls.push_back({c.name, ""});
            }
            EXPECT_EQ(c.index + 1, static_cast<int>(out.calls.size())) << "arguments for a call never opened";
            out.calls.back().second += c.arguments;
        }
    };
    for (size_t i = 0; i < text.size(); i += step) take(p.push(text.substr(i, step)));
    take(p.flush());
    return out;
}

TEST(HarmonyParser, FunctionCallFromTheGuideWhateverTheChunking) {
    // The guide's "Receiving tool calls" output; <|call|> ends generation, so the text stops before it.
    const std::string out =
        "<|channel|>analysis<|message|>Need to use function get_weather.<|end|><|start|>assistant<|channel|>commentary "
        "to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"San Francisco\"}";
    for (size_t step : {1, 2, 5, 13, 1000}) {
        const Parsed p = parse_tools(out, step);
        EXPECT_EQ(p.reasoning, "Need to use function get_weather.") << step;
        EXPECT_EQ(p.content, "") << step;
        ASSERT_EQ(p.calls.size(), 1u) << step;
        EXPECT_EQ(p.calls[0].first, "get_weather");
        EXPECT_EQ(p.calls[0].second, "{\"location\":\"San Francisco\"}");
    }
    // The same with the call token still in the text, and with the recipient in the role part
    // of the header (the guide: "the recipient might be defined in the role or channel section").
    Parsed p = parse_tools(out + "<|call|>", 3);
    ASSERT_EQ(p.calls.size(), 1u);
    EXPECT_EQ(p.calls[0].second, "{\"location\":\"San Francisco\"}");
    p = parse_tools(" to=functions.get_location<|channel|>commentary json<|message|>{}", 4);
    ASSERT_EQ(p.calls.size(), 1u);
    EXPECT_EQ(p.calls[0], std::make_pair(std::string("get_location"), std::string("{}")));
}

TEST(HarmonyParser, PreambleThenTwoCallsAndCallsOffWhenNoTools) {
    const std::string out =
        "<|channel|>commentary<|message|>Checking two things.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.a <|constrain|>json<|message|>{\"x\":1}<|call|>"
        "<|start|>assistant<|channel|>commentary to=functions.b<|constrain|>json<|message|>{}<|call|>";
    Parsed p = parse_tools(out, 7);
    EXPECT_EQ(p.content, "Checking two things.");
    ASSERT_EQ(p.calls.size(), 2u);
    EXPECT_EQ(p.calls[0], std::make_pair(std::string("a"), std::string("{\"x\":1}")));
    EXPECT_EQ(p.calls[1], std::make_pair(std::string("b"), std::string("{}")));
    // Without tools offered, a call is just commentary text.
    p = parse_tools(out, 7, /*tools=*/false);
    EXPECT_TRUE(p.calls.empty());
    EXPECT_EQ(p.content, "Checking two things.{\"x\":1}{}");
}

}  // namespace
}  // namespace wo

namespace wo {
namespace {

std::pair<std::string, std::vector<std::pair<std::string, std::string>>> parse_text_tools(ToolFormat f, const std::string& text,
                                                                                           size_t step) {
    TextToolParser p(f);
    std::string content;
    std::vector<std::pair<std::string, std::string>> calls;
    auto take = [&](const HarmonyParser::Delta& d) {
        content += d.content;
        for (const auto& c : d.calls) calls.push_back({c.name, c.arguments});
    };
    for (size_t i = 0; i < text.size(); i += step) take(p.push(text.substr(i, step)));
    take(p.flush());
    return {content, calls};
}

TEST(TextToolParser, QwenToolCallBlocksAmongContent) {
    const std::string out =
        "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Rome\"}}\n</tool_call>\n"
        "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
    for (size_t step : {1, 3, 8, 1000}) {
        auto [content, calls] = parse_text_tools(ToolFormat::QwenXml, out, step);
        EXPECT_EQ(content, "Checking.\n\n") << step;
        ASSERT_EQ(calls.size(), 2u) << step;
        EXPECT_EQ(calls[0], std::make_pair(std::string("get_weather"), std::string("{\"location\":\"Rome\"}")));
        EXPECT_EQ(calls[1], std::make_pair(std::string("get_time"), std::string("{}")));
    }
    // Not a call: text stays content, including a block that is not call JSON; "<tool" alone too.
    auto [content, calls] = parse_text_tools(ToolFormat::QwenXml, "a <tool_call>oops</tool_call> b <tool", 2);
    EXPECT_TRUE(calls.empty());
    EXPECT_EQ(content, "a <tool_call>oops</tool_call> b <tool");
    // A reply cut at the end of turn before the closing tag still yields its call.
    std::tie(content, calls) = parse_text_tools(ToolFormat::QwenXml, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n", 5);
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].second, "{\"x\":1}");
}

TEST(TextToolParser, LlamaJsonReplyIsACallPlainTextIsNot) {
    for (size_t step : {1, 4, 1000}) {
        auto [content, calls] =
            parse_text_tools(ToolFormat::LlamaJson, "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Oslo\"}}", step);
        EXPECT_EQ(content, "");
        ASSERT_EQ(calls.size(), 1u);
        EXPECT_EQ(calls[0], std::make_pair(std::string("get_weather"), std::string("{\"location\":\"Oslo\"}")));
    }
    auto [content, calls] = parse_text_tools(ToolFormat::LlamaJson, "<|python_tag|>{\"name\": \"f\", \"parameters\": {}}", 3);
    ASSERT_EQ(calls.size(), 1u);
    std::tie(content, calls) = parse_text_tools(ToolFormat::LlamaJson, "It is cold {really}.", 3);
    EXPECT_TRUE(calls.empty());
    EXPECT_EQ(content, "It is cold {really}.");
    std::tie(content, calls) = parse_text_tools(ToolFormat::LlamaJson, "{\"not\": \"a call\"}", 3);
    EXPECT_TRUE(calls.empty());
    EXPECT_EQ(content, "{\"not\": \"a call\"}");
}

TEST(ChatTemplates, ToolsWithATemplateWithoutToolFormatAreAClearError) {
    const std::string path = std::string(WO_GOLDEN) + "/chat/templates.json";
    if (!std::filesystem::exists(path)) WO_SKIP_WITHOUT_GOLDENS(path << " missing (run scripts/goldens)");
    std::ifstream in(path);
    const json g = json::parse(in);
    EXPECT_EQ(template_tool_format(g["templates"]["qwen2.5"]), ToolFormat::QwenXml);
    EXPECT_EQ(template_tool_format(g["templates"]["llama3.1"]), ToolFormat::LlamaJson);
    for (const char* name : {"llama3", "phi3.5"}) {
        EXPECT_EQ(template_tool_format(g["templates"][name]), ToolFormat::None) << name;
        try {
            render_template(g["templates"][name], {{"user", "hi", ""}}, "", {{"f", "", nullptr, nullptr}});
            FAIL() << name;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), Code::INVALID_REQUEST);
            EXPECT_NE(std::string(e.what()).find("no tool-call format"), std::string::npos) << e.what();
        }
    }
}

}  // namespace
}  // namespace wo
