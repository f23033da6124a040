// Independent GGUF parse for cross-checking the C++ reader: node check-gguf.mjs FILE
// Prints one JSON object: version, data offset, metadata (in file order, with GGUF type ids) and
// tensor infos, as @huggingface/gguf reads them. 64-bit integers print as decimal strings and
// non-finite or negative-zero floats as strings, so nothing is lost in JSON.
// Loaded through require so that NODE_PATH (the build's golden/node_modules) is honoured; ESM
// imports ignore NODE_PATH.
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const { gguf } = require("@huggingface/gguf");

const file = process.argv[2];
if (!file) {
  console.error("usage: node check-gguf.mjs FILE");
  process.exit(2);
}

function enc(v) {
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") {
    if (Object.is(v, -0)) return "-0";
    return Number.isFinite(v) ? v : String(v);
  }
  if (Array.isArray(v)) return v.map(enc);
  return v;  // string, boolean
}

const r = await gguf(file, { allowLocalFile: true, typedMetadata: true });
// The package adds the header fields to the metadata; they are not keys of the file.
const header = new Set(["version", "tensor_count", "kv_count"]);
const metadata = [];
for (const [key, entry] of Object.entries(r.typedMetadata)) {
  if (header.has(key)) continue;
  const item = { key, type: entry.type, value: enc(entry.value) };
  if (entry.subType !== undefined) item.sub_type = entry.subType;
  metadata.push(item);
}
const out = {
  version: r.typedMetadata.version.value,
  tensor_count: enc(r.typedMetadata.tensor_count.value),
  kv_count: enc(r.typedMetadata.kv_count.value),
  data_offset: enc(r.tensorDataOffset),
  metadata,
  tensors: r.tensorInfos.map((t) => ({ name: t.name, shape: t.shape.map(enc), type: t.dtype, offset: enc(t.offset) })),
};
process.stdout.write(JSON.stringify(out) + "\n");
