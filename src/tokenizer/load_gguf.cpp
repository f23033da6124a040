// Tokenizer from GGUF metadata (tokenizer.ggml.*), as llama.cpp's files hold it.
#include <cctype>

#include "gguf/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/spm.h"
#include "util/error.h"

namespace wo {

namespace {
std::optional<int64_t> opt_id(const gguf::File& f, const char* key) { return f.find_int(key); }
}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const gguf::File& f) {
    try {
        const std::string model = f.get_string("tokenizer.ggml.model");
        tok::Vocab v;
        v.pieces = f.get_string_array("tokenizer.ggml.tokens");
        if (v.pieces.empty()) throw Error(Code::TOKENIZER_INVALID, "tokenizer.ggml.tokens is empty");
        if (f.has("tokenizer.ggml.token_type")) {
            auto t = f.get_int_array("tokenizer.ggml.token_type");
            if (t.size() != v.pieces.size())
                throw Error(Code::TOKENIZER_INVALID, "tokenizer.ggml.token_type has " +
                                                         std::to_string(t.size()) + " entries for " +
                                                         std::to_string(v.pieces.size()) + " tokens");
            for (int64_t x : t) {
                if (x < 0 || x > 6)
                    throw Error(Code::TOKENIZER_INVALID,
                                "tokenizer.ggml.token_type value " + std::to_string(x) + " is not 0..6");
                v.types.push_back(static_cast<tok::TokenType>(x));
            }
        } else {
            v.types.assign(v.pieces.size(), tok::TokenType::NORMAL);
        }
        auto check_id = [&](const char* key) -> std::optional<int32_t> {
            auto id = opt_id(f, key);
            // llama.cpp writes -1 (or its u32 form) for "none"; any other id outside the
            // vocabulary is corrupt metadata that would index past the embeddings.
            if (!id || *id == -1 || *id == 0xFFFFFFFFll) return std::nullopt;
            if (*id < 0 || *id >= static_cast<int64_t>(v.pieces.size()))
                throw Error(Code::TOKENIZER_INVALID, std::string(key) + " = " + std::to_string(*id) +
                                                         " is outside the vocabulary of " +
                                                         std::to_string(v.pieces.size()) + " tokens");
            return static_cast<int32_t>(*id);
        };
        auto bos = check_id("tokenizer.ggml.bos_token_id");
        auto eos = check_id("tokenizer.ggml.eos_token_id");
        auto pad = check_id("tokenizer.ggml.padding_token_id");
        auto unk = check_id("tokenizer.ggml.unknown_token_id");  // before the vocabulary is moved out
        std::vector<int32_t> extra;
        for (const char* k : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
            if (auto id = check_id(k)) extra.push_back(*id);
        std::string chat_template = f.find_string("tokenizer.chat_template").value_or("");

        if (model == "gpt2") {
            tok::BpeSpec s;
            s.kind = "gguf-bpe";
            std::string pre = f.find_string("tokenizer.ggml.pre").value_or("default");
            auto pattern = tok::pattern_for_gguf_pre(pre);
            if (!pattern)
                throw Error(Code::TOKENIZER_INVALID,
                            "tokenizer.ggml.pre '" + pre +
                                "' is unsupported (supported: gpt-2, llama-bpe, qwen2, gpt-4o)");
            s.pre.push_back({*pattern});
            // What these families' tokenizer.json files say: Llama 3 and o200k (tiktoken looks a
            // whole pre-token up first) ignore merges; Qwen2 normalizes to NFC.
            s.ignore_merges = pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "gpt-4o";
            s.nfc = pre == "qwen2";
            for (const auto& m : f.get_string_array("tokenizer.ggml.merges")) {
                size_t sp = m.find(' ', 1);
                if (sp == std::string::npos)
                    throw Error(Code::TOKENIZER_INVALID,
                                "tokenizer.ggml.merges entry '" + m + "' has no space");
                s.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
            }
            s.vocab = std::move(v);
            s.bos = bos;
            s.eos = eos;
            s.pad = pad;
            // llama.cpp's default when the key is absent: Llama 3 adds <|begin_of_text|>.
            s.add_bos =
                f.find_bool("tokenizer.ggml.add_bos_token").value_or(s.ignore_merges && pre != "gpt-4o");
            s.chat_template = std::move(chat_template);
            s.extra_eog = std::move(extra);
            return tok::make_bpe_tokenizer(std::move(s));
        }
        if (model == "llama") {
            tok::SpmSpec s;
            // llama.cpp keys this on the model name: Phi-3's chat tokens swallow the whitespace
            // after them (its tokenizer.json sets rstrip), except <unk>, <s>, <|endoftext|>.
            std::string name = f.find_string("general.name").value_or("");
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
                v.strip.assign(v.pieces.size(), 0);
                for (size_t i = 0; i < v.pieces.size(); ++i) {
                    auto t = v.types[i];
                    bool special = t == tok::TokenType::CONTROL || t == tok::TokenType::USER_DEFINED ||
                                   t == tok::TokenType::UNKNOWN;
                    const std::string& p = v.pieces[i];
                    if ((special || p == "</s>") && p != "<unk>" && p != "<s>" && p != "<|endoftext|>")
                        v.strip[i] = tok::Vocab::kRstrip;
                }
            }
            if (f.has("tokenizer.ggml.scores")) s.scores = f.get_float_array("tokenizer.ggml.scores");
            s.vocab = std::move(v);
            s.bos = bos;
            s.eos = eos;
            s.pad = pad;
            s.unk = unk;
            s.add_bos = f.find_bool("tokenizer.ggml.add_bos_token").value_or(true);
            s.add_space_prefix = f.find_bool("tokenizer.ggml.add_space_prefix").value_or(true);
            s.chat_template = std::move(chat_template);
            s.extra_eog = std::move(extra);
            return tok::make_spm_tokenizer(std::move(s));
        }
        throw Error(Code::TOKENIZER_INVALID,
                    "tokenizer.ggml.model '" + model + "' is unsupported (supported: gpt2, llama)");
    } catch (const Error& e) {
        if (e.code() == Code::TOKENIZER_INVALID) throw;
        throw Error(Code::TOKENIZER_INVALID, std::string("GGUF tokenizer metadata: ") + e.what());
    }
}

}  // namespace wo
