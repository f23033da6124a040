// Internal to src/gguf: bounds-checked little-endian reads and checked arithmetic for the reader.
// Every failure is Error(GGUF_INVALID, "<what> at byte offset N") so a bad file is reported, never
// read past its end.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "gguf/gguf.h"

namespace wo::gguf::detail {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

[[noreturn]] void fail(uint64_t offset, const std::string& what);

// A name read from the file, fit for an error message: non-printable bytes (a NUL would cut the
// message short) become \xNN and very long names are cut.
inline std::string printable(std::string_view s) {
    static const char* kHex = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < s.size() && i < 96; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    if (s.size() > 96) out += "...(" + std::to_string(s.size()) + " bytes)";
    return out;
}

// Overflow-checked arithmetic: false when the result does not fit.
inline bool checked_mul(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
inline bool checked_add(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_add_overflow(a, b, &out); }
// Rounds x up to a multiple of `align` (a power of two); false on overflow.
inline bool checked_align(uint64_t x, uint64_t align, uint64_t& out) {
    uint64_t t;
    if (!checked_add(x, align - 1, t)) return false;
    out = t & ~(align - 1);
    return true;
}

class Cursor {
public:

    Cursor(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    void need(uint64_t n, std::string_view what) const {
        if (n > remaining())
            fail(pos_, "truncated " + std::string(what) + " (needs " + std::to_string(n) + " bytes, " +
                           std::to_string(remaining()) + " left)");
    }

    template <class T>
    T read(std::string_view what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    // A GGUF string: u64 byte length, then the bytes (no terminator).
    std::string read_string(std::string_view what) {
        const uint64_t at = pos_;
        const uint64_t n = read<uint64_t>(what);
        if (n > kMaxStringBytes)
            fail(at, std::string(what) + " length " + std::to_string(n) + " exceeds the limit of " +
                         std::to_string(kMaxStringBytes) + " bytes");
        if (n > remaining())
            fail(at, std::string(what) + " length " + std::to_string(n) + " exceeds the " +
                         std::to_string(remaining()) + " bytes left in the file");
        std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
        pos_ += n;
        return s;
    }

private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
};

}  // namespace wo::gguf::detail
