// Byte-level BPE: special split, NFC, regex pre-tokenization, rank-ordered merges (see bpe.h).
#include "tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "tokenizer/pretokenize.h"
#include "tokenizer/text.h"
#include "util/error.h"

namespace wo::tok {

std::vector<int32_t> default_eog(const Vocab& v, std::optional<int32_t> eos,
                                 const std::vector<int32_t>& extra) {
    std::vector<int32_t> eog;
    auto add = [&](int32_t id) {
        if (id >= 0 && id < v.size() && std::find(eog.begin(), eog.end(), id) == eog.end()) eog.push_back(id);
    };
    if (eos) add(*eos);
    for (int32_t id : extra) add(id);
    static const char* const kEnd[] = {"<|eot_id|>", "<|eom_id|>",    "<|im_end|>",
                                       "<|end|>",    "<end_of_turn>", "<|endoftext|>",
                                       "<EOT>",      "<|return|>",    "<|call|>"};
    for (const char* t : kEnd) {
        auto it = v.piece_to_id.find(t);
        if (it != v.piece_to_id.end() && v.types[it->second] != TokenType::NORMAL) add(it->second);
    }
    auto has = [&](const char* t) { return v.piece_to_id.count(t) > 0; };
    if (has("<|return|>") && has("<|call|>")) {
        // Harmony: <|end|> closes a message but not the turn (llama.cpp does the same).
        int32_t end = v.piece_to_id.at("<|end|>");
        eog.erase(std::remove(eog.begin(), eog.end(), end), eog.end());
    }
    return eog;
}

namespace {

class BpeTokenizer final : public Tokenizer {
public:
    explicit BpeTokenizer(BpeSpec spec) : s_(std::move(spec)) {
        Vocab& v = s_.vocab;
        if (v.types.size() != v.pieces.size()) v.types.resize(v.pieces.size(), TokenType::NORMAL);
        v.build_index();
        v.bytes.resize(v.pieces.size());
        raw_to_id_.reserve(v.pieces.size() * 2);
        for (int32_t i = 0; i < v.size(); ++i) {
            bool normal = v.types[i] == TokenType::NORMAL;
            // Unused ids ([PADn] rows of a padded embedding) decode to nothing, as in llama.cpp.
            if (v.types[i] == TokenType::UNUSED)
                v.bytes[i].clear();
            else if (!normal || !unicode_to_bytes(v.pieces[i], v.bytes[i]))
                v.bytes[i] = v.pieces[i];
            if (normal) raw_to_id_.emplace(v.bytes[i], i);
        }
        for (int b = 0; b < 256; ++b) {
            auto it = v.piece_to_id.find(byte_to_unicode()[b]);
            if (it == v.piece_to_id.end())
                throw Error(Code::TOKENIZER_INVALID,
                            "byte-level BPE vocab lacks the piece for byte " + std::to_string(b));
            byte_id_[b] = it->second;
        }
        merges_.reserve(s_.merges.size() * 2);
        for (size_t r = 0; r < s_.merges.size(); ++r) {
            const auto& [a, b] = s_.merges[r];
            auto ia = v.piece_to_id.find(a), ib = v.piece_to_id.find(b), im = v.piece_to_id.find(a + b);
            if (ia == v.piece_to_id.end() || ib == v.piece_to_id.end() || im == v.piece_to_id.end())
                throw Error(Code::TOKENIZER_INVALID, "merge " + std::to_string(r) + " ('" + a + "' '" + b +
                                                         "') names a piece missing from the vocab");
            merges_.emplace(key(ia->second, ib->second), Merge{static_cast<int32_t>(r), im->second});
        }
        for (const auto& p : s_.pre) splits_.push_back(std::make_unique<RegexSplit>(p.pattern));
        splitter_.build(v, s_.kind == "hf-json");
        bos_id = s_.bos;
        eos_id = s_.eos;
        pad_id = s_.pad;
        chat_template = s_.chat_template;
        eog_ids = default_eog(v, s_.eos, s_.extra_eog);
        n_vocab_ = std::max(s_.vocab_size, v.size());
    }

    std::vector<int32_t> encode(std::string_view text, bool parse_special, bool add_bos) const override {
        std::vector<int32_t> out;
        if (add_bos && s_.add_bos && s_.bos) out.push_back(*s_.bos);
        std::string repaired;
        if (!utf8_is_valid(text)) text = repaired = utf8_repair(text);
        std::vector<Fragment> frags;
        splitter_.split(text, parse_special, frags);
        for (const auto& f : frags) {
            if (f.token >= 0)
                out.push_back(f.token);
            else
                encode_text(f.text, out);
        }
        return out;
    }

