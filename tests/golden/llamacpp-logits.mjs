// Runs llama.cpp (node-llama-cpp's prebuilt CPU library) on a GGUF and prints, as one JSON
// object, the raw next-token logits after every prompt token: {"logits": [[v0, v1, ...], ...]}.
// The model tests use it as an independent engine on synthetic-weight GGUFs (TEST-DATA.md §3).
// usage: NODE_PATH=<golden>/node_modules node llamacpp-logits.mjs MODEL.gguf 1,2,3 N_VOCAB
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modelPath, idList, nVocabArg] = process.argv.slice(2);
const nm = process.env.NODE_PATH;
if (!modelPath || !idList || !nVocabArg || !nm) {
  console.error("usage: NODE_PATH=<golden>/node_modules node llamacpp-logits.mjs MODEL.gguf 1,2,3 N_VOCAB");
  process.exit(2);
}
// ES modules ignore NODE_PATH, so the package is imported by its path.
const { getLlama } = await import(pathToFileURL(path.join(nm, "node-llama-cpp", "dist", "index.js")).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath });
const ids = idList.split(",").map(Number);
// F32 KV cache and no flash attention, so the reference does not round keys and values to F16.
const context = await model.createContext({
  contextSize: 256, batchSize: 256, sequences: 1, threads: 1, flashAttention: false,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
});
const seq = context.getSequence();
const out = await seq.controlledEvaluate(ids.map((t) => [t, { generateNext: { logits: true } }]));
const nVocab = Number(nVocabArg);
const logits = out.map((o) => {
  const row = new Array(nVocab).fill(null);
  for (const [tok, v] of o.next.logits) row[tok] = v;
  return row;
});
process.stdout.write(JSON.stringify({ logits }));
await context.dispose();
await model.dispose();
await llama.dispose();
