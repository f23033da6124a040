// Q8_0, Q4_0 and Q5_0: one f16 scale per 32 elements.
// Dequantizers reproduce llama.cpp's dequantize_row_q{8,4,5}_0: y = float(int code) * d, one
// rounding per element. Quantizers follow the same idea as ggml's reference (scale from the
// block's extreme value) but quantize with the f16-rounded scale, so a tiny block whose scale
// rounds to 0 gives zeros instead of dividing by zero.
#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <cmath>

#include "quant/formats.h"

namespace wo::quant::detail {
namespace {

// The element of largest magnitude, with its sign (first one on ties).
float signed_absmax(const float* x, int n) {
    float best = 0.0f;
    for (int j = 0; j < n; ++j)
        if (std::fabs(x[j]) > std::fabs(best)) best = x[j];
    return best;
}

int clamp_round(float v, int lo, int hi) {
    // v is finite here; clamp as float first so the int conversion is always defined.
    return int(std::roundf(std::clamp(v, float(lo), float(hi))));
}

}  // namespace

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float d = f16_to_f32(x[b].d);
        for (int j = 0; j < kQK; ++j) y[b * kQK + j] = float(x[b].qs[j]) * d;
    }
}

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float d = f16_to_f32(x[b].d);
        for (int j = 0; j < kQK / 2; ++j) {
            y[b * kQK + j] = float((x[b].qs[j] & 0xF) - 8) * d;
            y[b * kQK + j + kQK / 2] = float((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

static_assert(std::endian::native == std::endian::little, "GGUF data is little-endian; so is this code");

// kSpread[v] holds bit k of v as 0 or 16 in byte k: eight fifth bits of Q5_0 at once.
constexpr auto kSpread = [] {
    std::array<uint64_t, 256> t{};
    for (int v = 0; v < 256; ++v)
        for (int k = 0; k < 8; ++k) t[size_t(v)] |= uint64_t((v >> k) & 1) << (8 * k + 4);
    return t;
}();

void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float d = f16_to_f32(x[b].d);
        // qh is a little-endian uint32: bit j is the fifth bit of element j (byte j/8, bit j%8).
        uint8_t hi[kQK];
        for (int k = 0; k < 4; ++k) std::memcpy(hi + 8 * k, &kSpread[x[b].qh[k]], 8);  // little-endian host
        for (int j = 0; j < kQK / 2; ++j) {
            y[b * kQK + j] = float(((x[b].qs[j] & 0xF) | hi[j]) - 16) * d;
            y[b * kQK + j + kQK / 2] = float(((x[b].qs[j] >> 4) | hi[j + kQK / 2]) - 16) * d;
        }
    }
}

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
    require_finite("Q8_0", x, n);
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float* xb = x + b * kQK;
        const float amax = std::fabs(signed_absmax(xb, kQK));
        y[b].d = f16_scale("Q8_0", amax / 127.0f);
        const float d = f16_to_f32(y[b].d);
        for (int j = 0; j < kQK; ++j) y[b].qs[j] = int8_t(d > 0.0f ? clamp_round(xb[j] / d, -127, 127) : 0);
    }
}

void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n) {
    require_finite("Q4_0", x, n);
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float* xb = x + b * kQK;
        // The extreme value maps to code 0 (-8 * d), using the asymmetric code range fully.
        // `+ 0.0f` turns the -0 of an all-zero block into +0, so it decodes to +0, not -0.
        y[b].d = f16_scale("Q4_0", signed_absmax(xb, kQK) / -8.0f + 0.0f);
        const float d = f16_to_f32(y[b].d);
        uint8_t q[kQK];
        for (int j = 0; j < kQK; ++j) q[j] = uint8_t(d != 0.0f ? clamp_round(xb[j] / d + 8.0f, 0, 15) : 8);
        for (int j = 0; j < kQK / 2; ++j) y[b].qs[j] = uint8_t(q[j] | q[j + kQK / 2] << 4);
    }
}

void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n) {
    require_finite("Q5_0", x, n);
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float* xb = x + b * kQK;
        y[b].d = f16_scale("Q5_0", signed_absmax(xb, kQK) / -16.0f + 0.0f);
        const float d = f16_to_f32(y[b].d);
        uint8_t q[kQK];
        for (int j = 0; j < kQK; ++j) q[j] = uint8_t(d != 0.0f ? clamp_round(xb[j] / d + 16.0f, 0, 31) : 16);
        uint32_t qh = 0;
        for (int j = 0; j < kQK; ++j) qh |= uint32_t(q[j] >> 4) << j;
        for (int j = 0; j < kQK / 2; ++j) y[b].qs[j] = uint8_t((q[j] & 0xF) | (q[j + kQK / 2] & 0xF) << 4);
        for (int k = 0; k < 4; ++k) y[b].qh[k] = uint8_t(qh >> (8 * k));
    }
}

}  // namespace wo::quant::detail
