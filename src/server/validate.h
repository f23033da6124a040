// Field-by-field validation of request bodies: every problem is collected (not just the
// first) so a client can fix them all at once; nothing reaches the engine unless all pass.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backend/sampling.h"

namespace wo {

struct FieldError {
    std::string field, constraint, message;
};
nlohmann::json errors_json(const std::vector<FieldError>& errors);  // {"errors":[...]}

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
    // A string or an array of strings (OpenAI `stop`), at most max_n, each non-empty.
    std::optional<std::vector<std::string>> strings(const std::string& f, size_t max_n, bool allow_single);

private:
    const nlohmann::json& body_;
    std::vector<FieldError>& errors_;
};

// The sampling fields shared by /execute and the OpenAI routes (temperature, top_p, top_k,
// min_p, repetition_penalty, seed), with the worker's defaults; seed is drawn when absent.
SamplingParams read_sampling(FieldReader& r, int vocab_size);

}  // namespace wo
