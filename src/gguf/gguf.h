// GGUF v2/v3 container: a bounds-checked, mmap-backed reader (File) and a writer (Writer).
// Shapes are in ggml order: shape[0] (ne0) is the contiguous dimension.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "gguf/types.h"

namespace wo {
class MappedFile;
}

namespace wo::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
    BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view value_type_name(ValueType t);

// Metadata arrays may nest (an ARRAY of ARRAYs); the reader rejects deeper nesting than this so a
// crafted file cannot exhaust the stack.
inline constexpr int kMaxArrayDepth = 8;
inline constexpr uint64_t kDefaultAlignment = 32;
// Sanity limits far above any real model (gpt-oss's vocabulary and merges are ~850k values, the
// largest MoE files ~2k tensors). Counts are also bounded by the file's size, but a corrupt count
// in a many-GB model file could otherwise ask for tens of GB of Values or TensorInfos.
inline constexpr uint64_t kMaxMetadataValues = 1ull << 23;  // all scalars, strings and arrays together
inline constexpr uint64_t kMaxStringBytes = 1ull << 26;     // one string (key, value or tensor name)
inline constexpr uint64_t kMaxTensors = 1ull << 20;

struct Value;
struct Array {
    ValueType elem_type = ValueType::UINT8;
    std::vector<Value> items;
};

// One metadata value. Integers of every width are held as uint64_t (unsigned types) or int64_t
// (signed types); floats as double; `type` keeps the on-disk type so a round trip is exact.
struct Value {
    ValueType type = ValueType::UINT8;
    std::variant<uint64_t, int64_t, double, bool, std::string, Array> data;

    static Value u8(uint8_t v) { return {ValueType::UINT8, uint64_t{v}}; }
    static Value i8(int8_t v) { return {ValueType::INT8, int64_t{v}}; }
    static Value u16(uint16_t v) { return {ValueType::UINT16, uint64_t{v}}; }
    static Value i16(int16_t v) { return {ValueType::INT16, int64_t{v}}; }
    static Value u32(uint32_t v) { return {ValueType::UINT32, uint64_t{v}}; }
    static Value i32(int32_t v) { return {ValueType::INT32, int64_t{v}}; }
    static Value u64(uint64_t v) { return {ValueType::UINT64, v}; }
    static Value i64(int64_t v) { return {ValueType::INT64, v}; }
    static Value f32(float v) { return {ValueType::FLOAT32, double{v}}; }
    static Value f64(double v) { return {ValueType::FLOAT64, v}; }
    static Value boolean(bool v) { return {ValueType::BOOL, v}; }
    static Value str(std::string v) { return {ValueType::STRING, std::move(v)}; }
    static Value array(ValueType elem, std::vector<Value> items) {
        return {ValueType::ARRAY, Array{elem, std::move(items)}};
    }
    static Value string_array(const std::vector<std::string>& v);
    static Value i32_array(const std::vector<int32_t>& v);
    static Value f32_array(const std::vector<float>& v);
};

struct TensorInfo {
    std::string name;
    GgmlType type = GgmlType::F32;
    std::vector<uint64_t> shape;  // ne0 first
    uint64_t offset = 0;          // from the start of the data section
    uint64_t n_elements = 0;
    uint64_t n_bytes = 0;
};

class File {
public:
    // Maps and validates the whole file; any inconsistency throws Error(GGUF_INVALID) naming
    // what is wrong and the byte offset where it was found.
    static File open(const std::string& path);
    // Parses a buffer the caller keeps alive (fuzzing, tests).
    static File parse(const uint8_t* data, size_t size);

    File(File&&) noexcept;
    File& operator=(File&&) noexcept;
    ~File();

    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute offset of the data section
    uint64_t file_size() const { return size_; }

    // Metadata in file order.
    const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
    const Value* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }

    // Typed accessors: throw Error(GGUF_INVALID) naming the key when it is missing or of the
    // wrong type. Integer accessors accept any integer type whose value fits.
    std::string get_string(std::string_view key) const;
    int64_t get_int(std::string_view key) const;
    uint64_t get_uint(std::string_view key) const;
    double get_float(std::string_view key) const;  // FLOAT32/FLOAT64 (integers are accepted too)
    bool get_bool(std::string_view key) const;
    std::vector<std::string> get_string_array(std::string_view key) const;
    std::vector<int64_t> get_int_array(std::string_view key) const;
    std::vector<float> get_float_array(std::string_view key) const;
    // Optional forms: nullopt when absent, still an error when present with the wrong type.
    std::optional<std::string> find_string(std::string_view key) const;
    std::optional<int64_t> find_int(std::string_view key) const;
    std::optional<double> find_float(std::string_view key) const;
    std::optional<bool> find_bool(std::string_view key) const;

    std::string architecture() const { return get_string("general.architecture"); }

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;
    const TensorInfo& tensor(std::string_view name) const;  // throws GGUF_INVALID naming it
    const uint8_t* tensor_data(const TensorInfo& t) const { return base_ + data_offset_ + t.offset; }

private:
    File() = default;
    void parse_all();

    std::unique_ptr<MappedFile> map_;
    const uint8_t* base_ = nullptr;
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kv_;
    std::unordered_map<std::string, size_t> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

// Writes GGUF v3. Metadata keeps insertion order (set() on an existing key replaces it in place).
// Tensor data is either given as bytes or produced by a callback when the file is written, so
// converting a large checkpoint never holds the whole model in memory.
class Writer {
public:
    explicit Writer(uint64_t alignment = 32);

    void set(std::string key, Value v);
    void add_tensor(std::string name, GgmlType type, std::vector<uint64_t> shape, std::vector<uint8_t> bytes);
    // `fill` must write exactly the tensor's n_bytes into the buffer it is given.
    using Filler = std::function<void(uint8_t* dst, size_t n_bytes)>;
    void add_tensor(std::string name, GgmlType type, std::vector<uint64_t> shape, Filler fill);

    std::vector<uint8_t> to_bytes() const;
    // Throws Error(IO_ERROR). `on_tensor(n_bytes)` runs after each tensor's data is written
    // (progress); the n_bytes of all tensors add up to tensor_bytes().
    void write(const std::string& path, const std::function<void(uint64_t)>& on_tensor = {}) const;
    uint64_t tensor_bytes() const;

private:
    struct Pending {
        TensorInfo info;
        std::vector<uint8_t> bytes;
        Filler fill;
    };
    uint64_t alignment_;
    std::vector<std::pair<std::string, Value>> kv_;
    std::vector<Pending> tensors_;
};

}  // namespace wo::gguf
