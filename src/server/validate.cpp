// Request field validation.
#include "server/validate.h"

#include "server/http_util.h"

#include <cmath>

#include "tokenizer/tokenizer.h"

namespace wo {

namespace {
std::string fmt_num(double v) {
    nlohmann::json j = v;
    // Whole numbers print without ".0"; the range check comes first (casting 1e300 to int64 is
    // undefined: found by fuzz_requests).
    if (std::fabs(v) < 9.2e18 && v == std::floor(v)) j = static_cast<int64_t>(v);
    return j.dump();
}
}  // namespace

std::string string_at(const nlohmann::json& o, const char* key, const std::string& def) {
    if (!o.is_object()) return def;
    const auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : def;
}

std::string clip(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

nlohmann::json errors_json(const std::vector<FieldError>& errors) {
    nlohmann::json a = nlohmann::json::array();
    for (size_t i = 0; i < errors.size() && i < kMaxReportedErrors; ++i)
        a.push_back({{"field", clip(errors[i].field, 128)},
                     {"constraint", clip(errors[i].constraint, 128)},
                     {"message", clip(errors[i].message)}});
    nlohmann::json j = {{"errors", a}};
    if (errors.size() > kMaxReportedErrors) j["error_count"] = errors.size();  // the rest are not listed
    return j;
}

std::optional<double> FieldReader::number(const std::string& f, double lo, double hi, bool lo_open) {
    if (!present(f)) return std::nullopt;
    const std::string c = "range(" + fmt_num(lo) + (lo_open ? "<" : "") + "..=" + fmt_num(hi) + ")";
    if (!body_[f].is_number()) {
        fail(f, c, f + " must be a number");
        return std::nullopt;
    }
    const double v = body_[f].get<double>();
    if (!(lo_open ? v > lo : v >= lo) || !(v <= hi)) {
        fail(f, c, f + " must be " + (lo_open ? "> " : ">= ") + fmt_num(lo) + " and <= " + fmt_num(hi) + " (got " +
                       fmt_num(v) + ")");
        return std::nullopt;
    }
    return v;
}

std::optional<int64_t> FieldReader::integer(const std::string& f, int64_t lo, int64_t hi) {
    if (!present(f)) return std::nullopt;
    const std::string c = "range(" + std::to_string(lo) + "..=" + std::to_string(hi) + ")";
    const auto& v = body_[f];
    // A float is accepted when it is a whole number; out-of-range floats are compared as
    // doubles first (converting 1e300 to int64 would be undefined).
    const double d = v.is_number() ? v.get<double>() : 0;
    const bool float_in_range = v.is_number_float() && d >= -9.2e18 && d <= 9.2e18;
    const bool integral = v.is_number_integer() || (v.is_number_float() && (!float_in_range || d == std::floor(d)));
    if (!integral) {
        fail(f, c, f + " must be an integer");
        return std::nullopt;
    }
    const bool too_big = (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) ||
                         (v.is_number_float() && !float_in_range);
    const int64_t x = too_big ? (d < 0 ? INT64_MIN : INT64_MAX) : v.is_number_float() ? static_cast<int64_t>(d) : v.get<int64_t>();
    if (too_big || x < lo || x > hi) {
        fail(f, c, f + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " (got " + v.dump().substr(0, 32) + ")");
        return std::nullopt;
    }
    return x;
}

std::optional<uint64_t> FieldReader::uint64(const std::string& f) {
    if (!present(f)) return std::nullopt;
    const auto& v = body_[f];
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
    fail(f, "range(0..=18446744073709551615)", f + " must be an unsigned 64-bit integer");
    return std::nullopt;
}

std::optional<bool> FieldReader::boolean(const std::string& f) {
    if (!present(f)) return std::nullopt;
    if (!body_[f].is_boolean()) {
        fail(f, "type(boolean)", f + " must be true or false");
        return std::nullopt;
    }
    return body_[f].get<bool>();
}

std::optional<std::string> FieldReader::string(const std::string& f, size_t lo, size_t hi, bool required) {
    const std::string c = "length(" + std::to_string(lo) + "..=" + std::to_string(hi) + ")";
    if (!present(f)) {
        if (required) fail(f, "required", f + " is required");
        return std::nullopt;
    }
    if (!body_[f].is_string()) {
        fail(f, "type(string)", f + " must be a string");
        return std::nullopt;
    }
    const std::string s = body_[f].get<std::string>();
    size_t n = 0;
    if (!utf8_length(s, n)) {
        fail(f, "utf8", f + " is not valid UTF-8");
        return std::nullopt;
    }
    if (n < lo || n > hi) {
        fail(f, n == 0 && lo == 1 ? "non_empty" : c,
             f + " must have " + std::to_string(lo) + ".." + std::to_string(hi) + " characters (got " + std::to_string(n) + ")");
        return std::nullopt;
    }
    return s;
}

std::optional<std::vector<std::string>> FieldReader::strings(const std::string& f, size_t max_n, bool allow_single,
                                                            size_t max_len) {
    if (!present(f)) return std::nullopt;
    const auto& v = body_[f];
    std::vector<std::string> out;
    if (allow_single && v.is_string()) {
        out.push_back(v.get<std::string>());
    } else if (v.is_array()) {
        if (v.size() > max_n) {
            fail(f, "count(0..=" + std::to_string(max_n) + ")",
                 f + " has " + std::to_string(v.size()) + " entries; at most " + std::to_string(max_n) + " are allowed");
            return std::nullopt;
        }
        for (const auto& x : v) {
            if (!x.is_string()) {
                fail(f, "type(string[])", f + " must be an array of strings");
                return std::nullopt;
            }
            out.push_back(x.get<std::string>());
        }
    } else {
        fail(f, "type(string[])", f + " must be an array of strings");
        return std::nullopt;
    }
    if (out.size() > max_n) {
        fail(f, "count(0..=" + std::to_string(max_n) + ")",
             f + " has " + std::to_string(out.size()) + " entries; at most " + std::to_string(max_n) + " are allowed");
        return std::nullopt;
    }
    for (const auto& s : out) {
        size_t n = 0;
        if (s.empty()) {
            fail(f, "non_empty", "each entry of " + f + " must be non-empty");
            return std::nullopt;
        }
        if (!utf8_length(s, n)) {
            fail(f, "utf8", "each entry of " + f + " must be valid UTF-8");
            return std::nullopt;
        }
        if (n > max_len) {
            fail(f, "length(1..=" + std::to_string(max_len) + ")",
                 "each entry of " + f + " must have at most " + std::to_string(max_len) + " characters (got " +
                     std::to_string(n) + ")");
            return std::nullopt;
        }
    }
    return out;
}

SamplingParams read_sampling(FieldReader& r, int vocab_size) {
    SamplingParams p;
    p.temperature = static_cast<float>(r.number("temperature", 0, 2).value_or(1.0));
    p.top_p = static_cast<float>(r.number("top_p", 0, 1).value_or(1.0));
    p.top_k = static_cast<int32_t>(r.integer("top_k", 0, vocab_size).value_or(0));
    p.min_p = static_cast<float>(r.number("min_p", 0, 1).value_or(0.0));
    // 0 would divide positive logits by zero; the spec's 0..=2 is read as (0, 2].
    p.repetition_penalty = static_cast<float>(r.number("repetition_penalty", 0, 2, /*lo_open=*/true).value_or(1.0));
    p.seed = r.uint64("seed").value_or(random_seed());
    return p;
}

std::optional<std::vector<std::string>> read_stops(FieldReader& r, const Tokenizer& tok, bool allow_single) {
    auto stop = r.strings("stop", 4, allow_single, 256);
    if (!stop) return std::nullopt;
    for (const auto& s : *stop)
        if (tok.encode(s, false).size() > 32) {
            r.fail("stop", "tokens(1..=32)", "each stop sequence must be at most 32 tokens");
            return std::nullopt;
        }
    return stop;
}

}  // namespace wo
