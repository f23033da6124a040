// Field-by-field validation of request bodies: every problem is collected (not just the
// first) so a client can fix them all at once; nothing reaches the engine unless all pass.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backend/sampling.h"

namespace wo {

class Tokenizer;

struct FieldError {
    std::string field, constraint, message;
};
// Error bodies stay small whatever the request: the first problems, then a count.
inline constexpr size_t kMaxReportedErrors = 16;
// {"errors":[...]} with at most kMaxReportedErrors entries, plus "error_count" when there are more;
// each entry's strings clipped.
nlohmann::json errors_json(const std::vector<FieldError>& errors);
// At most the first `n` bytes of `s` and "..." (messages echo request text; a cut character is
// replaced when the body is written). With 16 errors, a body stays under 16 KB.
std::string clip(const std::string& s, size_t n = 300);

// o[key] when `o` is an object holding a string there, else `def` (json::value throws when the
// key holds another type, which a request must never make happen).
std::string string_at(const nlohmann::json& o, const char* key, const std::string& def = "");

// Reads optional fields of `body` against ranges, appending a FieldError for each violation.
class FieldReader {
public:
    FieldReader(const nlohmann::json& body, std::vector<FieldError>& errors) : body_(body), errors_(errors) {}

    bool present(const std::string& f) const { return body_.contains(f) && !body_[f].is_null(); }
    void fail(const std::string& f, const std::string& constraint, const std::string& message) {
        errors_.push_back({f, constraint, message});
    }
    // Numbers in [lo, hi]; `lo_open` excludes lo. Wrong types are errors too.
    std::optional<double> number(const std::string& f, double lo, double hi, bool lo_open = false);
    std::optional<int64_t> integer(const std::string& f, int64_t lo, int64_t hi);
    std::optional<uint64_t> uint64(const std::string& f);
    std::optional<bool> boolean(const std::string& f);
    // A string of lo..hi Unicode code points.
    std::optional<std::string> string(const std::string& f, size_t lo, size_t hi, bool required = true);
    // A string or an array of strings (OpenAI `stop`), at most max_n, each 1..max_len code points.
    std::optional<std::vector<std::string>> strings(const std::string& f, size_t max_n, bool allow_single,
                                                    size_t max_len = 256);

private:
    const nlohmann::json& body_;
    std::vector<FieldError>& errors_;
};

// The sampling fields shared by /execute and the OpenAI routes (temperature, top_p, top_k,
// min_p, repetition_penalty, seed), with the worker's defaults; seed is drawn when absent.
SamplingParams read_sampling(FieldReader& r, int vocab_size);

// `stop`: at most 4 strings of at most 256 characters and 32 tokens each (the length is checked
// first, so a huge string is refused before it costs a tokenization).
std::optional<std::vector<std::string>> read_stops(FieldReader& r, const Tokenizer& tok, bool allow_single);

}  // namespace wo
