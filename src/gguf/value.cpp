// Metadata value helpers declared in gguf.h.
#include "gguf/gguf.h"

namespace wo::gguf {

std::string_view value_type_name(ValueType t) {
    switch (t) {
        case ValueType::UINT8: return "UINT8";
        case ValueType::INT8: return "INT8";
        case ValueType::UINT16: return "UINT16";
        case ValueType::INT16: return "INT16";
        case ValueType::UINT32: return "UINT32";
        case ValueType::INT32: return "INT32";
        case ValueType::FLOAT32: return "FLOAT32";
        case ValueType::BOOL: return "BOOL";
        case ValueType::STRING: return "STRING";
        case ValueType::ARRAY: return "ARRAY";
        case ValueType::UINT64: return "UINT64";
        case ValueType::INT64: return "INT64";
        case ValueType::FLOAT64: return "FLOAT64";
    }
    return "UNKNOWN";
}

Value Value::string_array(const std::vector<std::string>& v) {
    std::vector<Value> items;
    items.reserve(v.size());
    for (const auto& s : v) items.push_back(str(s));
    return array(ValueType::STRING, std::move(items));
}

Value Value::i32_array(const std::vector<int32_t>& v) {
    std::vector<Value> items;
    items.reserve(v.size());
    for (int32_t x : v) items.push_back(i32(x));
    return array(ValueType::INT32, std::move(items));
}

Value Value::f32_array(const std::vector<float>& v) {
    std::vector<Value> items;
    items.reserve(v.size());
    for (float x : v) items.push_back(f32(x));
    return array(ValueType::FLOAT32, std::move(items));
}

}  // namespace wo::gguf
