// Lookups and typed metadata accessors of gguf::File. A wrong or missing key is bad input (the
// file does not describe what the caller needs), so it is Error(GGUF_INVALID) naming the key.

#include "gguf/gguf.h"
#include "util/error.h"

namespace wo::gguf {
namespace {

[[noreturn]] void wrong_type(std::string_view key, const Value& v, std::string_view expected) {
    throw Error(Code::GGUF_INVALID, "metadata key '" + std::string(key) + "' has type " +
                                        std::string(value_type_name(v.type)) + ", expected " + std::string(expected));
}

[[noreturn]] void out_of_range(std::string_view key, std::string_view what) {
    throw Error(Code::GGUF_INVALID, "metadata key '" + std::string(key) + "': " + std::string(what));
}

int64_t as_int(std::string_view key, const Value& v) {
    if (const auto* s = std::get_if<int64_t>(&v.data)) return *s;
    if (const auto* u = std::get_if<uint64_t>(&v.data)) {
        if (*u > uint64_t{INT64_MAX}) out_of_range(key, "value " + std::to_string(*u) + " does not fit in int64");
        return static_cast<int64_t>(*u);
    }
    wrong_type(key, v, "an integer");
}

double as_float(std::string_view key, const Value& v) {
    if (const auto* d = std::get_if<double>(&v.data)) return *d;
    if (const auto* s = std::get_if<int64_t>(&v.data)) return static_cast<double>(*s);
    if (const auto* u = std::get_if<uint64_t>(&v.data)) return static_cast<double>(*u);
    wrong_type(key, v, "a number");
}

const Array& as_array(std::string_view key, const Value& v, std::string_view expected) {
    if (const auto* a = std::get_if<Array>(&v.data)) return *a;
    wrong_type(key, v, expected);
}

}  // namespace

const Value* File::find(std::string_view key) const {
    auto it = kv_index_.find(std::string(key));
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

static const Value& require(const File& f, std::string_view key) {
    const Value* v = f.find(key);
    if (!v) throw Error(Code::GGUF_INVALID, "metadata key '" + std::string(key) + "' is missing");
    return *v;
}

std::string File::get_string(std::string_view key) const {
    const Value& v = require(*this, key);
    if (const auto* s = std::get_if<std::string>(&v.data)) return *s;
    wrong_type(key, v, "STRING");
}

int64_t File::get_int(std::string_view key) const { return as_int(key, require(*this, key)); }

uint64_t File::get_uint(std::string_view key) const {
    const Value& v = require(*this, key);
    if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
    if (const auto* s = std::get_if<int64_t>(&v.data)) {
        if (*s < 0) out_of_range(key, "value " + std::to_string(*s) + " is negative, expected an unsigned integer");
        return static_cast<uint64_t>(*s);
    }
    wrong_type(key, v, "an integer");
}

double File::get_float(std::string_view key) const { return as_float(key, require(*this, key)); }

bool File::get_bool(std::string_view key) const {
    const Value& v = require(*this, key);
    if (const auto* b = std::get_if<bool>(&v.data)) return *b;
    wrong_type(key, v, "BOOL");
}

std::vector<std::string> File::get_string_array(std::string_view key) const {
    const Array& a = as_array(key, require(*this, key), "an array of STRING");
    if (a.elem_type != ValueType::STRING)
        out_of_range(key, "array of " + std::string(value_type_name(a.elem_type)) + ", expected an array of STRING");
    std::vector<std::string> out;
    out.reserve(a.items.size());
    for (const Value& item : a.items) out.push_back(std::get<std::string>(item.data));
    return out;
}

std::vector<int64_t> File::get_int_array(std::string_view key) const {
    const Array& a = as_array(key, require(*this, key), "an array of integers");
    std::vector<int64_t> out;
    out.reserve(a.items.size());
    for (const Value& item : a.items) out.push_back(as_int(key, item));
    return out;
}

std::vector<float> File::get_float_array(std::string_view key) const {
    const Array& a = as_array(key, require(*this, key), "an array of numbers");
    std::vector<float> out;
    out.reserve(a.items.size());
    for (const Value& item : a.items) out.push_back(static_cast<float>(as_float(key, item)));
    return out;
}

std::optional<std::string> File::find_string(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_string(key);
}

std::optional<int64_t> File::find_int(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_int(key);
}

std::optional<double> File::find_float(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_float(key);
}

std::optional<bool> File::find_bool(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_bool(key);
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(std::string(name));
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(std::string_view name) const {
    const TensorInfo* t = find_tensor(name);
    if (!t) throw Error(Code::GGUF_INVALID, "tensor '" + std::string(name) + "' is missing");
    return *t;
}

}  // namespace wo::gguf
