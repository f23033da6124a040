// quantize_row -> dequantize_row on random data: error bounds that follow from each format's bits,
// special inputs (zeros, NaN, inf, huge and tiny values), and the dispatchers' error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "util/error.h"

namespace wo::quant {
namespace {

const GgmlType kAll[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                         GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::MXFP4};

std::vector<float> roundtrip(GgmlType t, const std::vector<float>& x) {
    std::vector<uint8_t> q(row_bytes(t, x.size()));
    quantize_row(t, x.data(), q.data(), int64_t(x.size()));
    std::vector<float> y(x.size());
    dequantize_row(t, q.data(), y.data(), int64_t(x.size()));
    return y;
}

double rel_rms(const std::vector<float>& x, const std::vector<float>& y) {
    double e = 0, s = 0;
    for (size_t i = 0; i < x.size(); ++i) e += (double(x[i]) - y[i]) * (double(x[i]) - y[i]), s += double(x[i]) * x[i];
    return std::sqrt(e / s);
}

std::vector<float> gaussian(size_t n, float scale, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> x(n);
    for (auto& v : x) v = nd(rng);
    return x;
}

// Relative RMS error bounds for N(0, s^2) data. A uniform quantizer with step D adds noise D/sqrt(12);
// the block maximum of 32 normal samples is about 2.1 s (it rarely passes 3 s), so with amax = 3 s:
//   Q8_0  D = amax/127          -> 3/127/sqrt(12) = 0.0068
//   Q5_0  D = amax/16           -> 0.054
//   Q4_0  D = amax/8            -> 0.108
//   Q6_K  D = amax/32 (16-wide sub-blocks, int8 sub-scales) -> 0.027
//   Q5_K  D = (max - min)/31 with max - min <= 6 s           -> 0.056
//   Q4_K  D = (max - min)/15                                 -> 0.115
//   MXFP4 1 mantissa bit: with X in (amax/8, amax/4] the bulk of the values (|x| < 2X) sees a step
//         of X/2 and the rest a step of X or 2X; worked through for N(0,1), about 0.13 -> 0.15.
//   F16 / BF16: round to nearest with 11 / 8 significant bits: |error| <= 2^-11 / 2^-8 relative.
double bound(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return 0.0;
        case GgmlType::F16: return 0x1p-11;
        case GgmlType::BF16: return 0x1p-8;
        case GgmlType::Q8_0: return 0.0068;
        case GgmlType::Q5_0: return 0.054;
        case GgmlType::Q4_0: return 0.108;
        case GgmlType::Q6_K: return 0.027;
        case GgmlType::Q5_K: return 0.056;
        case GgmlType::Q4_K: return 0.115;
        case GgmlType::MXFP4: return 0.15;
        default: return 0.0;
    }
}

TEST(Roundtrip, RelativeRmsErrorWithinTheFormatsBits) {
    for (float scale : {1.0f, 1e-3f, 1e3f}) {
        const std::vector<float> x = gaussian(256 * 64, scale, 42);
        for (GgmlType t : kAll) {
            const double err = rel_rms(x, roundtrip(t, x));
            RecordProperty(std::string(type_name(t)) + "_rel_rms_" + std::to_string(scale), std::to_string(err));
            EXPECT_LE(err, bound(t)) << type_name(t) << " scale " << scale;
            // And the format is not lossless (except F32): the test would notice a no-op.
            if (t != GgmlType::F32) {
                EXPECT_GT(err, 0.0) << type_name(t);
            }
        }
    }
}

TEST(Roundtrip, FloatFormatsBoundEveryElement) {
    const std::vector<float> x = gaussian(4096, 1.0f, 7);
    const std::vector<float> h = roundtrip(GgmlType::F16, x), b = roundtrip(GgmlType::BF16, x);
    for (size_t i = 0; i < x.size(); ++i) {
        if (std::fabs(x[i]) < 0x1p-14f) continue;  // f16 subnormals have absolute, not relative, error
        EXPECT_LE(std::fabs(h[i] - x[i]), std::fabs(x[i]) * 0x1p-11f) << i;
        EXPECT_LE(std::fabs(b[i] - x[i]), std::fabs(x[i]) * 0x1p-8f) << i;
    }
}

TEST(Roundtrip, KQuantsSurviveUnevenSubBlocks) {
    // Sub-blocks of very different magnitude, constant runs and one-signed data must still give
    // valid blocks: finite output, every element within the block's own quantization step.
    std::vector<float> x(256 * 4);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (size_t i = 0; i < 256; ++i) x[i] = u(rng) * ((i / 32) % 2 ? 1000.0f : 0.001f);
    for (size_t i = 256; i < 512; ++i) x[i] = 3.25f;                 // constant, positive
    for (size_t i = 512; i < 768; ++i) x[i] = -1.0f - u(rng) * 0.5f;  // all negative
    for (size_t i = 768; i < 1024; ++i) x[i] = (i % 7 == 0) ? 50.0f : 0.0f;
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
        const std::vector<float> y = roundtrip(t, x);
        for (size_t b = 0; b < 4; ++b) {
            float amax = 0;
            for (size_t i = 256 * b; i < 256 * (b + 1); ++i) amax = std::max(amax, std::fabs(x[i]));
            for (size_t i = 256 * b; i < 256 * (b + 1); ++i) {
                ASSERT_TRUE(std::isfinite(y[i])) << type_name(t) << " element " << i;
                // The coarsest step any of the three can have is 2*amax/15 (Q4_K, range 2*amax).
                EXPECT_LE(std::fabs(y[i] - x[i]), amax * 2.0f / 15.0f) << type_name(t) << " element " << i;
            }
        }
    }
}

