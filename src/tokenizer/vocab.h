// Token table shared by the BPE and SentencePiece tokenizers: pieces, types, decoded bytes, and
// the exact-match splitter that cuts added/special tokens out of text before BPE runs.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wo::tok {

// Lets string-keyed maps be searched with a string_view, without building a std::string.
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : uint8_t {
    UNDEFINED = 0,
    NORMAL = 1,
    UNKNOWN = 2,
    CONTROL = 3,
    USER_DEFINED = 4,
    UNUSED = 5,
    BYTE = 6
};

struct Vocab {
    std::vector<std::string> pieces;  // the token text as the file stores it
    std::vector<TokenType> types;
    std::vector<std::string> bytes;  // what each token decodes to
    // Per token: kLstrip / kRstrip make the special-token split swallow whitespace before / after
    // the token (HF added-token lstrip/rstrip; llama.cpp's attributes, Phi-3 sets RSTRIP).
    std::vector<uint8_t> strip;
    static constexpr uint8_t kLstrip = 1, kRstrip = 2;
    StringMap<int32_t> piece_to_id;

    int32_t size() const { return static_cast<int32_t>(pieces.size()); }
    void build_index();  // fills piece_to_id (first id wins on duplicates)
};

// A piece of input: either text to tokenize or an already-resolved special token.
struct Fragment {
    std::string_view text;
    int32_t token = -1;  // >= 0: a special token
};

// Leftmost-longest exact matching of added tokens. Control and unknown tokens are only matched
// when special parsing is on; user-defined (HF non-special added) tokens always are, as in
// llama.cpp and HF tokenizers.
class SpecialSplitter {
public:
    // unicode_ws: strip Unicode White_Space (HF tokenizers' char::is_whitespace) rather than the
    // ASCII isspace() set llama.cpp uses.
    void build(const Vocab& v, bool unicode_ws = false);
    void split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;

private:
    struct Cand {
        std::string text;
        int32_t id;
        bool always;
        uint8_t strip;
    };
    std::vector<std::vector<Cand>> by_first_byte_ = std::vector<std::vector<Cand>>(256);
    bool unicode_ws_ = false;
};

}  // namespace wo::tok
