// MXFP4 (OCP Microscaling v1.0, E2M1 elements with an E8M0 shared scale): dequantization,
// quantization and the repacking of HF gpt-oss checkpoints into GGUF blocks.
#include <cmath>
#include <cstring>

#include "quant/formats.h"
#include "quant/quant.h"

namespace wo::quant::detail {
namespace {

// Nearest E2M1 magnitude code (0..7 -> 0, 0.5, 1, 1.5, 2, 3, 4, 6) of v >= 0, ties to the even
// code (the one whose mantissa bit is 0), values above 6 saturate to 6 (OCP: clamp to max normal).
// The tie points are the midpoints 0.25, 0.75, 1.25, 1.75, 2.5, 3.5 and 5.
uint8_t e2m1_code(float v) {
    if (v <= 0.25f) return 0;
    if (v < 0.75f) return 1;
    if (v <= 1.25f) return 2;
    if (v < 1.75f) return 3;
    if (v <= 2.5f) return 4;
    if (v < 3.5f) return 5;
    if (v <= 5.0f) return 6;
    return 7;
}

}  // namespace

void dequantize_row_mxfp4(const BlockMxfp4* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float d = e8m0_half(x[b].e);  // 2^(e-128), paired with doubled E2M1 integers
        float lut[16];  // the same products, computed once per block instead of per element
        for (int k = 0; k < 16; ++k) lut[k] = float(e2m1_x2(uint8_t(k))) * d;
        for (int j = 0; j < kQK / 2; ++j) {
            y[b * kQK + j] = lut[x[b].qs[j] & 0xF];
            y[b * kQK + j + kQK / 2] = lut[x[b].qs[j] >> 4];
        }
    }
}

// Shared scale per OCP MX v1.0 §6.3: X = 2^(floor(log2(amax)) - emax_elem), emax_elem = 2 for E2M1
// (6 = 1.5 * 2^2), so the largest element scales into [4, 8) and anything above 6 saturates.
// floor(log2) comes from ilogb, exact for subnormals too. X below 2^-127 is clamped to e = 0; an
// all-zero block gets e = 0. A block holding NaN or ±inf gets e = 0xFF (the NaN scale: it decodes
// to 32 NaNs), since E2M1 has neither; its codes are left 0.
void quantize_row_mxfp4(const float* x, BlockMxfp4* y, int64_t n) {
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float* xb = x + b * kQK;
        float amax = 0.0f;
        bool finite = true;
        for (int j = 0; j < kQK; ++j) {
            finite = finite && std::isfinite(xb[j]);
            amax = std::fmax(amax, std::fabs(xb[j]));
        }
        std::memset(y[b].qs, 0, sizeof y[b].qs);
        if (!finite) {
            y[b].e = 0xFF;
            continue;
        }
        int e = amax > 0.0f ? std::ilogb(amax) - 2 + 127 : 0;
        if (e < 0) e = 0;  // ilogb(amax) >= -149, so e >= -24; clamp to the smallest scale
        y[b].e = uint8_t(e);  // ilogb(amax) <= 127, so e <= 252: never the NaN code
        uint8_t q[kQK];
        for (int j = 0; j < kQK; ++j) {
            const float v = std::ldexp(xb[j], 127 - e);  // x / X, exact while v is a normal float
            q[j] = uint8_t(e2m1_code(std::fabs(v)) | (std::signbit(v) ? 8 : 0));
        }
        for (int j = 0; j < kQK / 2; ++j) y[b].qs[j] = uint8_t(q[j] | q[j + kQK / 2] << 4);
    }
}

}  // namespace wo::quant::detail

namespace wo::quant {

void mxfp4_from_hf(const uint8_t* hf_blocks, const uint8_t* hf_scales, uint8_t* gguf_blocks, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b) {
        const uint8_t* in = hf_blocks + 16 * b;
        uint8_t* out = gguf_blocks + sizeof(BlockMxfp4) * b;
        // HF: element k is the low nibble of byte k/2 when k is even, the high nibble when odd.
        auto nibble = [in](int k) { return uint8_t((k & 1) ? in[k / 2] >> 4 : in[k / 2] & 0xF); };
        out[0] = hf_scales[b];
        for (int j = 0; j < 16; ++j) out[1 + j] = uint8_t(nibble(j) | nibble(j + 16) << 4);
    }
}

}  // namespace wo::quant
