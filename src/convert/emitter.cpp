// Row gathers and the per-tensor fillers (see emitter.h).
#include "convert/emitter.h"

#include <cmath>

#include "quant/quant.h"
#include "util/error.h"
#include "util/log.h"

namespace wo::convert {

RowSource rows_of(const StTensor& t) {
    RowSource s;
    s.t = &t;
    s.n_cols = t.shape.empty() ? 1 : t.shape.back();
    s.n_rows = s.n_cols ? t.numel / s.n_cols : 0;
    const int64_t cols = s.n_cols;
    s.start = [cols](int64_t r) { return r * cols; };
    return s;
}

RowSource transposed(const StTensor& t) {
    WO_CHECK(t.shape.size() == 2, "transposed() needs a 2-D tensor");
    RowSource s;
    s.t = &t;
    s.n_rows = t.shape[1];
    s.n_cols = t.shape[0];
    s.stride = t.shape[1];
    s.start = [](int64_t r) { return r; };
    return s;
}

RowSource elements_of(const StTensor& t) {
    RowSource s;
    s.t = &t;
    s.n_rows = t.numel;
    s.n_cols = 1;
    s.start = [](int64_t r) { return r; };
    return s;
}

RowSource permute_heads(RowSource s, int64_t n_head) {
    WO_CHECK(n_head > 0 && s.n_rows % n_head == 0 && (s.n_rows / n_head) % 2 == 0, "permute_heads: bad head count");
    const int64_t hd = s.n_rows / n_head, half = hd / 2;
    auto inner = s.start;
    s.start = [inner, hd, half](int64_t r) {
        const int64_t h = r / hd, within = r % hd;
        return inner(h * hd + (within % 2) * half + within / 2);
    };
    return s;
}

RowSource every_kth_row(RowSource s, int64_t k, int64_t first) {
    WO_CHECK(k > 0 && first >= 0 && first < k && s.n_rows % k == 0, "every_kth_row: bad arguments");
    auto inner = s.start;
    s.n_rows /= k;
    s.start = [inner, k, first](int64_t r) { return inner(r * k + first); };
    return s;
}

void read_row(const RowSource& s, int64_t r, float* out) {
    const int64_t s0 = s.start(r);
    for (int64_t c = 0; c < s.n_cols; ++c) out[c] = s.t->at(s0 + c * s.stride);
}

double RequantStats::rel_rms() const { return ref2 > 0 ? std::sqrt(err2 / ref2) : 0.0; }

void Emitter::matrix(const std::string& name, RowSource src, std::vector<uint64_t> shape) {
    GgmlType type = matrix_type_;
    const auto& tr = traits(type);
    if (src.n_cols % tr.block_size != 0) {
        log::warn("convert.type_fallback", {{"tensor", name}, {"row", src.n_cols}, {"wanted", std::string(tr.name)},
                                            {"used", "F16"}, {"why", "row length is not a multiple of the block size"}});
        type = GgmlType::F16;
    }
    tensor(name, type, std::move(shape), std::move(src));
}

void Emitter::f32(const std::string& name, RowSource src, std::vector<uint64_t> shape) {
    tensor(name, GgmlType::F32, std::move(shape), std::move(src));
}

void Emitter::custom(const std::string& name, GgmlType type, std::vector<uint64_t> shape, gguf::Writer::Filler fill) {
    uint64_t numel = 1;
    for (auto d : shape) numel *= d;
    n_params_ += numel;
    ++n_tensors_;
    w_.add_tensor(name, type, std::move(shape), std::move(fill));
}

void Emitter::tensor(const std::string& name, GgmlType type, std::vector<uint64_t> shape, RowSource src, bool measure) {
    if (!src.t->is_float())
        throw Error(Code::CONVERT_FAILED, src.t->file + ": tensor " + src.t->name + " has dtype " + src.t->dtype +
                                              ", expected F32, F16 or BF16");
    if (shape.empty()) {
        shape = src.t->shape.size() <= 1 ? std::vector<uint64_t>{uint64_t(src.n_rows * src.n_cols)}
                                         : std::vector<uint64_t>{uint64_t(src.n_cols), uint64_t(src.n_rows)};
    }
    uint64_t numel = 1;
    for (auto d : shape) numel *= d;
    WO_CHECK(numel == uint64_t(src.n_rows * src.n_cols), "emitter: shape of " + name + " does not match its rows");
    n_params_ += numel;
    ++n_tensors_;
    const uint64_t rb = row_bytes(type, uint64_t(src.n_cols));
    std::shared_ptr<RequantStats> total = measure ? total_ : nullptr;
    w_.add_tensor(name, type, std::move(shape), [src, type, rb, name, total](uint8_t* dst, size_t n_bytes) {
        WO_CHECK(n_bytes == rb * uint64_t(src.n_rows), "emitter: writer size mismatch for " + name);
        std::vector<float> row(static_cast<size_t>(src.n_cols)), back(total ? row.size() : 0);
        RequantStats st;
        for (int64_t r = 0; r < src.n_rows; ++r) {
            read_row(src, r, row.data());
            uint8_t* q = dst + uint64_t(r) * rb;
            quant::quantize_row(type, row.data(), q, src.n_cols);
            if (!total) continue;
            quant::dequantize_row(type, q, back.data(), src.n_cols);
            for (size_t c = 0; c < row.size(); ++c) {
                st.err2 += (double(back[c]) - row[c]) * (double(back[c]) - row[c]);
                st.ref2 += double(row[c]) * row[c];
            }
        }
        if (!total) return;
        log::warn("convert.requantized", {{"tensor", name}, {"from", src.t->dtype}, {"to", std::string(type_name(type))},
                                          {"rel_rms_error", st.rel_rms()}});
        total->to = type_name(type);
        total->n_tensors++;
        total->err2 += st.err2;
        total->ref2 += st.ref2;
    });
}

}  // namespace wo::convert
