// MXFP4: the OCP scale choice and rounding of quantize_row (cases worked by hand), non-finite
// input, and mxfp4_from_hf checked against an HF-rule decoder written here from MODELS.md §2.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "quant/blocks.h"
#include "quant/quant.h"

namespace wo::quant {
namespace {

BlockMxfp4 quantize_block(const float (&x)[32]) {
    BlockMxfp4 b;
    quantize_row(GgmlType::MXFP4, x, &b, 32);
    return b;
}

// Element k's 4-bit code in a GGUF block (j / j+16 nibble order).
int code(const BlockMxfp4& b, int k) { return k < 16 ? b.qs[k] & 0xF : b.qs[k - 16] >> 4; }

TEST(Mxfp4Quantize, ScaleAndRoundingPerOcp) {
    // amax = 7.9: floor(log2 7.9) = 2, X = 2^(2-2) = 1, e = 127. Each value / X rounds to the nearest
    // of 0, .5, 1, 1.5, 2, 3, 4, 6 with ties to the even code; above 6 saturates to 6.
    // value -> code:  7.9 -> 7 (6, saturated)   6 -> 7     3 -> 5      -1.25 -> 8|2 (tie 1 vs 1.5 -> 1)
    //                 0.3 -> 1 (0.5)            0.25 -> 0 (tie 0 vs .5)  0.75 -> 2 (tie .5 vs 1 -> 1)
    //                 1.75 -> 4 (tie 1.5 vs 2 -> 2)  2.5 -> 4 (tie 2 vs 3 -> 2)  3.5 -> 6 (tie 3 vs 4 -> 4)
    //                 5 -> 6 (tie 4 vs 6 -> 4)  5.01 -> 7   -0.8 -> 8|2 (1)  -6.5 -> 8|7   0.74 -> 1
    float x[32] = {7.9f, 6, 3, -1.25f, 0.3f, 0.25f, 0.75f, 1.75f, 2.5f, 3.5f, 5, 5.01f, -0.8f, -6.5f, 0.74f};
    const int want[15] = {7, 7, 5, 10, 1, 0, 2, 4, 4, 6, 6, 7, 10, 15, 1};
    const BlockMxfp4 b = quantize_block(x);
    EXPECT_EQ(b.e, 127);
    for (int k = 0; k < 15; ++k) EXPECT_EQ(code(b, k), want[k]) << "element " << k << " = " << x[k];
    for (int k = 15; k < 32; ++k) EXPECT_EQ(code(b, k) & 7, 0) << "element " << k;
}

TEST(Mxfp4Quantize, ScaleFollowsTheBlockMaximum) {
    // amax = 0.1: floor(log2 0.1) = -4, X = 2^-6, e = 121; 0.1 / 2^-6 = 6.4 -> 6 -> 0.09375.
    // amax = 4 exactly: floor(log2 4) = 2, X = 1, e = 127; 4 -> code 6.
    // amax = 3.99: floor(log2) = 1, X = 0.5, e = 126; 3.99 / 0.5 = 7.98 -> saturates to 6 -> 3.
    float a[32] = {}, c[32] = {}, d[32] = {};
    a[20] = -0.1f;
    c[0] = 4.0f;
    d[31] = 3.99f;
    const BlockMxfp4 ba = quantize_block(a), bc = quantize_block(c), bd = quantize_block(d);
    EXPECT_EQ(ba.e, 121);
    EXPECT_EQ(code(ba, 20), 15);
    EXPECT_EQ(bc.e, 127);
    EXPECT_EQ(code(bc, 0), 6);
    EXPECT_EQ(bd.e, 126);
    EXPECT_EQ(code(bd, 31), 7);
    float y[32];
    dequantize_row(GgmlType::MXFP4, &ba, y, 32);
    EXPECT_EQ(y[20], -0.09375f);
    dequantize_row(GgmlType::MXFP4, &bd, y, 32);
    EXPECT_EQ(y[31], 3.0f);
}

TEST(Mxfp4Quantize, ExtremeScales) {
    // FLT_MAX: floor(log2) = 127, e = 252 (X = 2^125); FLT_MAX / X ~ 8 saturates to 6 -> 1.5 * 2^127.
    // 2^-149 (least float subnormal): floor(log2) = -149, e would be -24, clamped to 0 (X = 2^-127);
    // 2^-149 / 2^-127 = 2^-22 rounds to 0.
    float big[32] = {}, tiny[32] = {};
    big[1] = -3.4028235e38f;
    tiny[2] = 0x1p-149f;
    const BlockMxfp4 bb = quantize_block(big), bt = quantize_block(tiny);
    EXPECT_EQ(bb.e, 252);
    EXPECT_EQ(code(bb, 1), 15);
    EXPECT_EQ(bt.e, 0);
    EXPECT_EQ(code(bt, 2) & 7, 0);
    float y[32];
    dequantize_row(GgmlType::MXFP4, &bb, y, 32);
    EXPECT_EQ(y[1], -0x1.8p127f);
}

TEST(Mxfp4Quantize, NonFiniteBlocksGetTheNanScale) {
    // Block 0 holds a NaN, block 1 an inf, block 2 is ordinary: only blocks 0 and 1 become NaN.
    std::vector<float> x(96, 1.0f);
    x[3] = NAN;
    x[40] = -INFINITY;
    std::vector<BlockMxfp4> b(3);
    quantize_row(GgmlType::MXFP4, x.data(), b.data(), 96);
    EXPECT_EQ(b[0].e, 0xFF);
    EXPECT_EQ(b[1].e, 0xFF);
    EXPECT_EQ(b[2].e, 127 - 2);  // amax 1: floor(log2 1) - 2 = -2
    std::vector<float> y(96);
    dequantize_row(GgmlType::MXFP4, b.data(), y.data(), 96);
    for (int i = 0; i < 64; ++i) EXPECT_TRUE(std::isnan(y[i])) << i;
    for (int i = 64; i < 96; ++i) EXPECT_EQ(y[i], 1.0f) << i;
}

TEST(Mxfp4Quantize, DecodedValuesAreFixedPoints) {
    // Every decoded value is representable with the same scale, so quantizing it again changes nothing.
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> x(32 * 256);
    for (auto& v : x) v = nd(rng);
    std::vector<BlockMxfp4> b(256), b2(256);
    std::vector<float> y(x.size()), y2(x.size());
    quantize_row(GgmlType::MXFP4, x.data(), b.data(), int64_t(x.size()));
    dequantize_row(GgmlType::MXFP4, b.data(), y.data(), int64_t(x.size()));
    quantize_row(GgmlType::MXFP4, y.data(), b2.data(), int64_t(y.size()));
    dequantize_row(GgmlType::MXFP4, b2.data(), y2.data(), int64_t(y.size()));
    EXPECT_EQ(y, y2);
}

// HF gpt-oss decoding rule (OAI weights.py as MODELS.md §2 describes it): lut[b & 0xF] is element
// 2i, lut[b >> 4] element 2i+1, then ldexp(value, scale - 127).
std::vector<float> decode_hf(const std::vector<uint8_t>& blocks, const std::vector<uint8_t>& scales) {
    static const float lut[16] = {+0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                  -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
    std::vector<float> out(blocks.size() * 2);
    for (size_t i = 0; i < blocks.size(); ++i) {
        const int exp = int(scales[i / 16]) - 127;
        out[2 * i] = std::ldexp(lut[blocks[i] & 0xF], exp);
        out[2 * i + 1] = std::ldexp(lut[blocks[i] >> 4], exp);
    }
    return out;
}

TEST(Mxfp4FromHf, RepackedBlocksDecodeLikeTheHfRule) {
    const int64_t n_blocks = 500;
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> byte(0, 255);
    std::vector<uint8_t> blocks(static_cast<size_t>(n_blocks) * 16), scales(static_cast<size_t>(n_blocks));
    for (auto& v : blocks) v = uint8_t(byte(rng));
    // Scales kept to 1..253 so that no value over/underflows and the NaN scale is not involved
    // (the HF rule has no NaN code); ldexp and the GGUF decoder then agree exactly, except for the
    // sign of zero (-0 from the HF table, +0 from llama.cpp's integer table).
    for (auto& v : scales) v = uint8_t(1 + byte(rng) % 253);
    std::vector<uint8_t> gguf(size_t(n_blocks) * 17);
    mxfp4_from_hf(blocks.data(), scales.data(), gguf.data(), n_blocks);
    std::vector<float> got(size_t(n_blocks) * 32);
    dequantize_row(GgmlType::MXFP4, gguf.data(), got.data(), n_blocks * 32);
    const std::vector<float> want = decode_hf(blocks, scales);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "element " << i;
    // The scale byte is copied unchanged, first in each block.
    for (int64_t b = 0; b < n_blocks; ++b) ASSERT_EQ(gguf[size_t(b) * 17], scales[size_t(b)]);
}

TEST(Mxfp4FromHf, HandWorkedBlock) {
    // HF byte i = element 2i (low) | 2i+1 (high). With byte 0 = 0x21 (el 0 code 1, el 1 code 2) and
    // byte 8 = 0x7F (el 16 code 15, el 17 code 7), the GGUF block has byte j = el j | el j+16 << 4:
    // qs[0] = 1 | 15 << 4 = 0xF1, qs[1] = 2 | 7 << 4 = 0x72, the rest 0.
    std::vector<uint8_t> hf(16, 0);
    hf[0] = 0x21;
    hf[8] = 0x7F;
    const uint8_t scale = 130;
    uint8_t out[17];
    mxfp4_from_hf(hf.data(), &scale, out, 1);
    EXPECT_EQ(out[0], 130);
    EXPECT_EQ(out[1], 0xF1);
    EXPECT_EQ(out[2], 0x72);
    for (int j = 3; j < 17; ++j) EXPECT_EQ(out[j], 0) << j;
}

}  // namespace
}  // namespace wo::quant
