// A minimal byte-level BPE tokenizer.json (GPT-2's byte-to-unicode map, 256 tokens, no merges,
// <|endoftext|> = 256) for converting the fixtures, which have no tokenizer, into GGUF files
// that llama.cpp agrees to load.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace wo::test {

inline nlohmann::json byte_level_tokenizer_json() {
    nlohmann::json vocab = nlohmann::json::object();
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        const int cp = printable ? b : 256 + extra++;
        std::string u;
        if (cp < 0x80) {
            u += char(cp);
        } else {
            u += char(0xC0 | (cp >> 6));
            u += char(0x80 | (cp & 0x3F));
        }
        vocab[u] = b;
    }
    return {
        {"version", "1.0"},
        {"added_tokens", nlohmann::json::array({{{"id", 256}, {"content", "<|endoftext|>"}, {"special", true}}})},
        {"normalizer", nullptr},
        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
    };
}

}  // namespace wo::test
