// Chat prompt rendering against the official templates rendered by @huggingface/jinja
// (tests/golden/gen-chat-templates.mjs), and the harmony output parser on hand-written streams.
#include <gtest/gtest.h>

#include "require_goldens.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "server/chat.h"
#include "util/error.h"

namespace wo {
namespace {

using nlohmann::json;

std::vector<ChatMessage> messages_of(const json& a) {
    std::vector<ChatMessage> out;
    for (const auto& m : a) out.push_back({m["role"], m["content"], m.value("thinking", "")});
    return out;
}

TEST(ChatTemplates, MatchTheOfficialTemplatesRenderedByJinja) {
    const std::string path = std::string(WO_GOLDEN) + "/chat/templates.json";
    if (!std::filesystem::exists(path)) WO_SKIP_WITHOUT_GOLDENS(path << " missing (run scripts/goldens)");
    std::ifstream in(path);
    const json g = json::parse(in);
    int n = 0;
    std::set<std::string> families;
    for (const auto& c : g["cases"]) {
        const auto msgs = messages_of(c["messages"]);
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
            got = render_template(tpl, msgs, c["bos"]);
        }
        EXPECT_EQ(got, c["rendered"].get<std::string>()) << c["template"] << " " << c["messages"].dump();
        families.insert(c["family"]);
        ++n;
    }
    EXPECT_GE(n, 30);
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
