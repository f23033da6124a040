// F16 and BF16 conversions: NaN, infinities, subnormals and rounding ties, with bit patterns
// worked out by hand from IEEE 754 (binary16: 1-5-10, bias 15; bfloat16: the top half of a float).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "quant/quant.h"

namespace wo::quant {
namespace {

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

TEST(F16, DecodesSpecialValues) {
    EXPECT_EQ(bits(f16_to_f32(0x0000)), 0x00000000u);
    EXPECT_EQ(bits(f16_to_f32(0x8000)), 0x80000000u);  // -0 keeps its sign
    EXPECT_EQ(f16_to_f32(0x7C00), INFINITY);
    EXPECT_EQ(f16_to_f32(0xFC00), -INFINITY);
    EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);          // least subnormal
    EXPECT_EQ(f16_to_f32(0x8001), -0x1p-24f);
    EXPECT_EQ(f16_to_f32(0x0200), 0x1p-15f);          // subnormal 512 * 2^-24
    EXPECT_EQ(f16_to_f32(0x3BFF), 0x1.FFCp-1f);       // largest value below 1
    // Quiet NaN 0x7E00: payload bit 9 -> float mantissa bit 22. Signalling 0x7C01 becomes
    // quiet with its payload kept: 0x7F800000 | 1 << 13 | 0x00400000.
    EXPECT_EQ(bits(f16_to_f32(0x7E00)), 0x7FC00000u);
    EXPECT_EQ(bits(f16_to_f32(0x7C01)), 0x7FC02000u);
    EXPECT_EQ(bits(f16_to_f32(0xFE00)), 0xFFC00000u);
}

TEST(F16, EncodesWithRoundToNearestEven) {
    EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
    EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
    EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
    // Between 1 (0x3C00) and 1 + 2^-10 (0x3C01) the midpoint 1 + 2^-11 goes to the even 0x3C00;
    // the midpoint 1 + 3 * 2^-11 between 0x3C01 and 0x3C02 goes to 0x3C02; just above a
    // midpoint rounds up.
    EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3C00);
    EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02);
    EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);
    EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f - 0x1p-20f), 0x3C00);
    // Overflow: 65520 is the midpoint between 65504 (odd mantissa 0x3FF) and 2^16 -> inf.
    EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);
    EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);
    EXPECT_EQ(f32_to_f16(1e9f), 0x7C00);
    EXPECT_EQ(f32_to_f16(-INFINITY), 0xFC00);
    EXPECT_EQ(f32_to_f16(3.4e38f), 0x7C00);
}

TEST(F16, EncodesSubnormalsAndUnderflow) {
    EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);
    EXPECT_EQ(f32_to_f16(0x1p-14f), 0x0400);        // least normal
    EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);        // tie between 0 and 2^-24: even is 0
    EXPECT_EQ(f32_to_f16(-0x1p-25f), 0x8000);
    EXPECT_EQ(f32_to_f16(0x1.000002p-25f), 0x0001); // just above the tie
    EXPECT_EQ(f32_to_f16(0x1.8p-24f), 0x0002);      // 1.5 * 2^-24: tie between 1 and 2 -> 2
    EXPECT_EQ(f32_to_f16(0x1.4p-23f), 0x0002);      // 2.5 * 2^-24: tie between 2 and 3 -> 2
    EXPECT_EQ(f32_to_f16(1023.5f * 0x1p-24f), 0x0400);  // tie between 0x3FF (odd) and 0x400
    EXPECT_EQ(f32_to_f16(0x1p-26f), 0x0000);
    EXPECT_EQ(f32_to_f16(1e-40f), 0x0000);          // a float subnormal
    EXPECT_EQ(f32_to_f16(-1e-40f), 0x8000);
}

