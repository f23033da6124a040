// Drives a tool loop and the Responses API through the official `openai` npm client against
// `worker-orcd serve --enable-test-faults`, with the model's replies scripted by token ids
// (X-Test-Script; ids from the server's /tokenize) so a random tiny gpt-oss model emits exact
// harmony. Prints what the client parsed, as JSON, for tests/server/openai_api_test.
// Usage: node openai-tools.mjs http://127.0.0.1:PORT  (NODE_PATH = the golden node_modules)
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const base = process.argv[2];
const nm = (process.env.NODE_PATH || "").split(path.delimiter)[0];
const require = createRequire(path.join(nm, "noop.js"));
const mod = await import(pathToFileURL(require.resolve("openai")).href);
const OpenAI = mod.OpenAI ?? mod.default?.OpenAI ?? mod.default;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "not-needed", maxRetries: 0, timeout: 120000 });

async function script(text) {
  const r = await fetch(`${base}/tokenize`, { method: "POST", body: JSON.stringify({ content: text }) });
  const j = await r.json();
  return { headers: { "X-Test-Script": j.tokens.join(",") } };
}
const CALL =
  "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>" +
  '{"location":"Paris"}<|call|>';
const ANSWER = "<|channel|>final<|message|>It is sunny in Paris.<|return|>";

const model = (await client.models.list()).data[0].id;
const weather = {
  name: "get_weather",
  description: "Gets the current weather.",
  parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
};
const tools = [{ type: "function", function: weather }];
const user = { role: "user", content: "Weather in Paris?" };
const out = {};

// Chat, whole responses: call -> tool result -> answer.
{
  const first = await client.chat.completions.create({ model, messages: [user], tools, max_tokens: 64 }, await script(CALL));
  const msg = first.choices[0].message;
  const messages = [user, msg, { role: "tool", tool_call_id: msg.tool_calls?.[0]?.id, content: '{"sunny":true}' }];
  const second = await client.chat.completions.create({ model, messages, tools, max_tokens: 64 }, await script(ANSWER));
  out.chat = {
    finish_reason: first.choices[0].finish_reason,
    content: msg.content,
    reasoning: msg.reasoning_content,
    tool_calls: msg.tool_calls,
    answer: second.choices[0].message.content,
    answer_finish: second.choices[0].finish_reason,
    answer_tool_calls: second.choices[0].message.tool_calls ?? null,
    answer_prompt_tokens: second.usage.prompt_tokens,
  };
}

// Chat, streamed: raw chunks, and the SDK's stream helper that assembles tool-call deltas.
{
  const stream = await client.chat.completions.create({ model, messages: [user], tools, max_tokens: 64, stream: true }, await script(CALL));
  const deltas = [];
  let finish = null, reasoning = "";
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    for (const t of c.delta.tool_calls ?? []) deltas.push(t);
    if (c.delta.reasoning_content) reasoning += c.delta.reasoning_content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  const helper = client.chat.completions.stream({ model, messages: [user], tools, max_tokens: 64 }, await script(CALL));
  const final = await helper.finalChatCompletion();
  const msg = final.choices[0].message;
  const messages = [user, { role: "assistant", content: null, reasoning_content: reasoning, tool_calls: msg.tool_calls },
    { role: "tool", tool_call_id: msg.tool_calls?.[0]?.id, content: '{"sunny":true}' }];
  let answer = "";
  const s2 = await client.chat.completions.create({ model, messages, tools, max_tokens: 64, stream: true }, await script(ANSWER));
  for await (const chunk of s2) answer += chunk.choices[0]?.delta?.content ?? "";
  out.chat_stream = { deltas, finish_reason: finish, reasoning, helper_tool_calls: msg.tool_calls, helper_finish: final.choices[0].finish_reason, answer };
}

// tool_choice naming a function: the reply starts inside the call, the script gives the arguments.
{
  const r = await client.chat.completions.create(
    { model, messages: [user], tools, max_tokens: 64, tool_choice: { type: "function", function: { name: "get_weather" } } },
    await script('{"location":"Rome"}<|call|>'));
  out.named = { finish_reason: r.choices[0].finish_reason, tool_calls: r.choices[0].message.tool_calls };
}

// Responses API, streamed through the SDK's ResponseStream (it checks the event sequence).
{
  const rtools = [{ type: "function", ...weather }];
  const types = [];
  const s = client.responses.stream({ model, input: "Weather in Paris?", tools: rtools, max_output_tokens: 64 }, await script(CALL));
  for await (const ev of s) types.push(ev.type);
  const first = await s.finalResponse();
  const call = first.output.find((o) => o.type === "function_call");
  const input = ["Weather in Paris?"].map((t) => ({ role: "user", content: t }))
    .concat(first.output, [{ type: "function_call_output", call_id: call?.call_id, output: '{"sunny":true}' }]);
  const s2 = client.responses.stream({ model, input, tools: rtools, max_output_tokens: 64 }, await script(ANSWER));
  const types2 = [];
  for await (const ev of s2) types2.push(ev.type);
  const second = await s2.finalResponse();
  const whole = await client.responses.create({ model, input, tools: rtools, max_output_tokens: 64 }, await script(ANSWER));
  out.responses = {
    types, first_status: first.status, first_output: first.output,
    // The stream helper's final response has no output_text convenience field: join the parts.
    types2, answer: second.output.filter((o) => o.type === "message").flatMap((o) => o.content.map((c) => c.text)).join(""),
    answer_status: second.status, usage: second.usage,
    whole_answer: whole.output_text, whole_output_types: whole.output.map((o) => o.type),
  };
}
try {
  await client.responses.create({ model, input: "hi", previous_response_id: "resp_x" });
  out.previous = { status: 200 };
} catch (e) {
  out.previous = { status: e.status, param: e.error?.param ?? e.param ?? null };
}
console.log(JSON.stringify(out));
