// Text helpers for the tokenizers: UTF-8 validation and repair, NFC, and GPT-2's byte-to-unicode map.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace wo::tok {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t utf8_valid_len(std::string_view s, size_t i);
// Length of the longest prefix of s[i..] that could still become a valid sequence when more
// bytes arrive (a truncated but so far correct sequence); 0 when s[i] can never start one.
size_t utf8_incomplete_len(std::string_view s, size_t i);
bool utf8_is_valid(std::string_view s);
// Bytes of the maximal invalid subpart at s[i] (at least 1), when s[i] starts no valid sequence.
size_t utf8_subpart_len(std::string_view s, size_t i);
// Replaces each maximal invalid subpart with U+FFFD, as WHATWG TextDecoder and Python's
// errors="replace" do, so raw bytes tokenize like the references' decoded strings.
std::string utf8_repair(std::string_view s);
// Decodes one code point at s[i] (which must be valid) and advances i.
uint32_t utf8_next(std::string_view s, size_t& i);
void utf8_append(std::string& out, uint32_t cp);

// Unicode NFC (utf8proc); input must be valid UTF-8.
std::string nfc(std::string_view s);

// GPT-2 byte-level alphabet: every byte maps to one printable code point (printable Latin-1
// bytes to themselves, the rest to U+0100 upward), so any byte string is a string of "chars".
const std::array<std::string, 256>& byte_to_unicode();
// Inverse map over a whole piece; false when a char is outside the alphabet.
bool unicode_to_bytes(std::string_view piece, std::string& out);

}  // namespace wo::tok