    std::string token_bytes(int32_t id) const override {
        if (id < 0 || id >= s_.vocab.size()) {
            if (id >= 0 && id < n_vocab_) return {};  // padding rows of the embedding have no text
            throw Error(Code::INVALID_ARGUMENT, "token id " + std::to_string(id) + " out of range [0, " +
                                                    std::to_string(n_vocab_) + ")");
        }
        return s_.vocab.bytes[id];
    }
    int32_t vocab_size() const override { return n_vocab_; }
    std::optional<int32_t> find_token(std::string_view piece) const override {
        auto it = s_.vocab.piece_to_id.find(piece);
        if (it == s_.vocab.piece_to_id.end()) return std::nullopt;
        return it->second;
    }
    std::string_view kind() const override { return s_.kind; }

private:
    struct Merge {
        int32_t rank, id;
    };
    static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

    void encode_text(std::string_view text, std::vector<int32_t>& out) const {
        std::string buf;
        if (s_.nfc) text = buf = nfc(text);
        if (s_.add_prefix_space && !text.empty() && text[0] != ' ') {
            buf = " " + std::string(text);
            text = buf;
        }
        std::vector<std::string_view> pieces{text}, next;
        for (const auto& sp : splits_) {
            next.clear();
            for (auto p : pieces) sp->split(p, next);
            pieces.swap(next);
        }
        for (auto p : pieces) encode_word(p, out);
    }

    void encode_word(std::string_view w, std::vector<int32_t>& out) const {
        if (w.empty()) return;
        if (s_.ignore_merges || w.size() == 1) {
            auto it = raw_to_id_.find(w);
            if (it != raw_to_id_.end()) {
                out.push_back(it->second);
                return;
            }
        }
        // Short words repeat a lot in text; long ones rarely do and would bloat the cache.
        const bool cacheable = w.size() <= 64;
        if (cacheable) {
            std::lock_guard lock(cache_mu_);
            auto it = cache_.find(w);
            if (it != cache_.end()) {
                out.insert(out.end(), it->second.begin(), it->second.end());
                return;
            }
        }
        size_t before = out.size();
        merge_word(w, out);
        if (cacheable) {
            std::lock_guard lock(cache_mu_);
            if (cache_.size() > kCacheMax) cache_.clear();
            cache_.emplace(std::string(w), std::vector<int32_t>(out.begin() + before, out.end()));
        }
    }

    // Repeatedly merges the adjacent pair of lowest rank (leftmost on ties) through a min-heap;
    // stale heap entries are recognised by the symbols they name having changed.
    void merge_word(std::string_view w, std::vector<int32_t>& out) const {
        struct Sym {
            int32_t id, prev, next;
        };
        struct Cand {
            int32_t rank, left, right, left_id, right_id, new_id;
            bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
        };
        thread_local std::vector<Sym> sym;
        thread_local std::vector<Cand> heap_store;
        const int32_t n = static_cast<int32_t>(w.size());
        sym.resize(n);
        for (int32_t i = 0; i < n; ++i)
            sym[i] = {byte_id_[static_cast<uint8_t>(w[i])], i - 1, i + 1 < n ? i + 1 : -1};
        heap_store.clear();
        std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap(std::greater<Cand>{},
                                                                              std::move(heap_store));
        auto try_push = [&](int32_t l, int32_t r) {
            if (l < 0 || r < 0) return;
            auto it = merges_.find(key(sym[l].id, sym[r].id));
            if (it != merges_.end()) heap.push({it->second.rank, l, r, sym[l].id, sym[r].id, it->second.id});
        };
        for (int32_t i = 0; i + 1 < n; ++i) try_push(i, i + 1);
        while (!heap.empty()) {
            Cand c = heap.top();
            heap.pop();
            if (sym[c.left].id != c.left_id || sym[c.left].next != c.right || sym[c.right].id != c.right_id)
                continue;
            sym[c.left].id = c.new_id;
            int32_t nx = sym[c.right].next;
            sym[c.left].next = nx;
            if (nx >= 0) sym[nx].prev = c.left;
            sym[c.right].id = -1;
            try_push(sym[c.left].prev, c.left);
            try_push(c.left, nx);
        }
        for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next) out.push_back(sym[i].id);
    }

    static constexpr size_t kCacheMax = 1 << 16;
    BpeSpec s_;
    int32_t n_vocab_ = 0;
    std::array<int32_t, 256> byte_id_{};
    StringMap<int32_t> raw_to_id_;
    std::unordered_map<uint64_t, Merge> merges_;
    std::vector<std::unique_ptr<RegexSplit>> splits_;
    SpecialSplitter splitter_;
    mutable std::mutex cache_mu_;
    mutable StringMap<std::vector<int32_t>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec) {
    return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace wo::tok
