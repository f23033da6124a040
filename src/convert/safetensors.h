// Read-only view of an HF safetensors checkpoint: one model.safetensors or shards listed in
// model.safetensors.index.json, memory-mapped, every header validated against its file.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}} (offsets relative to the end of the header), then raw
// little-endian tensor data.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wo {
class MappedFile;
}

namespace wo::convert {

struct StTensor {
    std::string name;
    std::string dtype;           // "F32", "F16", "BF16", "U8", ... as the header says
    std::vector<int64_t> shape;  // row-major, last dimension contiguous
    int64_t numel = 0;
    const uint8_t* data = nullptr;
    uint64_t n_bytes = 0;
    std::string file;            // for error messages
    // The float dtypes as a number, so at() does not compare strings per element.
    enum class Float : uint8_t { NONE, F32, F16, BF16 } fdt = Float::NONE;

    int64_t dim(size_t i) const { return i < shape.size() ? shape[i] : 1; }
    // Element i as float; dtype must be F32, F16 or BF16 (callers check with is_float()).
    float at(int64_t i) const;
    bool is_float() const { return fdt != Float::NONE; }
};

class Checkpoint {
public:
    // Opens DIR/model.safetensors.index.json (shards) or DIR/model.safetensors. Any problem is
    // Error(CONVERT_FAILED) naming the file and, where there is one, the tensor.
    static std::unique_ptr<Checkpoint> open(const std::string& dir);
    ~Checkpoint();

    const StTensor* find(std::string_view name) const;
    const StTensor& get(std::string_view name) const;  // CONVERT_FAILED naming it when absent
    bool has(std::string_view name) const { return find(name) != nullptr; }
    const std::map<std::string, StTensor, std::less<>>& tensors() const { return tensors_; }
    const std::string& dir() const { return dir_; }

    // The named tensor must have this shape and a float dtype (CONVERT_FAILED otherwise).
    const StTensor& get(std::string_view name, const std::vector<int64_t>& shape) const;

private:
    Checkpoint() = default;
    void add_file(const std::string& path);

    std::string dir_;
    std::vector<std::unique_ptr<MappedFile>> files_;
    std::map<std::string, StTensor, std::less<>> tensors_;
};

std::string shape_str(const std::vector<int64_t>& s);

// One file's header and tensor views (data points into `base`); CONVERT_FAILED naming `path` and
// the tensor on any inconsistency. Checkpoint::open uses it; the fuzzer calls it directly.
std::vector<StTensor> parse_safetensors(const uint8_t* base, uint64_t size, const std::string& path);

}  // namespace wo::convert
