// Drives a running worker-orcd through the official `openai` npm client (pinned in
// package.json) and prints what the client parsed, as JSON, for tests/server/openai_api_test.
// Usage: node openai-client.mjs http://127.0.0.1:PORT  (NODE_PATH = the golden node_modules)
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const base = process.argv[2];
const nm = (process.env.NODE_PATH || "").split(path.delimiter)[0];
const require = createRequire(path.join(nm, "noop.js"));
const mod = await import(pathToFileURL(require.resolve("openai")).href);
const OpenAI = mod.OpenAI ?? mod.default?.OpenAI ?? mod.default;

const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "not-needed", maxRetries: 0, timeout: 120000 });
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const messages = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Say hello in five words." },
];
const chatParams = { model: out.models[0], messages, max_tokens: 8, seed: 42, temperature: 0.8, top_p: 0.95 };

const chat = await client.chat.completions.create(chatParams);
out.chat = {
  object: chat.object,
  content: chat.choices[0].message.content,
  reasoning: chat.choices[0].message.reasoning_content ?? null,
  role: chat.choices[0].message.role,
  finish_reason: chat.choices[0].finish_reason,
  usage: chat.usage,
};

const stream = await client.chat.completions.create({ ...chatParams, stream: true, stream_options: { include_usage: true } });
const s = { content: "", reasoning: "", chunks: 0, roles: [], finish_reason: null, usage: null };
for await (const chunk of stream) {
  s.chunks++;
  if (chunk.usage) s.usage = chunk.usage;
  const c = chunk.choices[0];
  if (!c) continue;
  if (c.delta.role) s.roles.push(c.delta.role);
  if (c.delta.content) s.content += c.delta.content;
  if (c.delta.reasoning_content) s.reasoning += c.delta.reasoning_content;
  if (c.finish_reason) s.finish_reason = c.finish_reason;
}
out.chat_stream = s;

const compParams = { model: out.models[0], prompt: "The capital of France is", max_tokens: 6, seed: 7, temperature: 0.7 };
const comp = await client.completions.create(compParams);
out.completion = { text: comp.choices[0].text, finish_reason: comp.choices[0].finish_reason, usage: comp.usage };
const cstream = await client.completions.create({ ...compParams, stream: true });
let ctext = "";
for await (const chunk of cstream) ctext += chunk.choices[0]?.text ?? "";
out.completion_stream = { text: ctext };

try {
  await client.chat.completions.create({ ...chatParams, temperature: 5 });
  out.bad_request = { status: 200 };
} catch (e) {
  out.bad_request = { status: e.status, param: e.error?.param ?? e.param ?? null, name: e.constructor.name };
}
console.log(JSON.stringify(out));
