// Function tools (harmony, Qwen2.5), the Responses API, logprobs against the CPU model's own
// logits, reasoning effort and the tokenizer routes, through `worker-orcd serve
// --enable-test-faults` whose X-Test-Script hook scripts the random model's reply; the tool
// loop and the Responses stream are driven by the official `openai` npm client
// (tests/golden/openai-tools.mjs).
#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <tuple>

#include "gguf/gguf.h"
#include "model/model.h"
#include "server/chat.h"
#include "server/http_util.h"
#include "server/oai_fixture.h"
#include "tokenizer/tokenizer.h"

namespace wo::test {
namespace {

using nlohmann::json;

TEST(OpenAiTemplates, Qwen25ToolCallLoopAndToolsOnATemplateWithoutToolFormatIsA400) {
    const std::string golden = std::string(WO_GOLDEN) + "/chat/templates.json";
    if (!std::filesystem::exists(golden)) WO_SKIP_WITHOUT_GOLDENS(golden << " missing (run scripts/goldens)");
    std::ifstream in(golden);
    const std::string tpl = json::parse(in)["templates"]["qwen2.5"];
    const std::string model = tiny_qwen2_model(true, tpl, "qwen2.5");
    if (model.empty()) WO_SKIP_WITHOUT_GOLDENS("Qwen tokenizer not installed (run scripts/goldens)");
    auto file = gguf::File::open(model);
    auto tok = load_tokenizer(file);
    // Raw text keeps the declaration's key order, which the template prints.
    const std::string tools =
        R"([{"type":"function","function":{"name":"get_weather","description":"Gets the weather.","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}}])";
    std::vector<int32_t> script = tok->encode(
        "I will check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>", true, false);
    const auto im_end = tok->find_token("<|im_end|>");
    ASSERT_TRUE(im_end);
    const bool eog = tok->is_eog(*im_end);
    if (eog) script.push_back(*im_end);
    std::string ids;
    for (int32_t id : script) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    ServeProcess p(model, {"--threads", "1", "--ctx", "1024", "--parallel", "1", "--enable-test-faults"});
    ASSERT_GT(p.port(), 0) << p.log_text();
    const httplib::Headers h = {{"X-Test-Script", ids}};
    const std::string first = R"({"messages":[{"role":"user","content":"Weather?"}],"max_tokens":)" + std::to_string(script.size()) +
                              R"(,"tools":)" + tools;
    auto r = p.client().Post("/v1/chat/completions", h, first + "}", "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    ASSERT_EQ(r->status, 200) << r->body;
    json j = json::parse(r->body);
    const json& msg = j["choices"][0]["message"];
    EXPECT_EQ(j["choices"][0]["finish_reason"], eog ? "tool_calls" : "length");
    EXPECT_EQ(msg["content"], "I will check.\n");
    ASSERT_EQ(msg["tool_calls"].size(), 1u) << r->body;
    EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_weather");
    EXPECT_EQ(msg["tool_calls"][0]["function"]["arguments"], "{\"location\":\"Paris\"}");
    // Streamed: content deltas, then the whole call in one delta.
    r = p.client().Post("/v1/chat/completions", h, first + R"(,"stream":true})", "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    std::string content;
    json calls = json::array();
    for (const auto& e : parse_sse(r->body)) {
        if (!e.data.is_object() || e.data["choices"].empty()) continue;
        const json& d = e.data["choices"][0]["delta"];
        if (d.contains("content")) content += d["content"].get<std::string>();
        if (d.contains("tool_calls"))
            for (const auto& c : d["tool_calls"]) calls.push_back(c);
    }
    EXPECT_EQ(content, "I will check.\n");
    ASSERT_EQ(calls.size(), 1u) << r->body;
    EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
    EXPECT_EQ(calls[0]["function"]["arguments"], "{\"location\":\"Paris\"}");
    EXPECT_EQ(calls[0]["id"].get<std::string>().rfind("call_", 0), 0u);

    // The tool result goes back as the Qwen2.5 template renders it (written out by hand).
    const std::string second = R"({"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}],"max_tokens":1,"tools":)" +
                               tools + "}";
    r = p.client().Post("/v1/chat/completions", second, "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    ASSERT_EQ(r->status, 200) << r->body;
    const std::string want =
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\nYou may call one or "
        "more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML "
        "tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Gets the weather.\", "
        "\"parameters\": {\"type\": \"object\", \"properties\": {\"location\": {\"type\": \"string\"}}, \"required\": [\"location\"]}}}\n"
        "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> "
        "XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
        "{\"location\": \"Paris\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n";
    EXPECT_EQ(json::parse(r->body)["usage"]["prompt_tokens"], tok->encode(want, true, false).size());

    // The Qwen3 template of the stock tiny model is not a tool format this worker renders.
    ServeProcess q(tiny_qwen2_model(true), {"--threads", "1", "--ctx", "1024", "--parallel", "1"});
    ASSERT_GT(q.port(), 0) << q.log_text();
    r = q.client().Post("/v1/chat/completions", first + "}", "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 400) << r->body;
    j = json::parse(r->body);
    EXPECT_EQ(j["error"]["param"], "messages");
    EXPECT_NE(j["error"]["message"].get<std::string>().find("no tool-call format"), std::string::npos) << r->body;
}

// Function tools, the Responses API, logprobs and the tokenizer routes, on a server whose test
// hooks let the client script the model's reply (X-Test-Script).
class OpenAiTools : public OpenAiApi {
protected:
    static void SetUpTestSuite() {
        model_ = tiny_gptoss_model();
        if (!model_.empty())
            server_ = new ServeProcess(model_, {"--parallel", "2", "--ctx", "1024", "--threads", "2", "--enable-test-faults"});
    }
};

std::string today() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

TEST_F(OpenAiTools, ToolLoopAndResponsesThroughTheOfficialClient) {
    const std::string nm = std::string(WO_GOLDEN) + "/node_modules";
    if (!std::filesystem::exists(nm + "/openai/package.json")) WO_SKIP_WITHOUT_GOLDENS("openai npm package not installed");
    const std::string out = run_capture("NODE_PATH=" + nm + " node " + WO_SOURCE_DIR + "/tests/golden/openai-tools.mjs http://127.0.0.1:" +
                                        std::to_string(server_->port()) + " 2>&1");
    const json r = json::parse(out, nullptr, false);
    ASSERT_FALSE(r.is_discarded()) << out << server_->log_text();
    const json want_args = "{\"location\":\"Paris\"}";

    // Chat, whole: the call, then the answer to the tool result.
    const json& c = r["chat"];
    EXPECT_EQ(c["finish_reason"], "tool_calls");
    EXPECT_TRUE(c["content"].is_null()) << c.dump();
    EXPECT_EQ(c["reasoning"], "Need the weather.");
    ASSERT_EQ(c["tool_calls"].size(), 1u) << c.dump();
    EXPECT_EQ(c["tool_calls"][0]["type"], "function");
    EXPECT_EQ(c["tool_calls"][0]["id"].get<std::string>().rfind("call_", 0), 0u);
    EXPECT_EQ(c["tool_calls"][0]["function"]["name"], "get_weather");
    EXPECT_EQ(c["tool_calls"][0]["function"]["arguments"], want_args);
    EXPECT_EQ(c["answer"], "It is sunny in Paris.");
    EXPECT_EQ(c["answer_finish"], "stop");
    EXPECT_TRUE(c["answer_tool_calls"].is_null());
    // The second turn's prompt is the harmony transcript written out by hand: tools declared,
    // the call's reasoning kept (no final answer yet), the call, the tool's result.
    const std::string transcript =
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n"
        "Current date: " + today() + "\n\nReasoning: medium\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.\n"
        "Calls to these tools must go to the commentary channel: 'functions'.<|end|>"
        "<|start|>developer<|message|># Tools\n\n## functions\n\nnamespace functions {\n\n// Gets the current weather.\n"
        "type get_weather = (_: {\nlocation: string,\n}) => any;\n\n} // namespace functions<|end|>"
        "<|start|>user<|message|>Weather in Paris?<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Need the weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"Paris\"}<|call|>"
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"sunny\":true}<|end|><|start|>assistant";
    auto file = gguf::File::open(model_);
    auto tok = load_tokenizer(file);
    EXPECT_EQ(c["answer_prompt_tokens"], tok->encode(transcript, true, false).size());

    // Chat, streamed: the first tool-call delta carries id, type and name; later ones append.
    const json& s = r["chat_stream"];
    ASSERT_GE(s["deltas"].size(), 1u) << s.dump();
    EXPECT_EQ(s["deltas"][0]["index"], 0);
    EXPECT_EQ(s["deltas"][0]["type"], "function");
    EXPECT_EQ(s["deltas"][0]["function"]["name"], "get_weather");
    EXPECT_EQ(s["deltas"][0]["id"].get<std::string>().rfind("call_", 0), 0u);
    std::string args;
    for (size_t i = 0; i < s["deltas"].size(); ++i) {
        if (i > 0) {
            EXPECT_FALSE(s["deltas"][i].contains("id")) << s["deltas"][i].dump();
            EXPECT_FALSE(s["deltas"][i]["function"].contains("name")) << s["deltas"][i].dump();
        }
        args += s["deltas"][i]["function"]["arguments"].get<std::string>();
    }
    EXPECT_EQ(args, want_args.get<std::string>());
    EXPECT_GT(s["deltas"].size(), 1u) << "arguments should stream in pieces";
    EXPECT_EQ(s["finish_reason"], "tool_calls");
    EXPECT_EQ(s["reasoning"], "Need the weather.");
    ASSERT_EQ(s["helper_tool_calls"].size(), 1u);
    EXPECT_EQ(s["helper_tool_calls"][0]["function"]["arguments"], want_args);
    EXPECT_EQ(s["helper_finish"], "tool_calls");
    EXPECT_EQ(s["answer"], "It is sunny in Paris.");

    // tool_choice naming a function forces the call.
    EXPECT_EQ(r["named"]["finish_reason"], "tool_calls");
    ASSERT_EQ(r["named"]["tool_calls"].size(), 1u);
    EXPECT_EQ(r["named"]["tool_calls"][0]["function"]["name"], "get_weather");
    EXPECT_EQ(r["named"]["tool_calls"][0]["function"]["arguments"], "{\"location\":\"Rome\"}");

    // Responses: the SDK's stream helper accepted the event sequence and assembled the items.
    const json& rs = r["responses"];
    const json types = rs["types"];
    ASSERT_GE(types.size(), 4u) << rs.dump();
    EXPECT_EQ(types[0], "response.created");
    EXPECT_EQ(types[1], "response.in_progress");
    EXPECT_EQ(types.back(), "response.completed");
    for (const char* t : {"response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
                          "response.reasoning_text.done", "response.function_call_arguments.delta",
                          "response.function_call_arguments.done", "response.output_item.done"})
        EXPECT_NE(std::find(types.begin(), types.end(), t), types.end()) << t;
    EXPECT_EQ(rs["first_status"], "completed");
    ASSERT_EQ(rs["first_output"].size(), 2u) << rs.dump();
    EXPECT_EQ(rs["first_output"][0]["type"], "reasoning");
    EXPECT_EQ(rs["first_output"][0]["content"][0]["text"], "Need the weather.");
    EXPECT_EQ(rs["first_output"][1]["type"], "function_call");
    EXPECT_EQ(rs["first_output"][1]["name"], "get_weather");
    EXPECT_EQ(rs["first_output"][1]["arguments"], want_args);
    EXPECT_EQ(rs["answer"], "It is sunny in Paris.");
    EXPECT_EQ(rs["answer_status"], "completed");
    EXPECT_NE(std::find(rs["types2"].begin(), rs["types2"].end(), "response.output_text.delta"), rs["types2"].end());
    EXPECT_EQ(rs["whole_answer"], "It is sunny in Paris.");
    EXPECT_EQ(rs["whole_output_types"], json::array({"message"}));
    // Same conversation as the chat's second turn, so the same prompt.
    EXPECT_EQ(rs["usage"]["input_tokens"], c["answer_prompt_tokens"]);
    EXPECT_EQ(r["previous"]["status"], 400);
    EXPECT_EQ(r["previous"]["param"], "previous_response_id");
}

TEST_F(OpenAiTools, BadToolsChoicesAndOrphanToolMessagesAre400sInOpenAiShape) {
    const json user = {{"role", "user"}, {"content", "hi"}};
    auto fn = [](json f) { return json{{"type", "function"}, {"function", f}}; };
    // json::array, not `= {fn(...)}`: copy-list-initialising a json from one json is an array of
    // it under gcc but a copy of it under clang (nlohmann's README warns of this).
    const json ok_tools = json::array({fn({{"name", "f"}, {"parameters", {{"type", "object"}, {"properties", json::object()}}}})});
    const json call_msg = {{"role", "assistant"}, {"content", nullptr},
                           {"tool_calls", {{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}}}}};
    for (const auto& [path, body, param] : std::vector<std::tuple<std::string, json, std::string>>{
             {"/v1/chat/completions", {{"messages", {user}}, {"tools", {fn({{"name", "bad name!"}})}}}, "tools[0].function.name"},
             {"/v1/chat/completions", {{"messages", {user}}, {"tools", {fn({{"name", "f"}, {"parameters", {{"type", "string"}}}})}}},
              "tools[0].function.parameters.type"},
             {"/v1/chat/completions",
              {{"messages", {user}}, {"tools", {fn({{"name", "f"}, {"parameters", {{"type", "object"}, {"properties", {1}}}}})}}},
              "tools[0].function.parameters.properties"},
             {"/v1/chat/completions",
              {{"messages", {user}}, {"tools", {fn({{"name", "f"}, {"parameters", {{"type", "object"}, {"required", "x"}}}})}}},
              "tools[0].function.parameters.required"},
             {"/v1/chat/completions", {{"messages", {user}}, {"tools", {{{"type", "code_interpreter"}}}}}, "tools[0].type"},
             {"/v1/chat/completions", {{"messages", {user}}, {"tools", {fn({{"name", "f"}}), fn({{"name", "f"}})}}}, "tools[1].function.name"},
             {"/v1/chat/completions", {{"messages", {user}}, {"tools", "f"}}, "tools"},
             {"/v1/chat/completions",
              {{"messages", {user}}, {"tools", ok_tools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}},
              "tool_choice"},
             {"/v1/chat/completions", {{"messages", {user}}, {"tool_choice", "required"}}, "tool_choice"},
             {"/v1/chat/completions", {{"messages", {user}}, {"tools", ok_tools}, {"tool_choice", "sometimes"}}, "tool_choice"},
             {"/v1/chat/completions", {{"messages", {user, {{"role", "tool"}, {"tool_call_id", "call_9"}, {"content", "x"}}}}},
              "messages[1].tool_call_id"},
             {"/v1/chat/completions",
              {{"messages", {user, call_msg, {{"role", "tool"}, {"tool_call_id", "call_2"}, {"content", "x"}}}}, {"tools", ok_tools}},
              "messages[2].tool_call_id"},
             {"/v1/chat/completions",
              {{"messages", {user, {{"role", "assistant"}, {"tool_calls", {{{"id", "c"}, {"function", {{"name", "f"}, {"arguments", {{"a", 1}}}}}}}}}}}},
              "messages[1].tool_calls[0]"},
             {"/v1/chat/completions", {{"messages", {user}}, {"top_logprobs", 2}}, "top_logprobs"},
             {"/v1/chat/completions", {{"messages", {user}}, {"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs"},
             {"/v1/completions", {{"prompt", "x"}, {"logprobs", -1}}, "logprobs"},
             {"/v1/responses", {{"model", "m"}}, "input"},
             {"/v1/responses", {{"input", "hi"}, {"tools", {{{"type", "function"}, {"name", "a.b"}}}}}, "tools[0].name"},
             {"/v1/responses", {{"input", "hi"}, {"reasoning", {{"effort", "max"}}}}, "reasoning.effort"},
             {"/v1/responses", {{"input", {{{"type", "function_call_output"}, {"call_id", "call_x"}, {"output", "1"}}}}}, "messages[0].tool_call_id"},
             {"/v1/responses", {{"input", {{{"type", "image"}}}}}, "input[0].type"},
             {"/v1/responses", {{"input", "hi"}, {"metadata", {{"a", {{"b", 1}}}}}}, "metadata"},
         }) {
        int status = 0;
        const json j = post(path, body, &status);
        EXPECT_EQ(status, 400) << path << " " << body.dump();
        EXPECT_EQ(j["error"]["type"], "invalid_request_error") << body.dump();
        EXPECT_EQ(j["error"]["param"], param) << j.dump();
        EXPECT_EQ(j["error"]["code"], "INVALID_REQUEST");
        EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
    }
    // Hostile nesting is refused before anything recursive touches it.
    // Built in one pass (prepending in a loop copies ~50 GB, minutes under ASan).
    std::string deep;
    for (int i = 0; i < 100000; ++i) deep += "{\"items\":";
    deep += "{\"type\":\"object\"}" + std::string(100000, '}');
    const std::string raw = R"({"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":)" +
                            deep + "}}}}]}";
    auto deep_r = server_->client().Post("/v1/chat/completions", raw, "application/json");
    ASSERT_TRUE(deep_r) << httplib::to_string(deep_r.error());
    EXPECT_EQ(deep_r->status, 400) << deep_r->body;
    EXPECT_EQ(json::parse(deep_r->body)["error"]["param"], "tools[0]") << deep_r->body.substr(0, 300);

    // A valid conversation with a tool result renders and runs.
    int status = 0;
    const json j = post("/v1/chat/completions",
                        {{"messages", {user, call_msg, {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "42"}}}},
                         {"tools", ok_tools}, {"max_tokens", 2}, {"reasoning_effort", "low"}},
                        &status);
    EXPECT_EQ(status, 200) << j.dump();
}

// log_softmax of the model's logits for `ids` after each prefix from `from` on, computed here
// with the CPU model directly: the reference for the server's logprobs.
std::vector<std::vector<double>> reference_logprobs(const std::string& model, const std::vector<int32_t>& ids, size_t from) {
    auto file = std::make_shared<const gguf::File>(gguf::File::open(model));
    LoadOptions lo;
    lo.n_threads = 1;
    auto m = load_model(file, lo);
    m->reserve(1, 256);
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < ids.size(); ++i) batch.push_back({ids[i], static_cast<int32_t>(i), 0, i + 1 >= from});
    std::vector<float> logits;
    m->forward(batch, logits);
    const size_t V = static_cast<size_t>(m->hparams().n_vocab);
    std::vector<std::vector<double>> out;
    for (size_t r = 0; r * V < logits.size(); ++r) {
        double mx = -1e300, z = 0;
        for (size_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(logits[r * V + v]));
        for (size_t v = 0; v < V; ++v) z += std::exp(logits[r * V + v] - mx);
        std::vector<double> lp(V);
        for (size_t v = 0; v < V; ++v) lp[v] = logits[r * V + v] - mx - std::log(z);
        out.push_back(std::move(lp));
    }
    return out;
}

