// Token table and special-token splitting (see vocab.h).
#include "tokenizer/vocab.h"

#include <algorithm>

namespace wo::tok {

void Vocab::build_index() {
    piece_to_id.clear();
    piece_to_id.reserve(pieces.size() * 2);
    for (int32_t i = 0; i < size(); ++i)
        if (!pieces[i].empty()) piece_to_id.emplace(pieces[i], i);
}

void SpecialSplitter::build(const Vocab& v) {
    for (auto& c : by_first_byte_) c.clear();
    for (int32_t i = 0; i < v.size(); ++i) {
        TokenType t = v.types[i];
        bool always = t == TokenType::USER_DEFINED;
        if (!always && t != TokenType::CONTROL && t != TokenType::UNKNOWN) continue;
        if (v.pieces[i].empty()) continue;
        uint8_t strip = static_cast<size_t>(i) < v.strip.size() ? v.strip[i] : 0;
        by_first_byte_[static_cast<uint8_t>(v.pieces[i][0])].push_back({v.pieces[i], i, always, strip});
    }
    // Longest first, so the first hit at a position is the longest one.
    for (auto& c : by_first_byte_)
        std::stable_sort(c.begin(), c.end(), [](const Cand& a, const Cand& b) { return a.text.size() > b.text.size(); });
}

namespace {
bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
}  // namespace

void SpecialSplitter::split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
        const auto& cands = by_first_byte_[static_cast<uint8_t>(text[i])];
        const Cand* hit = nullptr;
        for (const auto& c : cands) {
            if (!parse_special && !c.always) continue;
            if (text.compare(i, c.text.size(), c.text) == 0) {
                hit = &c;
                break;
            }
        }
        if (!hit) {
            ++i;
            continue;
        }
        size_t left_end = i;
        if (hit->strip & Vocab::kLstrip)
            while (left_end > start && ascii_space(text[left_end - 1])) --left_end;
        if (left_end > start) out.push_back({text.substr(start, left_end - start), -1});
        out.push_back({text.substr(i, hit->text.size()), hit->id});
        i += hit->text.size();
        if (hit->strip & Vocab::kRstrip)
            while (i < text.size() && ascii_space(text[i])) ++i;
        start = i;
    }
    if (start < text.size()) out.push_back({text.substr(start), -1});
}

}  // namespace wo::tok
