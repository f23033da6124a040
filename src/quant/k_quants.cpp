// Q4_K, Q5_K and Q6_K: 256-element super-blocks with an f16 scale (and min) refined by 6-bit
// (Q4_K/Q5_K) or int8 (Q6_K) sub-block scales.
// Dequantizers reproduce llama.cpp's dequantize_row_q{4,5,6}_K operation for operation: the
// sub-block factors d*sc and dmin*m are rounded to float first, then y = (d*sc)*q - (dmin*m),
// unfused (this project compiles without FP contraction). The quantizers are simple (no search
// for optimal scales like ggml's make_qkx2_quants); they exist for tests and `synth`, and always
// produce valid blocks.
#include <algorithm>
#include <cmath>

#include "quant/formats.h"

namespace wo::quant::detail {
namespace {

int clamp_round(float v, int lo, int hi) { return int(std::roundf(std::clamp(v, float(lo), float(hi)))); }

// Packs eight 6-bit scales and mins into the 12 bytes scale_min_k4 reads.
void pack_scales_k4(const uint8_t sc[8], const uint8_t m[8], uint8_t out[12]) {
    for (int j = 0; j < 4; ++j) {
        out[j] = uint8_t(sc[j] | (sc[j + 4] >> 4) << 6);
        out[j + 4] = uint8_t(m[j] | (m[j + 4] >> 4) << 6);
        out[j + 8] = uint8_t((sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
    }
}

// Shared by Q4_K (qmax 15) and Q5_K (qmax 31): an affine code per sub-block of 32,
// x ~ (d*sc)*q - (dmin*m). Writes d, dmin, scales and the codes q[256].
void quantize_affine_k(const char* format, const float* x, int qmax, uint16_t& d16, uint16_t& dmin16,
                       uint8_t scales[12], uint8_t q[kQK_K]) {
    float scale[8], minv[8], max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < 8; ++s) {
        float lo = 0.0f, hi = 0.0f;  // the range always holds 0, so the min term is never negative
        for (int l = 0; l < 32; ++l) lo = std::min(lo, x[32 * s + l]), hi = std::max(hi, x[32 * s + l]);
        scale[s] = (hi - lo) / float(qmax);
        minv[s] = -lo;
        max_scale = std::max(max_scale, scale[s]);
        max_min = std::max(max_min, minv[s]);
    }
    d16 = f16_scale(format, max_scale / 63.0f);
    dmin16 = f16_scale(format, max_min / 63.0f);
    const float d = f16_to_f32(d16), dmin = f16_to_f32(dmin16);
    uint8_t sc[8], m[8];
    for (int s = 0; s < 8; ++s) {
        // Round the scale up so the sub-block's range still fits in 0..qmax after 6-bit rounding.
        sc[s] = uint8_t(d > 0.0f ? std::min(63.0f, std::ceil(scale[s] / d)) : 0.0f);
        m[s] = uint8_t(dmin > 0.0f ? clamp_round(minv[s] / dmin, 0, 63) : 0);
        const float ds = d * float(sc[s]), ms = dmin * float(m[s]);
        for (int l = 0; l < 32; ++l)
            q[32 * s + l] = uint8_t(ds > 0.0f ? clamp_round((x[32 * s + l] + ms) / ds, 0, qmax) : 0);
    }
    pack_scales_k4(sc, m, scales);
}

}  // namespace

void dequantize_row_q4_k(const BlockQ4_K* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
        const uint8_t* q = x[b].qs;
        for (int p = 0; p < 4; ++p, q += 32) {  // 64 elements: sub-blocks 2p and 2p+1
            uint8_t sc, m;
            scale_min_k4(2 * p, x[b].scales, sc, m);
            const float d1 = d * float(sc), m1 = dmin * float(m);
            scale_min_k4(2 * p + 1, x[b].scales, sc, m);
            const float d2 = d * float(sc), m2 = dmin * float(m);
            for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
        }
    }
}

void dequantize_row_q5_k(const BlockQ5_K* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
        const uint8_t* ql = x[b].qs;
        const uint8_t* qh = x[b].qh;
        for (int p = 0; p < 4; ++p, ql += 32) {
            uint8_t sc, m;
            scale_min_k4(2 * p, x[b].scales, sc, m);
            const float d1 = d * float(sc), m1 = dmin * float(m);
            scale_min_k4(2 * p + 1, x[b].scales, sc, m);
            const float d2 = d * float(sc), m2 = dmin * float(m);
            const uint8_t u1 = uint8_t(1u << (2 * p)), u2 = uint8_t(2u << (2 * p));
            for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

void dequantize_row_q6_k(const BlockQ6_K* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = f16_to_f32(x[b].d);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = x[b].ql + 64 * h;
            const uint8_t* qh = x[b].qh + 32 * h;
            // Quarter k (elements 128h + 32k + l) takes nibble k/2 of ql[32*(k%2) + l] and bits
            // 2k..2k+1 of qh[l] (layout: blocks.h); each run of 16 shares one scale. d * sc is
            // rounded first, as ggml's left-to-right d * sc[is] * q rounds it.
            for (int k = 0; k < 4; ++k)
                for (int half = 0; half < 2; ++half) {
                    const float ds = d * float(x[b].scales[8 * h + 2 * k + half]);
                    const uint8_t* qlk = ql + 32 * (k % 2) + 16 * half;
                    const uint8_t* qhk = qh + 16 * half;
                    float* yk = y + 128 * h + 32 * k + 16 * half;
                    const int shift = 4 * (k / 2);
                    for (int l = 0; l < 16; ++l)
                        yk[l] = ds * float((((qlk[l] >> shift) & 0xF) | ((qhk[l] >> (2 * k)) & 3) << 4) - 32);
                }
        }
        y += kQK_K;
    }
}

void quantize_row_q4_k(const float* x, BlockQ4_K* y, int64_t n) {
    require_finite("Q4_K", x, n);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        uint8_t q[kQK_K];
        quantize_affine_k("Q4_K", x + b * kQK_K, 15, y[b].d, y[b].dmin, y[b].scales, q);
        for (int p = 0; p < 4; ++p)
            for (int l = 0; l < 32; ++l) y[b].qs[32 * p + l] = uint8_t(q[64 * p + l] | q[64 * p + 32 + l] << 4);
    }
}

