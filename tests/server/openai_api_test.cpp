// The OpenAI-compatible routes driven by the real `openai` npm client (tests/golden/
// openai-client.mjs) against `worker-orcd serve`, cross-checked with the native /execute
// stream and the tokenizer; plus request errors in OpenAI's shape.
#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/gguf.h"
#include "server/chat.h"
#include "server/oai_fixture.h"
#include "tokenizer/tokenizer.h"

namespace wo::test {
namespace {

using nlohmann::json;

TEST_F(OpenAiApi, OfficialClientParsesStreamedAndWholeResponses) {
    const std::string nm = std::string(WO_GOLDEN) + "/node_modules";
    if (!std::filesystem::exists(nm + "/openai/package.json")) WO_SKIP_WITHOUT_GOLDENS("openai npm package not installed");
    const std::string out = run_capture("NODE_PATH=" + nm + " node " + WO_SOURCE_DIR + "/tests/golden/openai-client.mjs http://127.0.0.1:" +
                                        std::to_string(server_->port()) + " 2>&1");
    const json r = json::parse(out, nullptr, false);
    ASSERT_FALSE(r.is_discarded()) << out;

    EXPECT_EQ(r["models"], json::array({"tiny-gpt-oss-test"}));
    // Chat: the streamed deltas add up to the whole response (same seed), and usage agrees with
    // the harmony prompt as this tokenizer counts it.
    EXPECT_EQ(r["chat"]["object"], "chat.completion");
    EXPECT_EQ(r["chat"]["role"], "assistant");
    EXPECT_EQ(r["chat"]["finish_reason"], "length");
    EXPECT_EQ(r["chat"]["usage"]["completion_tokens"], 8);
    EXPECT_FALSE(r["chat"]["content"].get<std::string>().empty());
    EXPECT_EQ(r["chat_stream"]["content"], r["chat"]["content"]);
    EXPECT_EQ(r["chat_stream"]["reasoning"], r["chat"]["reasoning"]);
    EXPECT_EQ(r["chat_stream"]["roles"], json::array({"assistant"}));
    EXPECT_EQ(r["chat_stream"]["finish_reason"], "length");
    EXPECT_EQ(r["chat_stream"]["usage"], r["chat"]["usage"]);
    auto file = gguf::File::open(model_);
    auto tok = load_tokenizer(file);
    const std::string prompt = render_harmony({{"system", "You are terse.", ""}, {"user", "Say hello in five words.", ""}}, {});
    EXPECT_EQ(r["chat"]["usage"]["prompt_tokens"], tok->encode(prompt, true, false).size());
    EXPECT_EQ(r["chat"]["usage"]["total_tokens"], r["chat"]["usage"]["prompt_tokens"].get<int>() + 8);

    // Completions: client-parsed text, streamed or whole, equals the native stream's text for
    // the same prompt and sampling.
    EXPECT_EQ(r["completion"]["finish_reason"], "length");
    EXPECT_EQ(r["completion"]["usage"]["completion_tokens"], 6);
    EXPECT_EQ(r["completion_stream"]["text"], r["completion"]["text"]);
    auto native = server_->client().Post(
        "/execute",
        json{{"job_id", "oai-x"}, {"prompt", "The capital of France is"}, {"max_tokens", 6}, {"seed", 7}, {"temperature", 0.7}}.dump(),
        "application/json");
    ASSERT_TRUE(native) << httplib::to_string(native.error());
    std::string text;
    for (const auto& e : parse_sse(native->body))
        if (e.event == "token") text += e.data["t"].get<std::string>();
    EXPECT_EQ(r["completion"]["text"], text);

    EXPECT_EQ(r["bad_request"]["status"], 400);
    EXPECT_EQ(r["bad_request"]["param"], "temperature");
    EXPECT_EQ(r["bad_request"]["name"], "BadRequestError");
}

TEST_F(OpenAiApi, StreamEndsWithDoneAndUnsupportedFieldsAreNamed) {
    std::string raw;
    int status = 0;
    post("/v1/chat/completions",
         {{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "hi"}}}}}}}, {"max_tokens", 2}, {"stream", true}},
         &status, &raw);
    EXPECT_EQ(status, 200);
    ASSERT_GE(raw.size(), 14u);
    EXPECT_EQ(raw.substr(raw.size() - 14), "data: [DONE]\n\n");
    auto events = parse_sse(raw);
    EXPECT_EQ(events.back().data, "[DONE]");
    EXPECT_EQ(events[events.size() - 2].data["choices"][0]["finish_reason"], "length");

    const json msgs = {{{"role", "user"}, {"content", "hi"}}};
    for (const auto& [body, param] : std::vector<std::pair<json, std::string>>{
             {{{"messages", msgs}, {"n", 2}}, "n"},
             {{{"messages", msgs}, {"tools", {{{"type", "function"}}}}}, "tools[0].function"},
             {{{"messages", msgs}, {"presence_penalty", 0.5}}, "presence_penalty"},
             {{{"messages", msgs}, {"reasoning_effort", "max"}}, "reasoning_effort"},
             {{{"messages", json::array()}}, "messages"},
             {{{"messages", {{{"role", "tool"}, {"content", "x"}}}}}, "messages[0].tool_call_id"},
             {{{"messages", {{{"role", "function"}, {"content", "x"}}}}}, "messages[0].role"},
             {{{"messages", msgs}, {"max_tokens", 161}}, "max_tokens"},
         }) {
        const json j = post("/v1/chat/completions", body, &status);
        EXPECT_EQ(status, 400) << body.dump();
        EXPECT_EQ(j["error"]["type"], "invalid_request_error") << body.dump();
        EXPECT_EQ(j["error"]["param"], param) << body.dump();
    }
    const json j = post("/v1/completions", {{"prompt", {"a", "b"}}}, &status);
    EXPECT_EQ(status, 400);
    EXPECT_EQ(j["error"]["param"], "prompt");
}

