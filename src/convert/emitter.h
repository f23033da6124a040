// Turns checkpoint tensors into GGUF tensors row by row, inside gguf::Writer fillers: nothing is
// read from the (memory-mapped) checkpoint until the writer reaches that tensor, and only one
// output tensor is materialised at a time.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "convert/safetensors.h"
#include "gguf/gguf.h"

namespace wo::convert {

// A strided gather that presents a checkpoint tensor as the rows of a GGUF tensor:
// output row r, element c = source element start(r) + c * stride.
struct RowSource {
    const StTensor* t = nullptr;
    int64_t n_rows = 0, n_cols = 0;
    int64_t stride = 1;
    std::function<int64_t(int64_t)> start;
};

RowSource rows_of(const StTensor& t);          // as stored: last dimension is the row
RowSource transposed(const StTensor& t);       // 2-D [in, out] (GPT-2 Conv1D) -> out rows of in
RowSource elements_of(const StTensor& t);      // a 1-D tensor as n rows of one element
// llama.cpp's permute(): within each of n_head heads, rows (i, i + hd/2) become rows (2i, 2i+1),
// so adjacent-pair RoPE on the result equals HF's half-split RoPE on the source. Works on a
// weight [n_head*hd, in] and, through elements_of, on a bias.
RowSource permute_heads(RowSource s, int64_t n_head);
// Every k-th row starting at `first` (gpt-oss gate = rows 0::2, up = rows 1::2).
RowSource every_kth_row(RowSource s, int64_t k, int64_t first);
// Row r of s as floats (out holds s.n_cols).
void read_row(const RowSource& s, int64_t r, float* out);

// The error of rounding weights to a lossier type: relative RMS = sqrt(Σ(q − x)² / Σx²).
struct RequantStats {
    std::string to;  // the type rounded to
    int64_t n_tensors = 0;
    double err2 = 0, ref2 = 0;
    double rel_rms() const;
};

class Emitter {
public:
    Emitter(gguf::Writer& w, GgmlType matrix_type) : w_(w), matrix_type_(matrix_type) {}

    // A 2-D (or, with shape given, 3-D) weight matrix in the --type format. A quantized type
    // needs the row length to be a multiple of its block; otherwise F16 is used and logged, as
    // llama.cpp's converter does.
    void matrix(const std::string& name, RowSource src, std::vector<uint64_t> shape = {});
    // Norms, biases, sinks, the router: always F32.
    void f32(const std::string& name, RowSource src, std::vector<uint64_t> shape = {});
    // Any type, shape given in ggml order; rows are quantized with quant::quantize_row. With
    // `measure`, the rounding error is logged for the tensor (convert.requantized) and added to
    // requant_total().
    void tensor(const std::string& name, GgmlType type, std::vector<uint64_t> shape, RowSource src, bool measure = false);

    // A tensor whose bytes the caller produces (e.g. MXFP4 blocks repacked without requantizing).
    void custom(const std::string& name, GgmlType type, std::vector<uint64_t> shape, gguf::Writer::Filler fill);

    GgmlType matrix_type() const { return matrix_type_; }
    uint64_t n_params() const { return n_params_; }
    uint64_t n_tensors() const { return n_tensors_; }
    // Over every measured tensor written so far (complete once the writer has run).
    RequantStats requant_total() const { return *total_; }

private:
    gguf::Writer& w_;
    GgmlType matrix_type_;
    uint64_t n_params_ = 0, n_tensors_ = 0;
    std::shared_ptr<RequantStats> total_ = std::make_shared<RequantStats>();
};

}  // namespace wo::convert