// Greedy continuation of `ids` by the reference: the generated ids and each position's row.
std::pair<std::vector<int32_t>, std::vector<std::vector<double>>> greedy_reference(const std::string& model, std::vector<int32_t> ids,
                                                                                    int n) {
    const size_t n_prompt = ids.size();
    for (int k = 0; k < n; ++k) {
        const auto row = reference_logprobs(model, ids, ids.size()).back();
        ids.push_back(static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin()));
    }
    auto rows = reference_logprobs(model, ids, n_prompt);
    rows.pop_back();  // the row after the last generated token
    return {std::vector<int32_t>(ids.begin() + static_cast<long>(n_prompt), ids.end()), rows};
}

std::vector<size_t> top_ids(const std::vector<double>& row, size_t n) {
    std::vector<size_t> order(row.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + static_cast<long>(n), order.end(),
                      [&](size_t a, size_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    order.resize(n);
    return order;
}

std::vector<uint8_t> bytes_of(const json& a) {
    std::vector<uint8_t> out;
    for (const auto& b : a) out.push_back(static_cast<uint8_t>(b.get<int>()));
    return out;
}
std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

TEST_F(OpenAiTools, LogprobsAreTheRawDistributionOfTheModel) {
    auto file = gguf::File::open(model_);
    auto tok = load_tokenizer(file);
    int status = 0;
    // Chat, greedy: every entry and its top 5 against log_softmax of the reference logits.
    const std::vector<ChatMessage> msgs = {{"user", "The capital of France is", ""}};
    const json j = post("/v1/chat/completions",
                        {{"messages", {{{"role", "user"}, {"content", "The capital of France is"}}}}, {"max_tokens", 4},
                         {"temperature", 0}, {"logprobs", true}, {"top_logprobs", 5}},
                        &status);
    ASSERT_EQ(status, 200) << j.dump();
    const json& content = j["choices"][0]["logprobs"]["content"];
    ASSERT_EQ(content.size(), 4u) << j.dump();
    auto [gen, rows] = greedy_reference(model_, tok->encode(render_harmony(msgs, {}), true, false), 4);
    for (size_t k = 0; k < 4; ++k) {
        const auto& row = rows[k];
        EXPECT_EQ(bytes_of(content[k]["bytes"]), bytes_of(tok->token_bytes(gen[k]))) << k;
        EXPECT_NEAR(content[k]["logprob"].get<double>(), row[static_cast<size_t>(gen[k])], 2e-3) << k;
        const auto want = top_ids(row, 5);
        const json& top = content[k]["top_logprobs"];
        ASSERT_EQ(top.size(), 5u);
        double sum = 0;
        for (size_t t = 0; t < 5; ++t) {
            EXPECT_EQ(bytes_of(top[t]["bytes"]), bytes_of(tok->token_bytes(static_cast<int32_t>(want[t])))) << k << " " << t;
            EXPECT_NEAR(top[t]["logprob"].get<double>(), row[want[t]], 2e-3);
            sum += std::exp(top[t]["logprob"].get<double>());
        }
        EXPECT_LE(sum, 1.0 + 1e-6);
    }

    // Completions: the legacy arrays, same reference.
    const std::string prompt = "The capital of France is";
    const json c = post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 3}, {"temperature", 0}, {"logprobs", 2}}, &status);
    ASSERT_EQ(status, 200) << c.dump();
    const json& lp = c["choices"][0]["logprobs"];
    ASSERT_EQ(lp["tokens"].size(), 3u) << c.dump();
    std::tie(gen, rows) = greedy_reference(model_, tok->encode(prompt, true, true), 3);
    int offset = 0;
    for (size_t k = 0; k < 3; ++k) {
        EXPECT_EQ(lp["tokens"][k], utf8_lossy(tok->token_bytes(gen[k])));
        EXPECT_NEAR(lp["token_logprobs"][k].get<double>(), rows[k][static_cast<size_t>(gen[k])], 2e-3);
        ASSERT_GE(lp["top_logprobs"][k].size(), 1u);
        double sum = 0, best = -1e9;
        for (const auto& [piece, l] : lp["top_logprobs"][k].items()) {
            sum += std::exp(l.get<double>());
            best = std::max(best, l.get<double>());
        }
        EXPECT_LE(sum, 1.0 + 1e-6);
        EXPECT_NEAR(best, rows[k][top_ids(rows[k], 1)[0]], 2e-3);
        EXPECT_EQ(lp["text_offset"][k], offset);
        offset += static_cast<int>(tok->token_bytes(gen[k]).size());
    }

    // Chat: logprobs of sampled tokens (temperature 0.9) are still of the raw distribution, so
    // each is at most the top entry, and streamed entries equal the whole response's.
    const json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 6}, {"temperature", 0.9}, {"seed", 3},
                       {"logprobs", true}, {"top_logprobs", 3}};
    const json whole = post("/v1/chat/completions", body, &status);
    ASSERT_EQ(status, 200) << whole.dump();
    const json& sampled = whole["choices"][0]["logprobs"]["content"];
    ASSERT_EQ(sampled.size(), 6u) << whole.dump();
    std::string joined;
    for (const auto& e : sampled) {
        ASSERT_EQ(e["top_logprobs"].size(), 3u);
        double sum = 0;
        for (const auto& t : e["top_logprobs"]) sum += std::exp(t["logprob"].get<double>());
        EXPECT_LE(sum, 1.0 + 1e-6);
        EXPECT_LE(e["logprob"].get<double>(), e["top_logprobs"][0]["logprob"].get<double>() + 1e-6);
        EXPECT_GE(e["top_logprobs"][0]["logprob"].get<double>(), e["top_logprobs"][1]["logprob"].get<double>());
        EXPECT_LT(e["logprob"].get<double>(), 0.0 + 1e-9);
        std::string bytes;
        for (const auto& b : e["bytes"]) bytes += static_cast<char>(b.get<int>());
        joined += bytes;
    }
    // The entries are the reply's tokens (where their bytes are whole characters, the text
    // decodes the same; partial ones come out as U+FFFD in content).
    size_t n = 0;
    if (utf8_length(joined, n)) EXPECT_EQ(joined, whole["choices"][0]["message"]["content"].get<std::string>());
    json sbody = body;
    sbody["stream"] = true;
    std::string raw;
    post("/v1/chat/completions", sbody, &status, &raw);
    json streamed = json::array();
    for (const auto& e : parse_sse(raw))
        if (e.data.is_object() && !e.data["choices"].empty() && e.data["choices"][0].contains("logprobs") &&
            e.data["choices"][0]["logprobs"].is_object())
            for (const auto& x : e.data["choices"][0]["logprobs"]["content"]) streamed.push_back(x);
    EXPECT_EQ(streamed, sampled);
}