// On the OpenAI routes max_tokens (and chat's max_completion_tokens) is 1..--ctx (160 here):
// both sides of both ends, on every route and field that takes it.
TEST_F(OpenAiApi, MaxTokensBoundsAreOneAndTheContext) {
    // Long inputs, so a request allowed the whole context fills it after a few tokens.
    auto words = [](int n) {
        std::string s;
        for (int k = 0; k < n; ++k) s += " word";
        return s;
    };
    const json chat = {{"messages", {{{"role", "user"}, {"content", words(80)}}}}, {"temperature", 0}};
    const json cmpl = {{"prompt", words(140)}, {"temperature", 0}};
    struct Route {
        std::string path, field;
        json base;
    };
    for (const Route& rt : {Route{"/v1/completions", "max_tokens", cmpl}, Route{"/v1/chat/completions", "max_tokens", chat},
                            Route{"/v1/chat/completions", "max_completion_tokens", chat}}) {
        const std::string what = rt.path + " " + rt.field;
        int status = 0;
        for (int bad : {0, 161}) {
            json b = rt.base;
            b[rt.field] = bad;
            const json j = post(rt.path, b, &status);
            ASSERT_EQ(status, 400) << what << " " << bad << " " << j.dump();
            EXPECT_EQ(j["error"]["type"], "invalid_request_error") << what;
            EXPECT_EQ(j["error"]["param"], rt.field) << what << " " << bad;
        }
        json b = rt.base;
        b[rt.field] = 1;
        json j = post(rt.path, b, &status);
        ASSERT_EQ(status, 200) << what << " " << j.dump();
        EXPECT_EQ(j["usage"]["completion_tokens"], 1) << what;
        EXPECT_EQ(j["choices"][0]["finish_reason"], "length") << what;
        b[rt.field] = 160;
        j = post(rt.path, b, &status);
        ASSERT_EQ(status, 200) << what << " " << j.dump();
        // Ended by the context, not by max_tokens: the last sampled token is returned but never
        // fed back, so prompt + completion is one more than the context.
        EXPECT_EQ(j["usage"]["total_tokens"], 161) << what;
        EXPECT_LT(j["usage"]["completion_tokens"].get<int>(), 160) << what;
    }
}

TEST_F(OpenAiApi, ChatStopsAtContextAndCountsUsage) {
    int status = 0;
    // Without max_tokens a chat runs until the context is full: 160 minus the prompt.
    const json j = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "go"}}}}, {"temperature", 0}}, &status);
    ASSERT_EQ(status, 200) << j.dump();
    const int p = j["usage"]["prompt_tokens"], c = j["usage"]["completion_tokens"];
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(p + c, 160);
}

TEST(OpenAiTemplates, ChatMlModelUsesItsGgufTemplateAndNoTemplateIsA400) {
    const std::string chat = tiny_qwen2_model(true), plain = tiny_qwen2_model(false);
    if (chat.empty()) WO_SKIP_WITHOUT_GOLDENS("Qwen tokenizer not installed (run scripts/goldens)");
    auto file = gguf::File::open(chat);
    auto tok = load_tokenizer(file);
    ASSERT_FALSE(tok->chat_template.empty());
    {
        ServeProcess p(chat, {"--threads", "1", "--ctx", "256", "--parallel", "1"});
        ASSERT_GT(p.port(), 0) << p.log_text();
        const json body = {{"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}},
                           {"max_tokens", 3}, {"temperature", 0}};
        auto r = p.client().Post("/v1/chat/completions", body.dump(), "application/json");
        ASSERT_TRUE(r) << httplib::to_string(r.error());
        ASSERT_EQ(r->status, 200) << r->body;
        const json j = json::parse(r->body);
        // The ChatML text the Qwen template renders for this conversation, written by hand.
        const std::string want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
        EXPECT_EQ(j["usage"]["prompt_tokens"], tok->encode(want, true, false).size());
        EXPECT_EQ(j["usage"]["completion_tokens"], 3);
        EXPECT_FALSE(j["choices"][0]["message"].contains("reasoning_content"));
    }
    {
        ServeProcess p(plain, {"--threads", "1", "--ctx", "256", "--parallel", "1"});
        ASSERT_GT(p.port(), 0) << p.log_text();
        auto r = p.client().Post("/v1/chat/completions", json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}}.dump(),
                                 "application/json");
        ASSERT_TRUE(r) << httplib::to_string(r.error());
        EXPECT_EQ(r->status, 400) << r->body;
        EXPECT_NE(json::parse(r->body)["error"]["message"].get<std::string>().find("no chat template"), std::string::npos)
            << r->body;
        // Completions need no template.
        r = p.client().Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}}.dump(), "application/json");
        ASSERT_TRUE(r) << httplib::to_string(r.error());
        EXPECT_EQ(r->status, 200) << r->body;
    }
}


}  // namespace
}  // namespace wo::test
