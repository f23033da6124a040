// Internal: one dequantize-row and one quantize-row function per format, called only by the
// dispatchers in quant.cpp (which validate n and the type). n is a multiple of the block size.
#pragma once
#include <cstdint>

#include "quant/blocks.h"

namespace wo::quant::detail {

void dequantize_row_f16(const uint16_t* x, float* y, int64_t n);
void dequantize_row_bf16(const uint16_t* x, float* y, int64_t n);
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n);
void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n);
void dequantize_row_q4_k(const BlockQ4_K* x, float* y, int64_t n);
void dequantize_row_q5_k(const BlockQ5_K* x, float* y, int64_t n);
void dequantize_row_q6_k(const BlockQ6_K* x, float* y, int64_t n);
void dequantize_row_mxfp4(const BlockMxfp4* x, float* y, int64_t n);

void quantize_row_f16(const float* x, uint16_t* y, int64_t n);
void quantize_row_bf16(const float* x, uint16_t* y, int64_t n);
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n);
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n);
void quantize_row_q4_k(const float* x, BlockQ4_K* y, int64_t n);
void quantize_row_q5_k(const float* x, BlockQ5_K* y, int64_t n);
void quantize_row_q6_k(const float* x, BlockQ6_K* y, int64_t n);
void quantize_row_mxfp4(const float* x, BlockMxfp4* y, int64_t n);

// Throws INVALID_ARGUMENT naming the format and the element index if x[0..n) holds a NaN or an
// infinity (the integer formats cannot represent one, and rounding it to int would be UB).
void require_finite(const char* format, const float* x, int64_t n);

// f32_to_f16(d) for a block scale; throws INVALID_ARGUMENT if the scale overflows f16 (values
// beyond the format's range would decode as inf/NaN).
uint16_t f16_scale(const char* format, float d);

}  // namespace wo::quant::detail
