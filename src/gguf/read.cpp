// GGUF v2/v3 reader: parses and validates the header, metadata and tensor infos of a mapped
// buffer before anything is used. Bounds come from the file itself: a count or length can never
// exceed what the remaining bytes could hold, so a corrupt header cannot allocate or loop beyond
// the file's size.
#include <algorithm>

#include "gguf/cursor.h"
#include "gguf/gguf.h"
#include "util/error.h"
#include "util/mmap.h"

namespace wo::gguf {
namespace detail {

void fail(uint64_t offset, const std::string& what) {
    throw Error(Code::GGUF_INVALID, what + " at byte offset " + std::to_string(offset));
}

}  // namespace detail

namespace {

using detail::checked_add;
using detail::checked_align;
using detail::checked_mul;
using detail::Cursor;
using detail::fail;

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

// Smallest encoding of one value of type t; bounds an array count by the bytes left.
uint64_t min_encoded_size(ValueType t) {
    switch (t) {
        case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
        case ValueType::UINT16: case ValueType::INT16: return 2;
        case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
        case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
        case ValueType::STRING: return 8;     // the length
        case ValueType::ARRAY: return 4 + 8;  // element type + count
    }
    return 1;
}

std::string in_key(std::string_view key) { return "metadata key '" + detail::printable(key) + "': "; }

// Values still allowed in this file (kMaxMetadataValues), so the Values built stay bounded.
struct Budget {
    uint64_t values_left = kMaxMetadataValues;
};

Value read_value(Cursor& c, ValueType t, int depth, std::string_view key, Budget& budget) {
    if (budget.values_left == 0)
        fail(c.pos(), in_key(key) + "more than " + std::to_string(kMaxMetadataValues) + " metadata values in the file");
    --budget.values_left;
    switch (t) {
        case ValueType::UINT8: return {t, uint64_t{c.read<uint8_t>("uint8 value")}};
        case ValueType::INT8: return {t, int64_t{c.read<int8_t>("int8 value")}};
        case ValueType::UINT16: return {t, uint64_t{c.read<uint16_t>("uint16 value")}};
        case ValueType::INT16: return {t, int64_t{c.read<int16_t>("int16 value")}};
        case ValueType::UINT32: return {t, uint64_t{c.read<uint32_t>("uint32 value")}};
        case ValueType::INT32: return {t, int64_t{c.read<int32_t>("int32 value")}};
        case ValueType::UINT64: return {t, c.read<uint64_t>("uint64 value")};
        case ValueType::INT64: return {t, c.read<int64_t>("int64 value")};
        case ValueType::FLOAT32: return {t, double{c.read<float>("float32 value")}};
        case ValueType::FLOAT64: return {t, c.read<double>("float64 value")};
        case ValueType::BOOL: {
            const uint64_t at = c.pos();
            const uint8_t b = c.read<uint8_t>("bool value");
            if (b > 1) fail(at, in_key(key) + "bool value " + std::to_string(b) + " is neither 0 nor 1");
            return {t, b == 1};
        }
        case ValueType::STRING: return {t, c.read_string("string value")};
        case ValueType::ARRAY: {
            // Each nesting level recurses once; the bound keeps a crafted file off the stack limit.
            if (depth >= kMaxArrayDepth)
                fail(c.pos(), in_key(key) + "arrays nested deeper than " + std::to_string(kMaxArrayDepth));
            const uint64_t type_at = c.pos();
            const uint32_t et = c.read<uint32_t>("array element type");
            if (!known_value_type(et)) fail(type_at, in_key(key) + "unknown array element type " + std::to_string(et));
            const auto elem = static_cast<ValueType>(et);
            const uint64_t count_at = c.pos();
            const uint64_t n = c.read<uint64_t>("array length");
            if (n > c.remaining() / min_encoded_size(elem))
                fail(count_at, in_key(key) + "array of " + std::to_string(n) + " " +
                                   std::string(value_type_name(elem)) + " cannot fit in the " +
                                   std::to_string(c.remaining()) + " bytes left in the file");
            Array a{elem, {}};
            a.items.reserve(std::min(n, budget.values_left));
            for (uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(c, elem, depth + 1, key, budget));
            return {t, std::move(a)};
        }
    }
    fail(c.pos(), in_key(key) + "unknown value type");
}

// general.alignment: an integer power of two (GGUF writes it as UINT32).
uint64_t alignment_from(const Value& v, uint64_t at) {
    uint64_t a = 0;
    if (const auto* u = std::get_if<uint64_t>(&v.data))
        a = *u;
    else if (const auto* s = std::get_if<int64_t>(&v.data))
        a = *s > 0 ? static_cast<uint64_t>(*s) : 0;
    else
        fail(at, "general.alignment has type " + std::string(value_type_name(v.type)) + ", expected an integer");
    if (a == 0 || (a & (a - 1)) != 0)
        fail(at, "general.alignment " + std::to_string(a) + " is not a nonzero power of two");
    return a;
}

}  // namespace

File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::open(const std::string& path) {
    File f;
    f.map_ = std::make_unique<MappedFile>(path);
    f.base_ = f.map_->data();
    f.size_ = f.map_->size();
    try {
        f.parse_all();
    } catch (const Error& e) {
        if (e.code() != Code::GGUF_INVALID) throw;
        throw Error(Code::GGUF_INVALID, path + ": " + e.what());
    }
    return f;
}

File File::parse(const uint8_t* data, size_t size) {
    File f;
    f.base_ = data;
    f.size_ = size;
    f.parse_all();
    return f;
}

void File::parse_all() {
    Cursor c(base_, size_);
    if (c.read<uint32_t>("magic") != kMagic) fail(0, "not a GGUF file: bad magic");
    version_ = c.read<uint32_t>("version");
    if (version_ == 1) fail(4, "GGUF version 1 is not supported (only versions 2 and 3)");
    if (version_ != 2 && version_ != 3)
        fail(4, "unsupported GGUF version " + std::to_string(version_) + " (a big-endian file reads as a huge number)");

    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    if (n_tensors > kMaxTensors)
        fail(8, "tensor count " + std::to_string(n_tensors) + " exceeds the limit of " + std::to_string(kMaxTensors));
    // A key is at least 8 + 4 + 1 bytes; a tensor info at least 8 + 4 + 8 + 4 + 8.
    if (n_kv > c.remaining() / 13)
        fail(16, "metadata count " + std::to_string(n_kv) + " cannot fit in the " + std::to_string(c.remaining()) + " bytes left");
    if (n_tensors > c.remaining() / 32)
        fail(8, "tensor count " + std::to_string(n_tensors) + " cannot fit in the " + std::to_string(c.remaining()) + " bytes left");


    Budget budget;
    kv_.reserve(std::min<uint64_t>(n_kv, 4096));  // grows with what is actually read
    for (uint64_t i = 0; i < n_kv; ++i) {
        const uint64_t key_at = c.pos();
        std::string key = c.read_string("metadata key");
        if (kv_index_.count(key)) fail(key_at, "duplicate metadata key '" + detail::printable(key) + "'");
        const uint64_t type_at = c.pos();
        const uint32_t t = c.read<uint32_t>("metadata value type");
        if (!known_value_type(t)) fail(type_at, in_key(key) + "unknown value type " + std::to_string(t));
        const uint64_t value_at = c.pos();
        Value v = read_value(c, static_cast<ValueType>(t), 0, key, budget);
        if (key == "general.alignment") alignment_ = alignment_from(v, value_at);
        kv_index_.emplace(key, kv_.size());
        kv_.emplace_back(std::move(key), std::move(v));
    }

    std::vector<uint64_t> offset_at(n_tensors);  // where each tensor's offset field is, for errors
    tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
        TensorInfo t;
        const uint64_t name_at = c.pos();
        t.name = c.read_string("tensor name");
        if (tensor_index_.count(t.name)) fail(name_at, "duplicate tensor name '" + detail::printable(t.name) + "'");
        const std::string who = "tensor '" + detail::printable(t.name) + "': ";
        const uint64_t dims_at = c.pos();
        const uint32_t n_dims = c.read<uint32_t>("tensor n_dims");
        if (n_dims < 1 || n_dims > 4) fail(dims_at, who + "n_dims " + std::to_string(n_dims) + " is not in 1..4");
        t.n_elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t dim_at = c.pos();
            const uint64_t ne = c.read<uint64_t>("tensor dimension");
            if (ne == 0) fail(dim_at, who + "dimension " + std::to_string(d) + " is 0");
            if (!checked_mul(t.n_elements, ne, t.n_elements) || t.n_elements > uint64_t{INT64_MAX})
                fail(dim_at, who + "element count overflows");
            t.shape.push_back(ne);
        }
        const uint64_t type_at = c.pos();
        const uint32_t type_id = c.read<uint32_t>("tensor type");
        const auto tr = type_traits(type_id);
        if (!tr) fail(type_at, who + "unknown ggml type " + std::to_string(type_id));
        t.type = tr->type;
        if (t.shape[0] % tr->block_size != 0)
            fail(dims_at + 4, who + "ne0 " + std::to_string(t.shape[0]) + " is not a multiple of the " +
                                  std::string(tr->name) + " block size " + std::to_string(tr->block_size));
        // n_bytes = rows * row bytes; each factor is at most n_elements, the product is checked.
        uint64_t row = t.shape[0] / tr->block_size * tr->type_size;
        if (!checked_mul(row, t.n_elements / t.shape[0], t.n_bytes)) fail(type_at, who + "byte size overflows");
        offset_at[i] = c.pos();
        t.offset = c.read<uint64_t>("tensor data offset");
        tensor_index_.emplace(t.name, tensors_.size());
        tensors_.push_back(std::move(t));
    }

    if (!checked_align(c.pos(), alignment_, data_offset_)) fail(c.pos(), "data section offset overflows");
    // A file without tensors (vocab-only) may end right after its metadata, before the padding.
    if (!tensors_.empty() && data_offset_ > size_)
        fail(c.pos(), "data section at " + std::to_string(data_offset_) + " starts past the end of the file (" +
                          std::to_string(size_) + " bytes)");
    for (size_t i = 0; i < tensors_.size(); ++i) {
        const TensorInfo& t = tensors_[i];
        const std::string who = "tensor '" + detail::printable(t.name) + "': ";
        if (t.offset % alignment_ != 0)
            fail(offset_at[i], who + "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                                   std::to_string(alignment_));
        uint64_t begin, end;
        if (!checked_add(data_offset_, t.offset, begin) || !checked_add(begin, t.n_bytes, end) || end > size_)
            fail(offset_at[i], who + std::to_string(t.n_bytes) + " bytes at data offset " + std::to_string(t.offset) +
                                   " run past the end of the file (" + std::to_string(size_) + " bytes)");
    }
}

}  // namespace wo::gguf
