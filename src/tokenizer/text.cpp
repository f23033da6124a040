// UTF-8, NFC and the byte-level alphabet (see text.h).
#include "tokenizer/text.h"

#include <utf8proc.h>

#include <cstdlib>
#include <unordered_map>

#include "util/error.h"

namespace wo::tok {

namespace {
// Allowed range of the second byte after each lead byte (Unicode Table 3-7), which rules out
// overlong forms, surrogates and code points past U+10FFFF.
struct Lead {
    int len;
    uint8_t lo, hi;
};
Lead lead_info(uint8_t b) {
    if (b < 0x80) return {1, 0, 0};
    if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
    if (b == 0xE0) return {3, 0xA0, 0xBF};
    if (b >= 0xE1 && b <= 0xEC) return {3, 0x80, 0xBF};
    if (b == 0xED) return {3, 0x80, 0x9F};
    if (b >= 0xEE && b <= 0xEF) return {3, 0x80, 0xBF};
    if (b == 0xF0) return {4, 0x90, 0xBF};
    if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
    if (b == 0xF4) return {4, 0x80, 0x8F};
    return {0, 0, 0};
}
// Number of bytes at s[i..] that form a correct (possibly truncated) prefix of a sequence.
size_t prefix_len(std::string_view s, size_t i, int& need) {
    Lead L = lead_info(static_cast<uint8_t>(s[i]));
    need = L.len;
    if (L.len <= 1) return L.len;
    size_t n = 1;
    while (n < static_cast<size_t>(L.len) && i + n < s.size()) {
        auto c = static_cast<uint8_t>(s[i + n]);
        bool ok = n == 1 ? (c >= L.lo && c <= L.hi) : (c >= 0x80 && c <= 0xBF);
        if (!ok) break;
        ++n;
    }
    return n;
}
}  // namespace

size_t utf8_valid_len(std::string_view s, size_t i) {
    int need = 0;
    size_t n = prefix_len(s, i, need);
    return n == static_cast<size_t>(need) ? n : 0;
}

size_t utf8_incomplete_len(std::string_view s, size_t i) {
    int need = 0;
    size_t n = prefix_len(s, i, need);
    return (need > 1 && i + n == s.size() && n < static_cast<size_t>(need)) ? n : 0;
}

size_t utf8_subpart_len(std::string_view s, size_t i) {
    int need = 0;
    size_t n = prefix_len(s, i, need);
    return n == 0 ? 1 : n;
}

bool utf8_is_valid(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        if (static_cast<uint8_t>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        size_t n = utf8_valid_len(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string utf8_repair(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (size_t i = 0; i < s.size();) {
        int need = 0;
        size_t n = prefix_len(s, i, need);
        if (need > 0 && n == static_cast<size_t>(need)) {
            out.append(s.substr(i, n));
            i += n;
        } else {
            out += "\xEF\xBF\xBD";  // one U+FFFD per maximal subpart
            i += n == 0 ? 1 : n;
        }
    }
    return out;
}

uint32_t utf8_next(std::string_view s, size_t& i) {
    auto b = static_cast<uint8_t>(s[i]);
    int len = lead_info(b).len;
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
    i += len;
    return cp;
}

void utf8_append(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::string nfc(std::string_view s) {
    // Pure ASCII is already NFC; skipping utf8proc there keeps the common case cheap.
    bool ascii = true;
    for (char c : s) ascii &= static_cast<uint8_t>(c) < 0x80;
    if (ascii) return std::string(s);
    utf8proc_uint8_t* out = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                      static_cast<utf8proc_ssize_t>(s.size()), &out,
                                      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0) throw Error(Code::INTERNAL, std::string("NFC normalization failed: ") + utf8proc_errmsg(n));
    std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    std::free(out);
    return r;
}

const std::array<std::string, 256>& byte_to_unicode() {
    static const std::array<std::string, 256> table = [] {
        std::array<std::string, 256> t;
        int next = 256;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            utf8_append(t[b], printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++));
        }
        return t;
    }();
    return table;
}

bool unicode_to_bytes(std::string_view piece, std::string& out) {
    static const std::unordered_map<uint32_t, uint8_t> inverse = [] {
        std::unordered_map<uint32_t, uint8_t> m;
        for (int b = 0; b < 256; ++b) {
            size_t i = 0;
            m[utf8_next(byte_to_unicode()[b], i)] = static_cast<uint8_t>(b);
        }
        return m;
    }();
    if (!utf8_is_valid(piece)) return false;
    for (size_t i = 0; i < piece.size();) {
        auto it = inverse.find(utf8_next(piece, i));
        if (it == inverse.end()) return false;
        out += static_cast<char>(it->second);
    }
    return true;
}

}  // namespace wo::tok
