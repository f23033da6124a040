// GGUF v3 writer. The header (metadata and tensor infos) is built in memory; tensor data is
// streamed one tensor at a time, so a Filler-backed tensor is materialised only while written.
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "gguf/cursor.h"
#include "gguf/gguf.h"
#include "util/error.h"

namespace wo::gguf {
namespace {

using detail::checked_add;
using detail::checked_align;
using detail::checked_mul;

[[noreturn]] void bad(const std::string& what) { throw Error(Code::INVALID_ARGUMENT, "gguf writer: " + what); }

// The variant alternative and range must match the declared type, or the bytes would lie.
void validate(const Value& v, const std::string& key, int depth) {
    const std::string who = "metadata key '" + key + "' (" + std::string(value_type_name(v.type)) + "): ";
    auto uint_max = [&](uint64_t max) {
        const auto* u = std::get_if<uint64_t>(&v.data);
        if (!u) bad(who + "value is not held as an unsigned integer");
        if (*u > max) bad(who + "value " + std::to_string(*u) + " out of range");
    };
    auto int_range = [&](int64_t min, int64_t max) {
        const auto* s = std::get_if<int64_t>(&v.data);
        if (!s) bad(who + "value is not held as a signed integer");
        if (*s < min || *s > max) bad(who + "value " + std::to_string(*s) + " out of range");
    };
    switch (v.type) {
        case ValueType::UINT8: return uint_max(UINT8_MAX);
        case ValueType::UINT16: return uint_max(UINT16_MAX);
        case ValueType::UINT32: return uint_max(UINT32_MAX);
        case ValueType::UINT64: return uint_max(UINT64_MAX);
        case ValueType::INT8: return int_range(INT8_MIN, INT8_MAX);
        case ValueType::INT16: return int_range(INT16_MIN, INT16_MAX);
        case ValueType::INT32: return int_range(INT32_MIN, INT32_MAX);
        case ValueType::INT64: return int_range(INT64_MIN, INT64_MAX);
        case ValueType::FLOAT32:
        case ValueType::FLOAT64: {
            const auto* d = std::get_if<double>(&v.data);
            if (!d) bad(who + "value is not held as a double");
            if (v.type == ValueType::FLOAT32 && std::isfinite(*d) && std::fabs(*d) > FLT_MAX)
                bad(who + "value does not fit in float32");
            return;
        }
        case ValueType::BOOL:
            if (!std::holds_alternative<bool>(v.data)) bad(who + "value is not held as a bool");
            return;
        case ValueType::STRING:
            if (!std::holds_alternative<std::string>(v.data)) bad(who + "value is not held as a string");
            if (std::get<std::string>(v.data).size() > kMaxStringBytes) bad(who + "string longer than the readers' limit");
            return;
        case ValueType::ARRAY: {
            const auto* a = std::get_if<Array>(&v.data);
            if (!a) bad(who + "value is not held as an array");
            if (depth >= kMaxArrayDepth) bad(who + "arrays nested deeper than " + std::to_string(kMaxArrayDepth));
            for (const Value& item : a->items) {
                if (item.type != a->elem_type)
                    bad(who + "array of " + std::string(value_type_name(a->elem_type)) + " holds a " +
                        std::string(value_type_name(item.type)));
                validate(item, key, depth + 1);
            }
            return;
        }
    }
    bad(who + "unknown value type " + std::to_string(static_cast<uint32_t>(v.type)));
}

template <class T>
void put(std::vector<uint8_t>& out, T v) {
    const size_t n = out.size();
    out.resize(n + sizeof(T));
    std::memcpy(out.data() + n, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

// The payload of a value (its type tag is written by the caller: the key's, or the array's).
void put_value(std::vector<uint8_t>& out, const Value& v) {
    switch (v.type) {
        case ValueType::UINT8: return put(out, static_cast<uint8_t>(std::get<uint64_t>(v.data)));
        case ValueType::UINT16: return put(out, static_cast<uint16_t>(std::get<uint64_t>(v.data)));
        case ValueType::UINT32: return put(out, static_cast<uint32_t>(std::get<uint64_t>(v.data)));
        case ValueType::UINT64: return put(out, std::get<uint64_t>(v.data));
        case ValueType::INT8: return put(out, static_cast<int8_t>(std::get<int64_t>(v.data)));
        case ValueType::INT16: return put(out, static_cast<int16_t>(std::get<int64_t>(v.data)));
        case ValueType::INT32: return put(out, static_cast<int32_t>(std::get<int64_t>(v.data)));
        case ValueType::INT64: return put(out, std::get<int64_t>(v.data));
        case ValueType::FLOAT32: return put(out, static_cast<float>(std::get<double>(v.data)));
        case ValueType::FLOAT64: return put(out, std::get<double>(v.data));
        case ValueType::BOOL: return put<uint8_t>(out, std::get<bool>(v.data) ? 1 : 0);
        case ValueType::STRING: return put_string(out, std::get<std::string>(v.data));
        case ValueType::ARRAY: {
            const Array& a = std::get<Array>(v.data);
            put(out, static_cast<uint32_t>(a.elem_type));
            put<uint64_t>(out, a.items.size());
            for (const Value& item : a.items) put_value(out, item);
            return;
        }
    }
}

}  // namespace

Writer::Writer(uint64_t alignment) : alignment_(alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > UINT32_MAX)
        bad("alignment " + std::to_string(alignment) + " is not a power of two that fits in uint32");
    // Readers only learn a non-default alignment from this key, so it must be in the file.
    if (alignment != kDefaultAlignment) kv_.emplace_back("general.alignment", Value::u32(static_cast<uint32_t>(alignment)));
}

// Scalars, strings and arrays in v (what the reader counts against kMaxMetadataValues).
static uint64_t count_values(const Value& v) {
    uint64_t n = 1;
    if (const auto* a = std::get_if<Array>(&v.data))
        for (const Value& item : a->items) n += count_values(item);
    return n;
}

void Writer::set(std::string key, Value v) {
    if (key.size() > kMaxStringBytes) bad("metadata key longer than the readers' limit");
    validate(v, key, 0);
    if (key == "general.alignment") {
        const auto* u = std::get_if<uint64_t>(&v.data);
        if (v.type != ValueType::UINT32 || !u || *u != alignment_)
            bad("general.alignment must be the UINT32 " + std::to_string(alignment_) + " the writer was built with");
    }
    for (auto& kv : kv_) {
        if (kv.first == key) {
            kv.second = std::move(v);
            return;
        }
    }
    kv_.emplace_back(std::move(key), std::move(v));
}

void Writer::add_tensor(std::string name, GgmlType type, std::vector<uint64_t> shape, std::vector<uint8_t> bytes) {
    add_tensor(std::move(name), type, std::move(shape), Filler{});
    Pending& p = tensors_.back();
    if (bytes.size() != p.info.n_bytes) {
        const std::string msg = "tensor '" + p.info.name + "': " + std::to_string(bytes.size()) +
                                " bytes given, its shape and type need " + std::to_string(p.info.n_bytes);
        tensors_.pop_back();
        bad(msg);
    }
    p.bytes = std::move(bytes);
}

void Writer::add_tensor(std::string name, GgmlType type, std::vector<uint64_t> shape, Filler fill) {
    const std::string who = "tensor '" + name + "': ";
    for (const auto& p : tensors_)
        if (p.info.name == name) bad(who + "added twice");
    if (name.size() > kMaxStringBytes) bad("tensor name longer than the readers' limit");
    if (tensors_.size() >= kMaxTensors) bad("more than " + std::to_string(kMaxTensors) + " tensors");
    if (shape.empty() || shape.size() > 4) bad(who + std::to_string(shape.size()) + " dimensions, expected 1..4");
    const TypeTraits& tr = traits(type);
    uint64_t n_el = 1;
    for (uint64_t ne : shape) {
        if (ne == 0) bad(who + "a dimension is 0");
        if (!checked_mul(n_el, ne, n_el) || n_el > uint64_t{INT64_MAX}) bad(who + "element count overflows");
    }
    if (shape[0] % tr.block_size != 0)
        bad(who + "ne0 " + std::to_string(shape[0]) + " is not a multiple of the " + std::string(tr.name) +
            " block size " + std::to_string(tr.block_size));
    uint64_t n_bytes, offset = 0;
    if (!checked_mul(row_bytes(type, shape[0]), n_el / shape[0], n_bytes)) bad(who + "byte size overflows");
    if (!tensors_.empty()) {
        const TensorInfo& prev = tensors_.back().info;
        uint64_t end;
        if (!checked_add(prev.offset, prev.n_bytes, end) || !checked_align(end, alignment_, offset))
            bad(who + "data offset overflows");
    }
    Pending p;
    p.info = TensorInfo{std::move(name), type, std::move(shape), offset, n_el, n_bytes};
    p.fill = std::move(fill);
    tensors_.push_back(std::move(p));
}

namespace {

// Magic, counts, metadata, tensor infos and the padding up to the data section.
std::vector<uint8_t> header_bytes(const std::vector<std::pair<std::string, Value>>& kv,
                                  const std::vector<TensorInfo>& infos, uint64_t alignment) {
    uint64_t values = 0;
    for (const auto& kv_pair : kv) values += count_values(kv_pair.second);
    if (values > kMaxMetadataValues)
        bad(std::to_string(values) + " metadata values, more than readers accept (" + std::to_string(kMaxMetadataValues) + ")");
    std::vector<uint8_t> out;
    put<uint32_t>(out, 0x46554747);  // "GGUF"
    put<uint32_t>(out, 3);
    put<uint64_t>(out, infos.size());
    put<uint64_t>(out, kv.size());
    for (const auto& [key, v] : kv) {
        put_string(out, key);
        put(out, static_cast<uint32_t>(v.type));
        put_value(out, v);
    }
    for (const TensorInfo& t : infos) {
        put_string(out, t.name);
        put<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
        for (uint64_t ne : t.shape) put<uint64_t>(out, ne);
        put(out, static_cast<uint32_t>(t.type));
        put<uint64_t>(out, t.offset);
    }
    out.resize((out.size() + alignment - 1) / alignment * alignment, 0);
    return out;
}

}  // namespace

// Calls `sink(bytes, n)` with the whole file in order, materialising one tensor at a time.
template <class Sink>
static void stream(const std::vector<std::pair<std::string, Value>>& kv, const auto& tensors,
                   uint64_t alignment, Sink&& sink, const std::function<void(uint64_t)>& on_tensor = {}) {
    std::vector<TensorInfo> infos;
    infos.reserve(tensors.size());
    for (const auto& p : tensors) infos.push_back(p.info);
    const std::vector<uint8_t> header = header_bytes(kv, infos, alignment);
    sink(header.data(), header.size());
    uint64_t pos = 0;  // within the data section
    std::vector<uint8_t> buf;
    for (const auto& p : tensors) {
        const std::vector<uint8_t> pad(p.info.offset - pos, 0);
        sink(pad.data(), pad.size());
        if (p.fill) {
            buf.assign(p.info.n_bytes, 0);
            p.fill(buf.data(), buf.size());
            sink(buf.data(), buf.size());
        } else {
            sink(p.bytes.data(), p.bytes.size());
        }
        if (on_tensor) on_tensor(p.info.n_bytes);
        pos = p.info.offset + p.info.n_bytes;
    }
    // Pad the end too, so the file size is a multiple of the alignment as ggml writes it.
    uint64_t end = 0;
    checked_align(pos, alignment, end);
    const std::vector<uint8_t> tail(end - pos, 0);
    sink(tail.data(), tail.size());
}

std::vector<uint8_t> Writer::to_bytes() const {
    std::vector<uint8_t> out;
    stream(kv_, tensors_, alignment_, [&](const uint8_t* p, size_t n) { out.insert(out.end(), p, p + n); });
    return out;
}

uint64_t Writer::tensor_bytes() const {
    uint64_t n = 0;
    for (const auto& p : tensors_) n += p.info.n_bytes;
    return n;
}

void Writer::write(const std::string& path, const std::function<void(uint64_t)>& on_tensor) const {
    // Written beside the target and renamed, so a failure never leaves a truncated model behind.
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(Code::IO_ERROR, "cannot create " + tmp + ": " + std::strerror(errno));
    try {
        stream(
            kv_, tensors_, alignment_,
            [&](const uint8_t* p, size_t n) {
                if (n && std::fwrite(p, 1, n, f) != n)
                    throw Error(Code::IO_ERROR, "cannot write " + tmp + ": " + std::strerror(errno));
            },
            on_tensor);
        const int rc = std::fclose(f);
        f = nullptr;
        if (rc != 0) throw Error(Code::IO_ERROR, "cannot write " + tmp + ": " + std::strerror(errno));
        if (std::rename(tmp.c_str(), path.c_str()) != 0)
            throw Error(Code::IO_ERROR, "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
    } catch (...) {
        if (f) std::fclose(f);
        std::remove(tmp.c_str());
        throw;
    }
}

}  // namespace wo::gguf
