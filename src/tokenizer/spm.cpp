// SentencePiece-style BPE (see spm.h). Follows llama.cpp's llm_tokenizer_spm: merge the adjacent
// pair whose concatenation is the highest-scoring vocab entry (leftmost on ties); characters no
// token covers become <0xNN> byte tokens.
#include "tokenizer/spm.h"

#include <queue>
#include <unordered_map>

#include "tokenizer/bpe.h"
#include "tokenizer/text.h"
#include "util/error.h"

namespace wo::tok {

namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

class SpmTokenizer final : public Tokenizer {
public:
    explicit SpmTokenizer(SpmSpec spec) : s_(std::move(spec)) {
        Vocab& v = s_.vocab;
        if (s_.scores.empty()) s_.scores.assign(v.pieces.size(), 0.0f);
        if (s_.scores.size() != v.pieces.size())
            throw Error(Code::TOKENIZER_INVALID, "tokenizer.ggml.scores has " +
                                                     std::to_string(s_.scores.size()) + " entries for " +
                                                     std::to_string(v.pieces.size()) + " tokens");
        if (v.types.size() != v.pieces.size()) v.types.resize(v.pieces.size(), TokenType::NORMAL);
        v.build_index();
        v.bytes.resize(v.pieces.size());
        byte_id_.fill(-1);
        for (int32_t i = 0; i < v.size(); ++i) {
            const std::string& p = v.pieces[i];
            if (v.types[i] == TokenType::BYTE && p.size() == 6 && p.rfind("<0x", 0) == 0) {
                int b = std::stoi(p.substr(3, 2), nullptr, 16);
                v.bytes[i] = std::string(1, static_cast<char>(b));
                byte_id_[b] = i;
            } else if (v.types[i] == TokenType::NORMAL) {
                std::string out;
                for (size_t k = 0; k < p.size();) {
                    if (p.compare(k, kSpace.size(), kSpace) == 0) {
                        out += ' ';
                        k += kSpace.size();
                    } else {
                        out += p[k++];
                    }
                }
                v.bytes[i] = out;
            } else if (v.types[i] != TokenType::UNUSED) {  // unused ids decode to nothing
                v.bytes[i] = p;
            }
        }
        splitter_.build(v);
        bos_id = s_.bos;
        eos_id = s_.eos;
        pad_id = s_.pad;
        chat_template = s_.chat_template;
        eog_ids = default_eog(v, s_.eos, s_.extra_eog);
    }

    std::vector<int32_t> encode(std::string_view text, bool parse_special, bool add_bos) const override {
        std::vector<int32_t> out;
        if (add_bos && s_.add_bos && s_.bos) out.push_back(*s_.bos);
        std::string repaired;
        if (!utf8_is_valid(text)) text = repaired = utf8_repair(text);
        std::vector<Fragment> frags;
        splitter_.split(text, parse_special, frags);
        bool prev_special = true;  // the text start counts as "after a special token"
        for (const auto& f : frags) {
            if (f.token >= 0) {
                out.push_back(f.token);
                prev_special = true;
                continue;
            }
            std::string t;
            if (s_.add_space_prefix && prev_special) t = kSpace;
            for (char c : f.text) {
                if (c == ' ')
                    t += kSpace;
                else
                    t += c;
            }
            encode_text(t, out);
            prev_special = false;
        }
        return out;
    }

    std::string token_bytes(int32_t id) const override {
        if (id < 0 || id >= s_.vocab.size())
            throw Error(Code::INVALID_ARGUMENT, "token id " + std::to_string(id) + " out of range [0, " +
                                                    std::to_string(s_.vocab.size()) + ")");
        return s_.vocab.bytes[id];
    }
    int32_t vocab_size() const override { return s_.vocab.size(); }
    std::optional<int32_t> find_token(std::string_view piece) const override {
        auto it = s_.vocab.piece_to_id.find(piece);
        if (it == s_.vocab.piece_to_id.end()) return std::nullopt;
        return it->second;
    }
    std::string_view kind() const override { return "gguf-spm"; }
    bool strips_leading_space() const override { return s_.add_space_prefix; }

private:
    struct Sym {
        int32_t prev, next;
        size_t start, len;
    };
    struct Bigram {
        float score;
        int32_t left, right;
        size_t size;
        bool operator<(const Bigram& o) const {
            return score < o.score || (score == o.score && left > o.left);
        }
    };

    void encode_text(const std::string& t, std::vector<int32_t>& out) const {
        std::vector<Sym> sym;
        for (size_t i = 0; i < t.size();) {
            size_t n = utf8_valid_len(t, i);
            if (n == 0) n = 1;  // cannot happen after utf8_repair; keeps the loop finite regardless
            sym.push_back({static_cast<int32_t>(sym.size()) - 1, -1, i, n});
            i += n;
        }
        for (size_t i = 0; i + 1 < sym.size(); ++i) sym[i].next = static_cast<int32_t>(i + 1);
        std::priority_queue<Bigram> q;
        auto try_add = [&](int32_t l, int32_t r) {
            if (l < 0 || r < 0) return;
            std::string_view piece(t.data() + sym[l].start, sym[l].len + sym[r].len);
            auto it = s_.vocab.piece_to_id.find(piece);
            if (it == s_.vocab.piece_to_id.end()) return;
            q.push({s_.scores[it->second], l, r, piece.size()});
        };
        for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
        while (!q.empty()) {
            Bigram b = q.top();
            q.pop();
            Sym& L = sym[b.left];
            Sym& R = sym[b.right];
            if (L.len == 0 || R.len == 0 || L.len + R.len != b.size) continue;  // stale
            L.len += R.len;
            R.len = 0;
            L.next = R.next;
            if (R.next >= 0) sym[R.next].prev = b.left;
            try_add(L.prev, b.left);
            try_add(b.left, L.next);
        }
        for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) emit_symbol(t, sym[i], out);
    }

    // A final symbol is a vocab entry unless it is a single character that no token covers
    // (every merge creates a vocab entry), so llama.cpp's re-split along merges never fires and
    // only the byte fallback remains.
    void emit_symbol(const std::string& t, const Sym& s, std::vector<int32_t>& out) const {
        std::string_view piece(t.data() + s.start, s.len);
        auto it = s_.vocab.piece_to_id.find(piece);
        if (it != s_.vocab.piece_to_id.end()) {
            out.push_back(it->second);
            return;
        }
        for (unsigned char c : piece) {
            if (byte_id_[c] >= 0)
                out.push_back(byte_id_[c]);
            else if (s_.unk)
                out.push_back(*s_.unk);
            else
                throw Error(Code::TOKENIZER_INVALID, "SPM vocab has neither a byte token for " +
                                                         std::to_string(c) + " nor an unk token");
        }
    }

    SpmSpec s_;
    std::array<int32_t, 256> byte_id_{};
    SpecialSplitter splitter_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmSpec spec) {
    return std::make_unique<SpmTokenizer>(std::move(spec));
}

}  // namespace wo::tok
