// The unit decoders of backend/cuda/dequant.cuh compiled for the host (they are __host__
// __device__), checked bit for bit against quant::dequantize_row on random bytes. Runs without
// a GPU, so CI checks the index arithmetic of every format; CudaDequant checks the device build.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cuda/dequant.cuh"
#include "kernel_test_util.h"

namespace wo::cuda::test {
namespace {

// `rows` rows of n elements of type t, every byte random (every code, every scale byte).
std::vector<uint8_t> random_rows(GgmlType t, int64_t n, int rows, std::mt19937& rng) {
    std::vector<uint8_t> w(row_bytes(t, uint64_t(n)) * size_t(rows));
    for (auto& b : w) b = uint8_t(rng());
    return w;
}

template <GgmlType T>
void check_units(int64_t n, int rows, std::mt19937& rng) {
    SCOPED_TRACE(std::string(type_name(T)));
    const std::vector<uint8_t> w = random_rows(T, n, rows, rng);
    int64_t bad = 0;
    for (int r = 0; r < rows; ++r) {
        auto ref = cpu_row(T, w, n, r);
        const uint8_t* row = w.data() + row_bytes(T, uint64_t(n)) * size_t(r);
        for (int64_t u = 0; u < (n + 7) / 8; ++u) {
            float v[8];
            Dequant<T>::unit(row, u, n, v);
            for (int i = 0; i < 8; ++i) {
                const int64_t e = 8 * u + i;
                const bool ok = e < n ? same_value(v[i], ref[size_t(e)]) : v[i] == 0.0f;
                if (!ok && bad++ < 5) {
                    ADD_FAILURE() << "row " << r << " element " << e << ": " << v[i];
                }
            }
        }
    }
    EXPECT_EQ(bad, 0);
}

TEST(CudaDequantHost, UnitDecodersMatchCpuBitForBit) {
    std::mt19937 rng(3);
    check_units<GgmlType::F32>(37, 4, rng);  // a tail unit of 5
    check_units<GgmlType::F16>(1003, 4, rng);
    check_units<GgmlType::BF16>(1003, 4, rng);
    check_units<GgmlType::Q8_0>(32 * 37, 16, rng);
    check_units<GgmlType::Q4_0>(32 * 37, 16, rng);
    check_units<GgmlType::Q5_0>(32 * 37, 16, rng);
    check_units<GgmlType::MXFP4>(32 * 37, 16, rng);
    check_units<GgmlType::Q4_K>(256 * 5, 16, rng);
    check_units<GgmlType::Q5_K>(256 * 5, 16, rng);
    check_units<GgmlType::Q6_K>(256 * 5, 16, rng);
}

// The DEVICE layout of one row (dequant.cuh), built on the host from a GGUF row.
std::vector<uint8_t> packed_row(GgmlType t, const uint8_t* row, int64_t n) {
    std::vector<uint8_t> p(packed_row_bytes(t, n), 0);
    for (int64_t b = 0; b < n / 32; ++b) {
        if (t == GgmlType::MXFP4) {
            const auto* blk = reinterpret_cast<const quant::BlockMxfp4*>(row) + b;
            uint8_t v[32];
            for (int j = 0; j < 16; ++j) v[j] = blk->qs[j] & 0xF, v[j + 16] = blk->qs[j] >> 4;
            for (int j = 0; j < 16; ++j) p[size_t(16 * b + j)] = uint8_t(v[2 * j] | (v[2 * j + 1] << 4));
            p[size_t(n / 2 + b)] = blk->e;
        } else {
            const auto* blk = reinterpret_cast<const quant::BlockQ8_0*>(row) + b;
            std::memcpy(&p[size_t(32 * b)], blk->qs, 32);
            std::memcpy(&p[size_t(n + 2 * b)], &blk->d, 2);
        }
    }
    return p;
}

// Scaled units: c_i * kPre * s is unit()'s value (the product in double is exact; overflow to
// inf and NaN scales as unit() gives them), in both layouts, on random bytes (every code, every
// scale byte).
template <GgmlType T>
void check_scaled(int64_t n, int rows, std::mt19937& rng) {
    SCOPED_TRACE(std::string(type_name(T)));
    const std::vector<uint8_t> w = random_rows(T, n, rows, rng);
    int64_t bad = 0;
    for (int r = 0; r < rows; ++r) {
        const uint8_t* row = w.data() + row_bytes(T, uint64_t(n)) * size_t(r);
        const std::vector<uint8_t> pk = packed_row(T, row, n);
        for (int64_t u = 0; u < n / 8; ++u) {
            float v[8], c[8], cp[8];
            Dequant<T>::unit(row, u, n, v);
            const float s = Scaled<Dequant<T>>::codes(row, u, n, c);
            const float sp = Scaled<Packed<T>>::codes(pk.data(), u, n, cp);
            for (int i = 0; i < 8; ++i) {
                const float got = float(double(c[i]) * double(Scaled<Dequant<T>>::kPre) * double(s));
                const bool ok = (std::isnan(v[i]) ? std::isnan(got) : got == v[i]) &&
                                same_value(c[i], cp[i]) && same_value(s, sp);
                if (!ok && bad++ < 5) ADD_FAILURE() << "row " << r << " element " << 8 * u + i << ": " << v[i] << " vs " << got;
            }
        }
    }
    EXPECT_EQ(bad, 0);
}

TEST(CudaDequantHost, ScaledUnitsGiveTheUnitValuesInBothLayouts) {
    std::mt19937 rng(5);
    check_scaled<GgmlType::Q8_0>(32 * 37, 64, rng);
    check_scaled<GgmlType::MXFP4>(32 * 37, 64, rng);
}

TEST(CudaDequantHost, E2m1MatchesQuantTable) {
    for (unsigned q = 0; q < 16; ++q) EXPECT_EQ(e2m1_x2(q), quant::e2m1_x2(uint8_t(q))) << q;
}

// e2m1x8_halves (the tensor-core paths' MXFP4 operands): element j of a word as the low half of
// h[j % 4] for j < 4, the high half for j >= 4, each exactly E2M1 * 2^-14 as an f16, and the
// other bits of each half zero (code 8 is -0): every code at every position over many random
// neighbours, and words of random codes.
TEST(CudaDequantHost, E2m1HalvesAreTheCodesTimes2PowMinus14) {
    std::mt19937 rng(12);
    auto check = [](uint32_t q) {
        uint32_t h[4];
        e2m1x8_halves(q, h);
        for (int j = 0; j < 8; ++j) {
            const uint16_t half = uint16_t(j < 4 ? h[j] & 0xFFFFu : h[j - 4] >> 16);
            const unsigned code = (q >> (4 * j)) & 0xFu;
            const float mag = std::ldexp(0.5f * float(quant::e2m1_x2(uint8_t(code & 7u))), -14);
            const float want = code & 8u ? -mag : mag;  // code 8 is -0
            if (!same_value(quant::f16_to_f32(half), want) || (half & 0x71FFu) != 0) return j;
        }
        return -1;
    };
    int64_t bad = 0;
    for (int j = 0; j < 8; ++j)
        for (uint32_t v = 0; v < 16; ++v)
            for (int k = 0; k < 4096; ++k) {
                const uint32_t q = (uint32_t(rng()) & ~(0xFu << (4 * j))) | (v << (4 * j));
                const int at = check(q);
                if (at >= 0 && bad++ < 5) ADD_FAILURE() << std::hex << "q " << q << " element " << at;
            }
    for (int k = 0; k < (1 << 20); ++k) {
        const uint32_t q = uint32_t(rng());
        const int at = check(q);
        if (at >= 0 && bad++ < 5) ADD_FAILURE() << std::hex << "q " << q << " element " << at;
    }
    EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace wo::cuda::test