TEST_F(OpenAiTools, ToolChoiceNoneLeavesToolsOutAndRequiredForcesACall) {
    const json user = {{"role", "user"}, {"content", "Weather in Paris?"}};
    const json tools = {{{"type", "function"},
                         {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}, {"properties", {{"location", {{"type", "string"}}}}}}}}}}};
    int status = 0;
    const json plain = post("/v1/chat/completions", {{"messages", {user}}, {"max_tokens", 1}}, &status);
    ASSERT_EQ(status, 200);
    const json none = post("/v1/chat/completions", {{"messages", {user}}, {"max_tokens", 1}, {"tools", tools}, {"tool_choice", "none"}}, &status);
    ASSERT_EQ(status, 200) << none.dump();
    EXPECT_EQ(none["usage"]["prompt_tokens"], plain["usage"]["prompt_tokens"]);
    const json with = post("/v1/chat/completions", {{"messages", {user}}, {"max_tokens", 1}, {"tools", tools}}, &status);
    EXPECT_GT(with["usage"]["prompt_tokens"].get<int>(), plain["usage"]["prompt_tokens"].get<int>());

    // required: the reply starts at "to=functions." and the model (scripted) names the function.
    auto file = gguf::File::open(model_);
    auto tok = load_tokenizer(file);
    std::string ids;
    for (int32_t id : tok->encode("get_weather <|constrain|>json<|message|>{\"location\":\"Oslo\"}<|call|>", true, false))
        ids += (ids.empty() ? "" : ",") + std::to_string(id);
    const json body = {{"messages", {user}}, {"max_tokens", 32}, {"tools", tools}, {"tool_choice", "required"}};
    auto r = server_->client().Post("/v1/chat/completions", {{"X-Test-Script", ids}}, body.dump(), "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    ASSERT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
    ASSERT_EQ(j["choices"][0]["message"]["tool_calls"].size(), 1u) << r->body;
    EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
    EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"location\":\"Oslo\"}");
    EXPECT_EQ(j["usage"]["prompt_tokens"], with["usage"]["prompt_tokens"].get<size_t>() +
                                               tok->encode("<|channel|>commentary to=functions.", true, false).size());
    // A bad script is a 400 naming the header.
    r = server_->client().Post("/v1/chat/completions", {{"X-Test-Script", "1,x"}}, body.dump(), "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 400) << r->body;
    EXPECT_EQ(json::parse(r->body)["error"]["param"], "X-Test-Script");
}

