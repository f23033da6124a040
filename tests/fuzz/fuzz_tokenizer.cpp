// libFuzzer target for tokenizer encode/decode on arbitrary bytes, with a byte-level BPE
// (GPT-2 alphabet, a few merges, a special token) built in memory as a GGUF:
//   - encode never fails and yields ids inside the vocabulary,
//   - decode(encode(x)) == x for UTF-8 text without special parsing (invalid bytes are repaired),
//   - the stream decoder over arbitrary ids emits only valid UTF-8.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "tokenizer/text.h"
#include "tokenizer/tokenizer.h"

namespace {

// Strict UTF-8: no overlong forms, surrogates or values past U+10FFFF (the tokenizer repairs
// those, so they do not round-trip).
bool valid_utf8(const std::string& s) {
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        uint32_t cp = n == 1 ? c : c & (0x7f >> n);
        for (size_t k = 1; k < n; ++k) {
            const auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3f);
        }
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += n;
    }
    return true;
}

struct Fixture {
    std::vector<uint8_t> bytes;
    std::unique_ptr<wo::Tokenizer> tok;
    Fixture() {
        using wo::gguf::Value;
        std::vector<std::string> toks;
        for (int b = 0; b < 256; ++b) toks.push_back(wo::tok::byte_to_unicode()[b]);
        const std::string G = wo::tok::byte_to_unicode()[' '];  // Ġ
        for (const char* m : {"he", "ll", "hell", "wo", "wor", "ld"}) toks.push_back(m);
        toks.push_back(G + "w");
        toks.push_back("<|end|>");
        std::vector<int32_t> types(toks.size(), 1);
        types.back() = 3;  // CONTROL
        wo::gguf::Writer w;
        w.set("tokenizer.ggml.model", Value::str("gpt2"));
        w.set("tokenizer.ggml.pre", Value::str("gpt-4o"));
        w.set("tokenizer.ggml.tokens", Value::string_array(toks));
        w.set("tokenizer.ggml.token_type", Value::i32_array(types));
        w.set("tokenizer.ggml.merges", Value::string_array({"h e", "l l", "he ll", "w o", "wo r", "l d", G + " w"}));
        w.set("tokenizer.ggml.eos_token_id", Value::u32(static_cast<uint32_t>(toks.size() - 1)));
        bytes = w.to_bytes();
        tok = wo::load_tokenizer(wo::gguf::File::parse(bytes.data(), bytes.size()));
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Fixture f;
    const std::string text(reinterpret_cast<const char*>(data), size);
    const int32_t V = f.tok->vocab_size();
    for (bool special : {false, true}) {
        const auto ids = f.tok->encode(text, special, false);
        for (int32_t id : ids)
            if (id < 0 || id >= V) std::abort();
        if (!special && valid_utf8(text) && f.tok->decode(ids) != text) std::abort();
    }
    // Arbitrary ids (two bytes each) through the stream decoder.
    wo::StreamDecoder d(*f.tok);
    std::string out;
    for (size_t i = 0; i + 1 < size; i += 2) out += d.push(static_cast<int32_t>((data[i] | data[i + 1] << 8) % V));
    out += d.flush();
    if (!valid_utf8(out)) std::abort();
    return 0;
}