TEST(Roundtrip, ZerosStayZero) {
    const std::vector<float> x(256 * 2, 0.0f);
    for (GgmlType t : kAll) {
        const std::vector<float> y = roundtrip(t, x);
        for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_EQ(y[i], 0.0f) << type_name(t) << " element " << i;
            ASSERT_FALSE(std::signbit(y[i])) << type_name(t) << " element " << i << " is -0";
        }
    }
}

TEST(Roundtrip, TinyInputsDoNotDivideByZero) {
    // Float subnormals: every f16 block scale rounds to 0, so codes must not come from x / 0.
    std::vector<float> x(256, 1e-42f);
    x[3] = -3e-41f;
    for (GgmlType t : kAll) {
        const std::vector<float> y = roundtrip(t, x);
        for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_TRUE(std::isfinite(y[i])) << type_name(t) << " element " << i;
            ASSERT_LE(std::fabs(y[i]), 1e-40f) << type_name(t) << " element " << i;
        }
    }
}

TEST(Roundtrip, IntegerFormatsRejectNonFiniteInput) {
    for (float bad : {NAN, INFINITY, -INFINITY}) {
        std::vector<float> x(256, 1.0f);
        x[77] = bad;
        for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K,
                           GgmlType::Q6_K}) {
            std::vector<uint8_t> q(row_bytes(t, 256));
            try {
                quantize_row(t, x.data(), q.data(), 256);
                ADD_FAILURE() << type_name(t) << " accepted " << bad;
            } catch (const Error& e) {
                EXPECT_EQ(e.code(), Code::INVALID_ARGUMENT);
                EXPECT_NE(std::string(e.what()).find(std::string(type_name(t))), std::string::npos) << e.what();
                EXPECT_NE(std::string(e.what()).find("element 77"), std::string::npos) << e.what();
            }
        }
    }
}

TEST(Roundtrip, FloatFormatsKeepNonFiniteInput) {
    const std::vector<float> x = {NAN, INFINITY, -INFINITY, 1.0f};
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
        const std::vector<float> y = roundtrip(t, x);
        EXPECT_TRUE(std::isnan(y[0])) << type_name(t);
        EXPECT_EQ(y[1], INFINITY) << type_name(t);
        EXPECT_EQ(y[2], -INFINITY) << type_name(t);
        EXPECT_EQ(y[3], 1.0f) << type_name(t);
    }
}

TEST(Roundtrip, ScaleBeyondF16RangeIsAnError) {
    // Q8_0 can hold at most 127 * 65504; 1e9 needs a scale f16 cannot store.
    std::vector<float> x(32, 1.0f);
    x[5] = 1e9f;
    std::vector<uint8_t> q(row_bytes(GgmlType::Q8_0, 32));
    try {
        quantize_row(GgmlType::Q8_0, x.data(), q.data(), 32);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::INVALID_ARGUMENT);
        EXPECT_NE(std::string(e.what()).find("f16"), std::string::npos) << e.what();
    }
}

TEST(Dispatch, UnsupportedTypesAreErrorsNamingTheType) {
    float y[32];
    uint8_t buf[64] = {};
    for (auto [t, name] : {std::pair{GgmlType::Q4_1, "Q4_1"}, {GgmlType::IQ2_XXS, "IQ2_XXS"},
                           {GgmlType::I32, "I32"}, {static_cast<GgmlType>(99), "99"}}) {
        EXPECT_FALSE(can_dequantize(t)) << name;
        for (int quantize = 0; quantize < 2; ++quantize) {
            try {
                if (quantize)
                    quantize_row(t, y, buf, 32);
                else
                    dequantize_row(t, buf, y, 32);
                ADD_FAILURE() << name << " accepted";
            } catch (const Error& e) {
                EXPECT_EQ(e.code(), Code::DTYPE_UNSUPPORTED) << e.what();
                EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
            }
        }
    }
}

TEST(Dispatch, ElementCountMustBeWholeBlocks) {
    std::vector<uint8_t> buf(1024);
    std::vector<float> y(512);
    for (auto [t, n] : {std::pair{GgmlType::Q4_0, int64_t{33}}, {GgmlType::Q6_K, int64_t{128}},
                        {GgmlType::MXFP4, int64_t{16}}, {GgmlType::F16, int64_t{-1}}}) {
        try {
            dequantize_row(t, buf.data(), y.data(), n);
            ADD_FAILURE() << type_name(t) << " n " << n;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), Code::INVALID_ARGUMENT) << e.what();
        }
    }
    dequantize_row(GgmlType::Q4_K, buf.data(), y.data(), 0);  // zero elements is a valid empty row
}

TEST(Dispatch, SupportedTypesMatchTheTypeTableAndBlockStructs) {
    for (GgmlType t : kAll) EXPECT_TRUE(can_dequantize(t)) << type_name(t);
    EXPECT_EQ(traits(GgmlType::Q8_0).type_size, sizeof(BlockQ8_0));
    EXPECT_EQ(traits(GgmlType::Q4_0).type_size, sizeof(BlockQ4_0));
    EXPECT_EQ(traits(GgmlType::Q5_0).type_size, sizeof(BlockQ5_0));
    EXPECT_EQ(traits(GgmlType::Q4_K).type_size, sizeof(BlockQ4_K));
    EXPECT_EQ(traits(GgmlType::Q5_K).type_size, sizeof(BlockQ5_K));
    EXPECT_EQ(traits(GgmlType::Q6_K).type_size, sizeof(BlockQ6_K));
    EXPECT_EQ(traits(GgmlType::MXFP4).type_size, sizeof(BlockMxfp4));
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::MXFP4})
        EXPECT_EQ(traits(t).block_size, uint32_t(kQK)) << type_name(t);
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
        EXPECT_EQ(traits(t).block_size, uint32_t(kQK_K)) << type_name(t);
}

}  // namespace
}  // namespace wo::quant
