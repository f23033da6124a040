// Greedy decoding and next-token probabilities from llama.cpp (node-llama-cpp's prebuilt CPU
// library) on a GGUF: an independent engine for tests/model/llamacpp_synth_test.cpp.
// Prints {"greedy": [ids...], "top": [[id, prob], ...]} where greedy is the argmax continuation
// (argmax of llama.cpp's raw logits, so no sampler is involved) and top the 20 most probable next
// tokens after the prompt (softmax over the full logits).
// usage: NODE_PATH=<golden>/node_modules node llamacpp-greedy.mjs MODEL.gguf 1,2,3 N_GEN
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modelPath, idList, nGenArg] = process.argv.slice(2);
const nm = process.env.NODE_PATH;
if (!modelPath || !idList || !nGenArg || !nm) {
  console.error("usage: NODE_PATH=<golden>/node_modules node llamacpp-greedy.mjs MODEL.gguf 1,2,3 N_GEN");
  process.exit(2);
}
const { getLlama } = await import(pathToFileURL(path.join(nm, "node-llama-cpp", "dist", "index.js")).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({
  contextSize: 256, batchSize: 256, sequences: 1, threads: 1, flashAttention: false,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
});
const seq = context.getSequence();
const ids = idList.split(",").map(Number);
const argmax = (m) => {
  let best = -1, bv = -Infinity;
  for (const [t, v] of m) if (v > bv || (v === bv && t < best)) { bv = v; best = t; }
  return best;
};
const input = ids.map((t, i) => (i === ids.length - 1 ? [t, { generateNext: { logits: true } }] : t));
let out = await seq.controlledEvaluate(input);
let logits = out[out.length - 1].next.logits;
let mx = -Infinity;
for (const v of logits.values()) mx = Math.max(mx, v);
let z = 0;
for (const v of logits.values()) z += Math.exp(v - mx);
const top = [...logits.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([t, v]) => [t, Math.exp(v - mx) / z]);
const greedy = [];
for (let i = 0; i < Number(nGenArg); i++) {
  const tok = argmax(logits);
  greedy.push(tok);
  if (i + 1 === Number(nGenArg)) break;
  out = await seq.controlledEvaluate([[tok, { generateNext: { logits: true } }]]);
  logits = out[0].next.logits;
}
process.stdout.write(JSON.stringify({ greedy, top }));
await context.dispose();
await model.dispose();
await llama.dispose();
