// The dispatchers of quant.h: validate the type and the element count, then call the one
// row function of the format (formats.h). No format arithmetic here.
#include "quant/quant.h"

#include <cmath>
#include <cstring>
#include <string>

#include "quant/formats.h"
#include "util/error.h"

namespace wo::quant {
namespace {

std::string type_label(GgmlType t) {
    const uint32_t id = static_cast<uint32_t>(t);
    auto tr = type_traits(id);
    return tr ? std::string(tr->name) + " (ggml type " + std::to_string(id) + ")"
              : "unknown ggml type " + std::to_string(id);
}

// The traits of a type this module handles, after checking n.
const TypeTraits& checked(GgmlType t, int64_t n, const char* what) {
    auto tr = type_traits(static_cast<uint32_t>(t));
    if (!tr || !tr->supported)
        throw Error(Code::DTYPE_UNSUPPORTED,
                    std::string(what) + ": tensor type " + type_label(t) + " is not supported");
    const TypeTraits& ref = traits(t);
    if (n < 0 || n % ref.block_size != 0)
        throw Error(Code::INVALID_ARGUMENT, std::string(what) + " " + std::string(ref.name) + ": " +
                                                std::to_string(n) + " elements is not a multiple of the block size " +
                                                std::to_string(ref.block_size));
    return ref;
}

}  // namespace

bool can_dequantize(GgmlType t) {
    auto tr = type_traits(static_cast<uint32_t>(t));
    return tr && tr->supported;
}

void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
    checked(t, n, "dequantize_row");
    using namespace detail;
    switch (t) {
        case GgmlType::F32: std::memcpy(dst, src, size_t(n) * sizeof(float)); return;
        case GgmlType::F16: return dequantize_row_f16(static_cast<const uint16_t*>(src), dst, n);
        case GgmlType::BF16: return dequantize_row_bf16(static_cast<const uint16_t*>(src), dst, n);
        case GgmlType::Q8_0: return dequantize_row_q8_0(static_cast<const BlockQ8_0*>(src), dst, n);
        case GgmlType::Q4_0: return dequantize_row_q4_0(static_cast<const BlockQ4_0*>(src), dst, n);
        case GgmlType::Q5_0: return dequantize_row_q5_0(static_cast<const BlockQ5_0*>(src), dst, n);
        case GgmlType::Q4_K: return dequantize_row_q4_k(static_cast<const BlockQ4_K*>(src), dst, n);
        case GgmlType::Q5_K: return dequantize_row_q5_k(static_cast<const BlockQ5_K*>(src), dst, n);
        case GgmlType::Q6_K: return dequantize_row_q6_k(static_cast<const BlockQ6_K*>(src), dst, n);
        case GgmlType::MXFP4: return dequantize_row_mxfp4(static_cast<const BlockMxfp4*>(src), dst, n);
        default: break;
    }
    // traits say supported but no decoder: the table and this switch disagree.
    throw Error(Code::INTERNAL, "dequantize_row: no decoder for " + type_label(t));
}

void quantize_row(GgmlType t, const float* src, void* dst, int64_t n) {
    checked(t, n, "quantize_row");
    using namespace detail;
    switch (t) {
        case GgmlType::F32: std::memcpy(dst, src, size_t(n) * sizeof(float)); return;
        case GgmlType::F16: return quantize_row_f16(src, static_cast<uint16_t*>(dst), n);
        case GgmlType::BF16: return quantize_row_bf16(src, static_cast<uint16_t*>(dst), n);
        case GgmlType::Q8_0: return quantize_row_q8_0(src, static_cast<BlockQ8_0*>(dst), n);
        case GgmlType::Q4_0: return quantize_row_q4_0(src, static_cast<BlockQ4_0*>(dst), n);
        case GgmlType::Q5_0: return quantize_row_q5_0(src, static_cast<BlockQ5_0*>(dst), n);
        case GgmlType::Q4_K: return quantize_row_q4_k(src, static_cast<BlockQ4_K*>(dst), n);
        case GgmlType::Q5_K: return quantize_row_q5_k(src, static_cast<BlockQ5_K*>(dst), n);
        case GgmlType::Q6_K: return quantize_row_q6_k(src, static_cast<BlockQ6_K*>(dst), n);
        case GgmlType::MXFP4: return quantize_row_mxfp4(src, static_cast<BlockMxfp4*>(dst), n);
        default: break;
    }
    throw Error(Code::INTERNAL, "quantize_row: no encoder for " + type_label(t));
}

namespace detail {

void require_finite(const char* format, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i]))
            throw Error(Code::INVALID_ARGUMENT, std::string("quantize_row ") + format + ": element " +
                                                    std::to_string(i) + " is " +
                                                    (std::isnan(x[i]) ? "NaN" : "infinite") +
                                                    ", which the format cannot represent");
}

uint16_t f16_scale(const char* format, float d) {
    const uint16_t h = f32_to_f16(d);
    if ((h & 0x7C00u) == 0x7C00u)
        throw Error(Code::INVALID_ARGUMENT, std::string("quantize_row ") + format + ": block scale " +
                                                std::to_string(d) + " exceeds the f16 range");
    return h;
}

}  // namespace detail
}  // namespace wo::quant
