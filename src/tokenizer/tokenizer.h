// Text <-> token ids, exactly as the model was trained. One interface for byte-level BPE
// (GPT-2, Llama 3, Qwen2, o200k/gpt-oss) and SentencePiece-style BPE (Llama 2, Phi-3),
// loaded from GGUF metadata or from an HF tokenizer.json.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wo::gguf {
class File;
}

namespace wo {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // parse_special: split out added/special tokens (e.g. `<|start|>`) by exact match first;
    // when false they are tokenized as plain text. add_bos follows the tokenizer's own setting
    // (GGUF tokenizer.ggml.add_bos_token, tokenizer_config.json) when requested.
    virtual std::vector<int32_t> encode(std::string_view text, bool parse_special,
                                        bool add_bos = false) const = 0;
    // The raw bytes a token stands for (byte-level and <0xNN> pieces decoded); may be a partial
    // UTF-8 character. Special tokens decode to their text.
    virtual std::string token_bytes(int32_t id) const = 0;
    std::string decode(const std::vector<int32_t>& ids) const;

    virtual int32_t vocab_size() const = 0;  // padded vocab of the model (e.g. 201088 for gpt-oss)
    virtual std::optional<int32_t> find_token(std::string_view piece) const = 0;  // exact piece lookup
    virtual std::string_view kind() const = 0;  // "gguf-bpe", "gguf-spm" or "hf-json"
    // SentencePiece prefixes the text with a space when encoding; decode() and StreamDecoder
    // drop that one leading space again so decode(encode(x)) == x.
    virtual bool strips_leading_space() const { return false; }
    std::optional<int32_t> bos_id, eos_id, pad_id;
    std::vector<int32_t> eog_ids;  // end-of-generation tokens (gpt-oss: <|return|>, <|call|>, <|endoftext|>)
    bool is_eog(int32_t id) const;
    std::string chat_template;  // tokenizer.chat_template when the source has one
};

// Throw Error(TOKENIZER_INVALID) naming the missing or malformed key or component.
std::unique_ptr<Tokenizer> load_tokenizer(const gguf::File& f);
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& tokenizer_json_path,
                                               const std::string& tokenizer_config_path = "");

// Emits only complete UTF-8 characters: bytes of an unfinished character are held back until
// the next token completes it; flush() returns what is left (invalid bytes as U+FFFD).
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
    std::string push(int32_t id);
    std::string flush();

private:
    const Tokenizer& tok_;
    std::string pending_;
    bool started_ = false;
};

}  // namespace wo
