// Hand-built blocks of every format, decoded by dequantize_row and compared with values worked
// out by hand from the GGUF layout (ggml-common.h / MODELS.md §2), not from the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/quant.h"

namespace wo::quant {
namespace {

std::vector<float> decode(GgmlType t, const std::vector<uint8_t>& bytes, int64_t n) {
    EXPECT_EQ(bytes.size(), row_bytes(t, uint64_t(n))) << type_name(t);
    std::vector<float> y(size_t(n), -12345.0f);
    dequantize_row(t, bytes.data(), y.data(), n);
    return y;
}

void expect_bits_eq(const std::vector<float>& got, const std::vector<float>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        uint32_t g, w;
        std::memcpy(&g, &got[i], 4);
        std::memcpy(&w, &want[i], 4);
        EXPECT_EQ(g, w) << "element " << i << ": got " << got[i] << ", want " << want[i];
    }
}

TEST(GoldenBlocks, F32IsACopy) {
    const float x[3] = {1.5f, -0.0f, 3.0e38f};
    std::vector<uint8_t> b(12);
    std::memcpy(b.data(), x, 12);
    expect_bits_eq(decode(GgmlType::F32, b, 3), {1.5f, -0.0f, 3.0e38f});
}

TEST(GoldenBlocks, F16) {
    // Little-endian binary16 bits: 0x3C00 = 1, 0xC000 = -2, 0x3555 = (1 + 341/1024) / 4 =
    // 0.333251953125, 0x7BFF = 65504 (max), 0x0400 = 2^-14 (min normal), 0x03FF = 1023 * 2^-24
    // (max subnormal), 0x0001 = 2^-24 (min subnormal), 0x8000 = -0.
    std::vector<uint8_t> b = {0x00, 0x3C, 0x00, 0xC0, 0x55, 0x35, 0xFF, 0x7B,
                              0x00, 0x04, 0xFF, 0x03, 0x01, 0x00, 0x00, 0x80};
    expect_bits_eq(decode(GgmlType::F16, b, 8), {1.0f, -2.0f, 0.333251953125f, 65504.0f, 0x1p-14f,
                                                 1023 * 0x1p-24f, 0x1p-24f, -0.0f});
}

TEST(GoldenBlocks, BF16) {
    // bf16 is the top half of a float: 0x3F80 = 1, 0xC0A0 = -5, 0x3EAB = 0x3EAB0000 =
    // 0.333984375, 0x0001 = 0x00010000 = 2^-133 (a float subnormal), 0x7F7F = 0x7F7F0000.
    std::vector<uint8_t> b = {0x80, 0x3F, 0xA0, 0xC0, 0xAB, 0x3E, 0x01, 0x00, 0x7F, 0x7F};
    expect_bits_eq(decode(GgmlType::BF16, b, 5),
                   {1.0f, -5.0f, 0.333984375f, 0x1p-133f, 0x1.FEp127f});
}

TEST(GoldenBlocks, Q8_0) {
    // d = 0x3800 = 0.5; y = qs * 0.5.
    const int8_t qs[32] = {0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8,
                           -8, 9, -9, 10, -10, 11, -11, 12, -12, 13, -13, 100, -100, 127, -127, -128};
    std::vector<uint8_t> b = {0x00, 0x38};
    for (int8_t q : qs) b.push_back(uint8_t(q));
    expect_bits_eq(decode(GgmlType::Q8_0, b, 32),
                   {0, 0.5, -0.5, 1, -1, 1.5, -1.5, 2, -2, 2.5, -2.5, 3, -3, 3.5, -3.5, 4,
                    -4, 4.5, -4.5, 5, -5, 5.5, -5.5, 6, -6, 6.5, -6.5, 50, -50, 63.5, -63.5, -64});
}

TEST(GoldenBlocks, Q4_0NibbleOrder) {
    // d = 0x4000 = 2. Byte j = code j (low nibble, element j) | code 15-j (high, element j+16).
    // y = (code - 8) * 2: elements 0..15 run -16..14, elements 16..31 run 14..-16.
    std::vector<uint8_t> b = {0x00, 0x40, 0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96, 0x87,
                              0x78, 0x69, 0x5A, 0x4B, 0x3C, 0x2D, 0x1E, 0x0F};
    expect_bits_eq(decode(GgmlType::Q4_0, b, 32),
                   {-16, -14, -12, -10, -8, -6, -4, -2, 0, 2, 4, 6, 8, 10, 12, 14,
                    14, 12, 10, 8, 6, 4, 2, 0, -2, -4, -6, -8, -10, -12, -14, -16});
}

TEST(GoldenBlocks, Q5_0HighBitOrder) {
    // d = 0x3C00 = 1. qh bytes {01 80 00 F0} = little-endian uint32 0xF0008001: fifth bit set for
    // elements 0, 15, 28, 29, 30, 31. Low nibbles: byte 0 = 0x3F (el 0: 15, el 16: 3),
    // byte 12 = 0xA5 (el 12: 5, el 28: 10), byte 15 = 0xF1 (el 15: 1, el 31: 15), others 0.
    // Codes: el0 = 31, el12 = 5, el15 = 17, el16 = 3, el28 = 26, el29 = el30 = 16, el31 = 31,
    // the rest 0; y = code - 16.
    std::vector<uint8_t> b = {0x00, 0x3C, 0x01, 0x80, 0x00, 0xF0, 0x3F, 0, 0, 0, 0, 0, 0, 0,
                              0, 0, 0, 0, 0xA5, 0, 0, 0xF1};
    std::vector<float> want(32, -16.0f);
    want[0] = 15;
    want[12] = -11;
    want[15] = 1;
    want[16] = -13;
    want[28] = 10;
    want[29] = 0;
    want[30] = 0;
    want[31] = 15;
    expect_bits_eq(decode(GgmlType::Q5_0, b, 32), want);
}

// The 12 scale bytes of the K-quant tests, packed by hand for sub-block scales
// sc = {1, 2, 3, 63, 17, 33, 48, 5} and mins m = {0, 4, 63, 1, 20, 2, 40, 63}:
// bytes 0-3 = sc[j] | (sc[j+4] >> 4) << 6 = 0x41 0x82 0xC3 0x3F,
// bytes 4-7 = m[j] | (m[j+4] >> 4) << 6   = 0x40 0x04 0xBF 0xC1,
// bytes 8-11 = (sc[j+4] & 15) | (m[j+4] & 15) << 4 = 0x41 0x21 0x80 0xF5.
const uint8_t kScalesK4[12] = {0x41, 0x82, 0xC3, 0x3F, 0x40, 0x04, 0xBF, 0xC1, 0x41, 0x21, 0x80, 0xF5};
// With d = 1 and dmin = 0.5 (0x3C00, 0x3800), y = sc*q - m/2 per sub-block:
const float kSlope[8] = {1, 2, 3, 63, 17, 33, 48, 5};
const float kOffset[8] = {0, 2, 31.5, 0.5, 10, 1, 20, 31.5};

TEST(GoldenBlocks, Q4_K) {
    // qs[32p + l] = (l % 16) | (15 - l % 16) << 4: sub-block 2p has codes l % 16, sub-block 2p+1
    // codes 15 - l % 16.
    std::vector<uint8_t> b = {0x00, 0x3C, 0x00, 0x38};
    b.insert(b.end(), kScalesK4, kScalesK4 + 12);
    for (int i = 0; i < 128; ++i) b.push_back(uint8_t((i % 16) | (15 - i % 16) << 4));
    std::vector<float> want(256);
    for (int s = 0; s < 8; ++s)
        for (int l = 0; l < 32; ++l) {
            const int q = s % 2 == 0 ? l % 16 : 15 - l % 16;
            want[32 * s + l] = kSlope[s] * float(q) - kOffset[s];
        }
    // Spot values by hand: el 32 (s1, q 15) = 28; el 69 (s2, q 5) = -16.5;
    // el 100 (s3, q 11) = 692.5; el 255 (s7, q 0) = -31.5.
    EXPECT_EQ(want[32], 28.0f);
    EXPECT_EQ(want[69], -16.5f);
    EXPECT_EQ(want[100], 692.5f);
    EXPECT_EQ(want[255], -31.5f);
    expect_bits_eq(decode(GgmlType::Q4_K, b, 256), want);
}

TEST(GoldenBlocks, Q5_K) {
    // As Q4_K, plus qh[l] = 0xFF - l: element 64p+l takes bit 2p of qh[l] as its fifth bit
    // (+16), element 64p+32+l bit 2p+1. For l = 5, qh = 0xFA = 0b11111010.
    std::vector<uint8_t> b = {0x00, 0x3C, 0x00, 0x38};
    b.insert(b.end(), kScalesK4, kScalesK4 + 12);
    for (int l = 0; l < 32; ++l) b.push_back(uint8_t(0xFF - l));
    for (int i = 0; i < 128; ++i) b.push_back(uint8_t((i % 16) | (15 - i % 16) << 4));
    const std::vector<float> y = decode(GgmlType::Q5_K, b, 256);
    // l = 5 in each sub-block s (bit s of 0xFA: 0,1,0,1,1,1,1,1):
    // s0: q 5 -> 5;          s1: q 10+16 -> 2*26-2 = 50;   s2: q 5 -> 15-31.5 = -16.5;
    // s3: q 26 -> 1637.5;    s4: q 21 -> 347;              s5: q 26 -> 857;
    // s6: q 21 -> 988;       s7: q 26 -> 98.5.
    const float want5[8] = {5, 50, -16.5, 1637.5, 347, 857, 988, 98.5};
    for (int s = 0; s < 8; ++s) EXPECT_EQ(y[32 * s + 5], want5[s]) << "sub-block " << s;
    // l = 0, qh = 0xFF: all fifth bits set. s0: q 16 -> 16; s7: q 15+16 -> 5*31-31.5 = 123.5.
    EXPECT_EQ(y[0], 16.0f);
    EXPECT_EQ(y[224], 123.5f);
    // l = 31, qh = 0xE0: bits 5,6,7 set. s3: q 0 -> -0.5; s5: q 0+16 -> 527; s6: q 15+16 -> 1468.
    EXPECT_EQ(y[127], -0.5f);
    EXPECT_EQ(y[191], 527.0f);
    EXPECT_EQ(y[223], 1468.0f);
    std::vector<float> want(256);
    for (int s = 0; s < 8; ++s)
        for (int l = 0; l < 32; ++l) {
            const int q = (s % 2 == 0 ? l % 16 : 15 - l % 16) + 16 * (((0xFF - l) >> s) & 1);
            want[32 * s + l] = kSlope[s] * float(q) - kOffset[s];
        }
    expect_bits_eq(y, want);
}

TEST(GoldenBlocks, Q6_K) {
    // ql[k] = k, qh[k] = 0xE4 (2-bit fields 0,1,2,3 from bit 0 up), scales = {1,-1,2,-2,3,-3,4,-4,
    // 5,-5,6,-6,7,-7,127,-128}, d = 0x3800 = 0.5 (stored last). In half h, for l in 0..31:
    //   el 128h+l    : low nibble of ql[64h+l]    = l%16,         top bits 0 -> q = l%16
    //   el 128h+32+l : low nibble of ql[64h+32+l] = l%16,         top bits 1 -> q = l%16 + 16
    //   el 128h+64+l : high nibble of ql[64h+l]   = 4h + l/16,    top bits 2 -> q = 4h + l/16 + 32
    //   el 128h+96+l : high nibble of ql[64h+32+l]= 4h + 2 + l/16,top bits 3 -> q = 4h+2+l/16 + 48
    // y = (0.5 * scales[i/16]) * (q - 32).
    const int8_t sc[16] = {1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 127, -128};
    std::vector<uint8_t> b;
    for (int k = 0; k < 128; ++k) b.push_back(uint8_t(k));
    for (int k = 0; k < 64; ++k) b.push_back(0xE4);
    for (int8_t s : sc) b.push_back(uint8_t(s));
    b.push_back(0x00);
    b.push_back(0x38);
    const std::vector<float> y = decode(GgmlType::Q6_K, b, 256);
    // Spot values by hand: el 0: q 0, sc 1 -> -16; el 17: q 1, sc -1 -> 15.5; el 40: q 24, sc 2
    // -> -8; el 70: q 32 -> 0; el 85: q 33, sc -3 -> -1.5; el 100: q 50, sc 4 -> 36; el 127:
    // q 51, sc -4 -> -38; el 128: q 0, sc 5 -> -80; el 200: q 36, sc 7 -> 14; el 230: q 54,
    // sc 127 -> 1397; el 255: q 55, sc -128 -> -1472.
    const int idx[11] = {0, 17, 40, 70, 85, 100, 127, 128, 200, 230, 255};
    const float val[11] = {-16, 15.5, -8, 0, -1.5, 36, -38, -80, 14, 1397, -1472};
    for (int k = 0; k < 11; ++k) EXPECT_EQ(y[idx[k]], val[k]) << "element " << idx[k];
    std::vector<float> want(256);
    for (int h = 0; h < 2; ++h)
        for (int l = 0; l < 32; ++l) {
            const int q[4] = {l % 16, l % 16 + 16, 4 * h + l / 16 + 32, 4 * h + 2 + l / 16 + 48};
            for (int k = 0; k < 4; ++k) {
                const int i = 128 * h + 32 * k + l;
                want[i] = 0.5f * float(sc[i / 16]) * float(q[k] - 32);
            }
        }
    expect_bits_eq(y, want);
}

TEST(GoldenBlocks, Mxfp4) {
    // Block 0: e = 127 (X = 1), byte j = code j | code (15-j) << 4, so element j has code j and
    // element j+16 code 15-j. Codes 0-7: 0, .5, 1, 1.5, 2, 3, 4, 6; 8-15 the negatives (8 = -0,
    // which llama.cpp decodes as +0).
    // Block 1: e = 130 (X = 8), every byte 0x77: all 32 elements 6 * 8 = 48.
    // Block 2: e = 120 (X = 2^-7), byte 0 = 0x1F: element 0 = -6/128 = -0.046875, element 16 =
    // 0.5/128 = 0.00390625, the rest 0.
    std::vector<uint8_t> b = {127};
    for (int j = 0; j < 16; ++j) b.push_back(uint8_t(j | (15 - j) << 4));
    b.push_back(130);
    for (int j = 0; j < 16; ++j) b.push_back(0x77);
    b.push_back(120);
    b.push_back(0x1F);
    for (int j = 1; j < 16; ++j) b.push_back(0);
    std::vector<float> want = {0, 0.5, 1, 1.5, 2, 3, 4, 6, 0, -0.5, -1, -1.5, -2, -3, -4, -6,
                               -6, -4, -3, -2, -1.5, -1, -0.5, 0, 6, 4, 3, 2, 1.5, 1, 0.5, 0};
    want.insert(want.end(), 32, 48.0f);
    want.push_back(-0.046875f);
    want.insert(want.end(), 15, 0.0f);
    want.push_back(0.00390625f);
    want.insert(want.end(), 15, 0.0f);
    expect_bits_eq(decode(GgmlType::MXFP4, b, 96), want);
}

TEST(GoldenBlocks, Mxfp4ScaleExtremes) {
    // e = 0: X = 2^-127. Codes 1, 2, 7 (bytes 0..2, low nibbles) -> 2^-128 (float subnormal bits
    // 0x00200000), 2^-127 (0x00400000), 6 * 2^-127 = 1.5 * 2^-125 (normal, 0x01400000).
    // e = 254: X = 2^127. Codes 1, 2, 3 -> 2^126, 2^127, 1.5 * 2^127; codes 4, 5, 6, 7
    // (2, 3, 4, 6 times 2^127) exceed FLT_MAX and round to +inf; code 12 (-2) to -inf.
    // e = 255: the OCP NaN scale; all 32 elements NaN (code 0 included).
    std::vector<uint8_t> b = {0, 0x01, 0x02, 0x07};
    b.insert(b.end(), 13, 0);
    b.push_back(254);
    const uint8_t hi[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0C};
    b.insert(b.end(), hi, hi + 8);
    b.insert(b.end(), 8, 0);
    b.push_back(255);
    b.insert(b.end(), 16, 0);
    const std::vector<float> y = decode(GgmlType::MXFP4, b, 96);
    const float inf = INFINITY;
    std::vector<float> want0 = {0x1p-128f, 0x1p-127f, 0x1.8p-125f};
    want0.resize(32, 0.0f);
    std::vector<float> want1 = {0x1p126f, 0x1p127f, 0x1.8p127f, inf, inf, inf, inf, -inf};
    want1.resize(32, 0.0f);
    expect_bits_eq({y.begin(), y.begin() + 32}, want0);
    expect_bits_eq({y.begin() + 32, y.begin() + 64}, want1);
    for (int i = 64; i < 96; ++i) EXPECT_TRUE(std::isnan(y[i])) << "element " << i;
}

}  // namespace
}  // namespace wo::quant