TEST(F16, NanStaysNan) {
    for (uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFFFFFFFFu, 0x7F802000u}) {
        const uint16_t h = f32_to_f16(from_bits(nan));
        EXPECT_EQ(h & 0x7C00, 0x7C00) << std::hex << nan;
        EXPECT_NE(h & 0x03FF, 0) << std::hex << nan;  // never collapses to inf
        EXPECT_EQ(h & 0x8000, (nan >> 16) & 0x8000) << std::hex << nan;
    }
}

TEST(F16, RoundTripsEveryHalf) {
    // Every non-NaN binary16 value is a float and must come back unchanged.
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue;
        ASSERT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h) << std::hex << h;
    }
}

TEST(BF16, DecodesByShifting) {
    EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
    EXPECT_EQ(bf16_to_f32(0xFF80), -INFINITY);
    EXPECT_EQ(bf16_to_f32(0x0001), 0x1p-133f);  // subnormal kept, not flushed
    EXPECT_TRUE(std::isnan(bf16_to_f32(0x7FC1)));
    EXPECT_EQ(bits(bf16_to_f32(0x8000)), 0x80000000u);
}

TEST(BF16, EncodesWithRoundToNearestEven) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(f32_to_bf16(from_bits(0x3F808000)), 0x3F80);  // tie, 0x3F80 even
    EXPECT_EQ(f32_to_bf16(from_bits(0x3F818000)), 0x3F82);  // tie, 0x3F81 odd -> up
    EXPECT_EQ(f32_to_bf16(from_bits(0x3F808001)), 0x3F81);  // above the tie
    EXPECT_EQ(f32_to_bf16(from_bits(0x3F807FFF)), 0x3F80);  // below the tie
    EXPECT_EQ(f32_to_bf16(from_bits(0x7F7FFFFF)), 0x7F80);  // FLT_MAX rounds to inf
    EXPECT_EQ(f32_to_bf16(-INFINITY), 0xFF80);
    EXPECT_EQ(f32_to_bf16(from_bits(0x00018000)), 0x0002);  // subnormal tie -> even
    EXPECT_EQ(f32_to_bf16(from_bits(0x00008000)), 0x0000);
    EXPECT_EQ(f32_to_bf16(from_bits(0x00008001)), 0x0001);
    EXPECT_EQ(f32_to_bf16(from_bits(0x807F8000)), 0x8080);  // largest subnormal rounds to -2^-126
}

TEST(BF16, NanStaysNan) {
    // 0x7F800001 truncated would be 0x7F80 (inf); the quiet bit keeps it a NaN.
    EXPECT_EQ(f32_to_bf16(from_bits(0x7F800001)), 0x7FC0);
    EXPECT_EQ(f32_to_bf16(from_bits(0xFFC00000)), 0xFFC0);
    EXPECT_EQ(f32_to_bf16(from_bits(0x7FFFFFFF)), 0x7FFF);
}

TEST(F16, RowFunctionsUseTheSameConversions) {
    const float x[4] = {1.0f, 0x1p-25f, 65520.0f, NAN};
    uint16_t h[4], b[4];
    quantize_row(GgmlType::F16, x, h, 4);
    quantize_row(GgmlType::BF16, x, b, 4);
    EXPECT_EQ(h[0], 0x3C00);
    EXPECT_EQ(h[1], 0x0000);
    EXPECT_EQ(h[2], 0x7C00);
    EXPECT_EQ(h[3] & 0x7C00, 0x7C00);
    EXPECT_NE(h[3] & 0x3FF, 0);
    EXPECT_EQ(b[0], 0x3F80);
    EXPECT_EQ(b[1], 0x3300);  // 2^-25 = 0x33000000 exactly
    float y[4];
    dequantize_row(GgmlType::BF16, b, y, 4);
    EXPECT_EQ(y[2], 65536.0f);  // 65520 = 0x477FF000: low half 0xF000 is above the midpoint -> 0x4780 = 2^16
    EXPECT_TRUE(std::isnan(y[3]));
}

}  // namespace
}  // namespace wo::quant
