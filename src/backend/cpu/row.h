// Row access helpers shared by the CPU ops: weights are dequantized a row at a time into a
// caller buffer (F32 rows are used in place), and the scalar activation formulas.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/tensor.h"
#include "quant/quant.h"

namespace wo::cpu {

// Row r of matrix m as floats: a pointer into w itself when it is F32, else `buf` filled.
inline const float* row_f32(const Tensor& w, int64_t r, int64_t m, float* buf) {
    if (w.type == GgmlType::F32) return reinterpret_cast<const float*>(w.row_ptr(r, m));
    quant::dequantize_row(w.type, w.row_ptr(r, m), buf, w.cols());
    return buf;
}
inline void dequant_row(const Tensor& w, int64_t r, int64_t m, float* dst) {
    if (w.type == GgmlType::F32)
        std::memcpy(dst, w.row_ptr(r, m), static_cast<size_t>(w.cols()) * sizeof(float));
    else
        quant::dequantize_row(w.type, w.row_ptr(r, m), dst, w.cols());
}

// gpt-oss clamped SwiGLU (OAI swiglu(): no lower clamp on the gate, "+1" on the linear half).
inline float swiglu_oai_1(float g, float u, float alpha, float limit) {
    g = std::min(g, limit);
    u = std::clamp(u, -limit, limit);
    return g / (1.0f + std::exp(-alpha * g)) * (u + 1.0f);
}

}  // namespace wo::cpu
