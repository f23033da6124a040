// IEEE binary16 and bfloat16 <-> float conversions, usable from host and device code.
// Written with integer arithmetic only so the CPU reference and the CUDA kernels decode the
// same bits the same way, whatever the host's F16C support or the compiler's flags.
#pragma once
#include <cstdint>
#include <cstring>

#include "quant/hd.h"

namespace wo::quant {

WO_HD inline uint32_t f32_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}
WO_HD inline float f32_from_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// Exact: every binary16 value is a float. A NaN keeps its payload and is made quiet (as the x86
// F16C and CUDA conversions do), so a signalling f16 NaN never becomes a signalling float.
WO_HD inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    const uint32_t mant = h & 0x3FFu;
    if (exp == 0x1F) return f32_from_bits(sign | 0x7F800000u | (mant << 13) | (mant ? 0x00400000u : 0u));
    if (exp == 0) {
        // Subnormal (or zero): mant * 2^-24, a product float represents exactly.
        const float v = float(mant) * 5.9604644775390625e-8f;
        return f32_from_bits(f32_bits(v) | sign);
    }
    return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

// Round to nearest, ties to even; overflow gives ±inf, tiny values give f16 subnormals or ±0.
// NaN stays NaN (quiet, top payload bits kept).
WO_HD inline uint16_t f32_to_f16(float f) {
    const uint32_t x = f32_bits(f);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return uint16_t(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
    if (ax >= 0x477FF000u) return uint16_t(sign | 0x7C00u);  // >= 65520 (incl. inf) rounds to inf
    if (ax < 0x38800000u) {                                    // below 2^-14: f16 subnormal range
        if (ax <= 0x33000000u) return sign;                    // <= 2^-25: ties to even gives 0
        const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;        // value = m * 2^(e-150)
        const uint32_t shift = 126u - (ax >> 23);              // result = round(m >> shift), 14..24
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) ++r;      // a carry to 0x400 is the least normal
        return uint16_t(sign | r);
    }
    uint32_t r = (ax - 0x38000000u) >> 13;  // rebias exponent 127 -> 15
    const uint32_t rem = ax & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry may reach 0x7C00 = inf: right
    return uint16_t(sign | r);
}

WO_HD inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

// Round to nearest, ties to even (so 0x7F7FFFFF rounds to inf); NaN is forced quiet so truncating
// its payload can never turn it into an infinity. Subnormals are rounded, not flushed.
WO_HD inline uint16_t f32_to_bf16(float f) {
    const uint32_t x = f32_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((x >> 16) | 0x0040u);
    return uint16_t((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace wo::quant