void quantize_row_q5_k(const float* x, BlockQ5_K* y, int64_t n) {
    require_finite("Q5_K", x, n);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        uint8_t q[kQK_K];
        quantize_affine_k("Q5_K", x + b * kQK_K, 31, y[b].d, y[b].dmin, y[b].scales, q);
        for (int l = 0; l < 32; ++l) y[b].qh[l] = 0;
        for (int p = 0; p < 4; ++p)
            for (int l = 0; l < 32; ++l) {
                const uint8_t lo = q[64 * p + l], hi = q[64 * p + 32 + l];
                y[b].qs[32 * p + l] = uint8_t((lo & 0xF) | (hi & 0xF) << 4);
                y[b].qh[l] |= uint8_t((lo >> 4) << (2 * p) | (hi >> 4) << (2 * p + 1));
            }
    }
}

void quantize_row_q6_k(const float* x, BlockQ6_K* y, int64_t n) {
    require_finite("Q6_K", x, n);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float* xb = x + b * kQK_K;
        // Per sub-block of 16: a signed scale mapping the extreme value to code -32.
        float scale[16], max_abs = 0.0f;
        for (int s = 0; s < 16; ++s) {
            float ext = 0.0f;
            for (int l = 0; l < 16; ++l)
                if (std::fabs(xb[16 * s + l]) > std::fabs(ext)) ext = xb[16 * s + l];
            scale[s] = ext / -32.0f + 0.0f;  // + 0 turns -0 into +0
            max_abs = std::max(max_abs, std::fabs(scale[s]));
        }
        y[b].d = f16_scale("Q6_K", max_abs / 127.0f);
        const float d = f16_to_f32(y[b].d);
        uint8_t q[kQK_K];
        for (int s = 0; s < 16; ++s) {
            y[b].scales[s] = int8_t(d > 0.0f ? clamp_round(scale[s] / d, -127, 127) : 0);
            const float ds = d * float(y[b].scales[s]);
            for (int l = 0; l < 16; ++l)
                q[16 * s + l] = uint8_t(ds != 0.0f ? clamp_round(xb[16 * s + l] / ds, -32, 31) + 32 : 32);
        }
        // Layout: see BlockQ6_K in blocks.h.
        for (int h = 0; h < 2; ++h)
            for (int l = 0; l < 32; ++l) {
                const uint8_t* qq = q + 128 * h;
                y[b].ql[64 * h + l] = uint8_t((qq[l] & 0xF) | (qq[l + 64] & 0xF) << 4);
                y[b].ql[64 * h + 32 + l] = uint8_t((qq[l + 32] & 0xF) | (qq[l + 96] & 0xF) << 4);
                y[b].qh[32 * h + l] = uint8_t((qq[l] >> 4) | (qq[l + 32] >> 4) << 2 | (qq[l + 64] >> 4) << 4 |
                                              (qq[l + 96] >> 4) << 6);
            }
    }
}

}  // namespace wo::quant::detail
