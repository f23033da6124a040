// Tensor: a non-owning view of backend memory (host memory on the CPU, VRAM on CUDA), and
// Buffer: memory a backend owns. Shapes are in ggml order: ne[0] is the contiguous dimension.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "gguf/types.h"

namespace wo {

// How a weight's blocks are ordered in memory. GGUF: as in the file (what the CPU uses and
// what quant/ dequantizes). DEVICE: repacked at load by the backend that made it, for aligned
// vector loads; only that backend's kernels read it.
enum class WeightLayout : uint8_t { GGUF, DEVICE };

struct Tensor {
    void* data = nullptr;
    GgmlType type = GgmlType::F32;
    WeightLayout layout = WeightLayout::GGUF;
    int64_t ne[3] = {1, 1, 1};  // elements per row, rows, matrices
    size_t nb1 = 0;             // bytes from one row to the next (>= row_bytes(type, ne[0]))
    size_t nb2 = 0;             // bytes from one matrix to the next

    int64_t cols() const { return ne[0]; }
    int64_t rows() const { return ne[1]; }
    int64_t mats() const { return ne[2]; }
    bool contiguous() const { return nb1 == row_bytes(type, ne[0]); }

    uint8_t* row_ptr(int64_t r, int64_t m = 0) const {
        return static_cast<uint8_t*>(data) + static_cast<size_t>(m) * nb2 + static_cast<size_t>(r) * nb1;
    }
    float* f32(int64_t r, int64_t m = 0) const { return reinterpret_cast<float*>(row_ptr(r, m)); }
    int32_t* i32(int64_t r = 0) const { return reinterpret_cast<int32_t*>(row_ptr(r)); }

    // Rows [first, first+n) of a 2-D view.
    Tensor row_range(int64_t first, int64_t n) const {
        Tensor t = *this;
        t.data = row_ptr(first);
        t.ne[1] = n;
        return t;
    }
    // Columns [first, first+n) of an F32 view: how fused qkv and gate|up outputs are split
    // without a copy (the row stride stays that of the whole tensor).
    Tensor col_range(int64_t first, int64_t n) const {
        Tensor t = *this;
        t.data = static_cast<uint8_t*>(data) + static_cast<size_t>(first) * sizeof(float);
        t.ne[0] = n;
        return t;
    }
    // Matrix m of a 3-D tensor, as a 2-D view (one expert of an *_exps tensor).
    Tensor mat(int64_t m) const {
        Tensor t = *this;
        t.data = row_ptr(0, m);
        t.ne[2] = 1;
        return t;
    }
};

// A dense view over `data` (rows packed back to back).
inline Tensor make_tensor(void* data, GgmlType type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) {
    Tensor t;
    t.data = data;
    t.type = type;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = ne2;
    t.nb1 = row_bytes(type, static_cast<uint64_t>(ne0));
    t.nb2 = t.nb1 * static_cast<size_t>(ne1);
    return t;
}

inline size_t tensor_bytes(GgmlType type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) {
    return row_bytes(type, static_cast<uint64_t>(ne0)) * static_cast<size_t>(ne1) * static_cast<size_t>(ne2);
}

// Memory owned by a backend; the deleter (inside `mem`) returns it to that backend.
struct Buffer {
    std::shared_ptr<void> mem;
    size_t bytes = 0;
    void* data() const { return mem.get(); }
    Tensor view(GgmlType type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) const {
        return make_tensor(mem.get(), type, ne0, ne1, ne2);
    }
};

}  // namespace wo
