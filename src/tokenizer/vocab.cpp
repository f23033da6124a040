// Token table and special-token splitting (see vocab.h).
#include "tokenizer/vocab.h"

#include <algorithm>

#include "tokenizer/text.h"

namespace wo::tok {

void Vocab::build_index() {
    piece_to_id.clear();
    piece_to_id.reserve(pieces.size() * 2);
    for (int32_t i = 0; i < size(); ++i)
        if (!pieces[i].empty()) piece_to_id.emplace(pieces[i], i);
}

void SpecialSplitter::build(const Vocab& v, bool unicode_ws) {
    unicode_ws_ = unicode_ws;
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
        std::stable_sort(c.begin(), c.end(),
                         [](const Cand& a, const Cand& b) { return a.text.size() > b.text.size(); });
}

namespace {
bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
bool white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}
// Byte length of the whitespace character starting at / ending at `pos`, or 0.
size_t space_at(std::string_view t, size_t pos, bool unicode) {
    if (pos >= t.size()) return 0;
    if (static_cast<uint8_t>(t[pos]) < 0x80) return ascii_space(t[pos]) ? 1 : 0;  // the same in both sets
    if (!unicode) return 0;
    size_t n = utf8_valid_len(t, pos);
    if (n == 0) return 0;
    size_t k = pos;
    return white_space(utf8_next(t, k)) ? n : 0;
}
size_t space_before(std::string_view t, size_t pos, size_t floor, bool unicode) {
    if (pos <= floor) return 0;
    size_t s = pos - 1;
    while (unicode && s > floor && (static_cast<uint8_t>(t[s]) & 0xC0) == 0x80 && pos - s < 4) --s;
    size_t n = space_at(t, s, unicode);
    return s + n == pos ? n : 0;
}
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
            while (size_t n = space_before(text, left_end, start, unicode_ws_)) left_end -= n;
        if (left_end > start) out.push_back({text.substr(start, left_end - start), -1});
        out.push_back({text.substr(i, hit->text.size()), hit->id});
        i += hit->text.size();
        if (hit->strip & Vocab::kRstrip)
            while (size_t n = space_at(text, i, unicode_ws_)) i += n;
        start = i;
    }
    if (start < text.size()) out.push_back({text.substr(start), -1});
}

}  // namespace wo::tok
