// CPU dequantization and quantization of the ggml weight formats (the scalar reference).
// Formats, their ids and sizes: gguf/types.h; block layouts: quant/blocks.h; docs/quantization.md.
#pragma once
#include <cstdint>

#include "gguf/types.h"
#include "quant/fp16.h"  // f16_to_f32, f32_to_f16, bf16_to_f32, f32_to_bf16 (inline, host+device)

namespace wo::quant {

// True for the types worker-orcd loads (traits(t).supported); false for any other id, even one
// ggml does not define.
bool can_dequantize(GgmlType t);

// Decodes n elements (a row, or several consecutive rows) of type t, bit-exact with llama.cpp's
// reference dequantize_row_*. n must be a non-negative multiple of the type's block size
// (Error INVALID_ARGUMENT otherwise); an unsupported type is Error DTYPE_UNSUPPORTED naming it.
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);

// Encodes n floats as type t (every supported type). Non-finite input: F32/F16/BF16 keep it,
// MXFP4 gives the block a NaN scale (e = 0xFF), the integer formats throw INVALID_ARGUMENT
// naming the element (they cannot represent it).
void quantize_row(GgmlType t, const float* src, void* dst, int64_t n);

// HF gpt-oss expert layout (`*_blocks` uint8 [.., 16] with element 2i in the low nibble of byte i
// and 2i+1 in the high nibble, `*_scales` uint8 E8M0) -> GGUF block_mxfp4 (17 bytes: scale, then
// byte j = element j low nibble | element j+16 high nibble). Bit-preserving (no rounding).
void mxfp4_from_hf(const uint8_t* hf_blocks, const uint8_t* hf_scales, uint8_t* gguf_blocks,
                   int64_t n_blocks);

}  // namespace wo::quant
