// Shared by the tokenizer tests: golden files from tests/golden/gen-tokenizer.mjs and the
// tokenizers they name, loaded once per process.
#pragma once
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace wo::test {

std::string golden_dir();  // WO_GOLDEN
bool goldens_present();    // false: scripts/goldens was not run
std::string read_bytes(const std::string& path);
const nlohmann::json& golden(const std::string& name);  // tokenizer/<name>.json
// source: "json" or "gguf"; nullptr when the golden names no such source.
const Tokenizer* golden_tokenizer(const std::string& name, const std::string& source);
std::string case_bytes(const nlohmann::json& c);  // "text" or "hex"
std::string corpus();

// Independent UTF-8 check (utf8proc's decoder, not the code under test).
inline bool valid_utf8(const std::string& s) {
    auto p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
    utf8proc_ssize_t n = static_cast<utf8proc_ssize_t>(s.size());
    while (n > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, n, &cp);
        if (k <= 0 || cp < 0) return false;
        p += k;
        n -= k;
    }
    return true;
}

}  // namespace wo::test

#define WO_REQUIRE_GOLDENS()                                                      \
    do {                                                                          \
        if (!::wo::test::goldens_present())                                       \
            GTEST_FAIL() << "goldens missing: run scripts/goldens " << WO_GOLDEN; \
    } while (0)