TEST_F(OpenAiTools, ReasoningEffortReachesTheSystemMessage) {
    // The level is one token of the system message: the same prompt length, but a different
    // prompt, so the (raw, greedy) first-token log-probability differs; the same level repeats.
    auto first = [&](const json& extra) {
        json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 1}, {"temperature", 0}, {"logprobs", true}};
        body.update(extra);
        int status = 0;
        const json j = post("/v1/chat/completions", body, &status);
        EXPECT_EQ(status, 200) << j.dump();
        return std::make_pair(j["usage"]["prompt_tokens"].get<int>(), j["choices"][0]["logprobs"]["content"][0]["logprob"].get<double>());
    };
    const auto low = first({{"reasoning_effort", "low"}}), high = first({{"reasoning_effort", "high"}});
    const auto medium = first(json::object()), medium2 = first({{"reasoning_effort", "medium"}});
    EXPECT_EQ(low.first, high.first);
    EXPECT_NE(low.second, high.second);
    EXPECT_NE(low.second, medium.second);
    EXPECT_EQ(medium, medium2);  // medium is the default
}

TEST_F(OpenAiTools, TokenizeDetokenizeAndModelContextLength) {
    auto file = gguf::File::open(model_);
    auto tok = load_tokenizer(file);
    int status = 0;
    const std::string text = "Hello <|start|>wörld";
    json j = post("/tokenize", {{"content", text}}, &status);
    ASSERT_EQ(status, 200) << j.dump();
    const auto ids = tok->encode(text, true, false);
    EXPECT_EQ(j["tokens"], json(ids));
    j = post("/tokenize", {{"content", text}, {"parse_special", false}, {"with_pieces", true}}, &status);
    ASSERT_EQ(status, 200);
    const auto plain = tok->encode(text, false, false);
    ASSERT_EQ(j["tokens"].size(), plain.size());
    EXPECT_EQ(j["tokens"][0]["id"], plain[0]);
    EXPECT_EQ(j["tokens"][0]["piece"], tok->token_bytes(plain[0]));
    j = post("/detokenize", {{"tokens", ids}}, &status);
    EXPECT_EQ(status, 200);
    EXPECT_EQ(j["content"], text);
    post("/detokenize", {{"tokens", {-1}}}, &status);
    EXPECT_EQ(status, 400);
    post("/tokenize", {{"text", "x"}}, &status);
    EXPECT_EQ(status, 400);

    auto r = server_->client().Get("/v1/models");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    j = json::parse(r->body);
    EXPECT_EQ(j["data"][0]["context_length"], 1024);
    EXPECT_EQ(j["data"][0]["n_ctx_train"], 4096);
    r = server_->client().Get("/v1/models/tiny-gpt-oss-test");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200) << r->body;
    r = server_->client().Get("/v1/models/other");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 404) << r->body;
}

}  // namespace
}  // namespace wo::test
