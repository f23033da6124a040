// Bit-exactness against llama.cpp itself: the pinned node-llama-cpp package (tests/golden/package.json)
// ships ggml's libggml-base.so, which exports the reference dequantize_row_* functions and the
// f16/bf16 conversions. Random bytes decoded by both must give the same float bits.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/blocks.h"
#include "require_goldens.h"
#include "quant/quant.h"

namespace wo::quant {
namespace {

const char* kLib = WO_GOLDEN "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";

class Ggml {
public:
    Ggml() { handle_ = dlopen(kLib, RTLD_NOW | RTLD_LOCAL); }
    ~Ggml() {
        if (handle_) dlclose(handle_);
    }
    bool loaded() const { return handle_ != nullptr; }
    template <class F>
    F sym(const char* name) const {
        void* p = dlsym(handle_, name);
        EXPECT_NE(p, nullptr) << name;
        return reinterpret_cast<F>(p);
    }

private:
    void* handle_ = nullptr;
};

using DequantFn = void (*)(const void*, float*, int64_t);

#define REQUIRE_GGML(g)                                                                              \
    if (!(g).loaded())                                                                               \
    WO_SKIP_WITHOUT_GOLDENS("llama.cpp reference library not found (run scripts/goldens): " << kLib << ": " \
                            << dlerror())

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// Random blocks: random bytes, with each f16 scale redrawn until it is finite so that the
// comparison exercises arithmetic rather than NaN payload propagation (NaN scales are covered
// by the F16 conversion test below), and MXFP4's scale kept below 0xFF (see docs: llama.cpp
// ignores the OCP NaN scale; worker-orcd follows the spec there, on purpose).
std::vector<uint8_t> random_blocks(GgmlType t, int n_blocks, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255);
    const size_t size = traits(t).type_size;
    std::vector<uint8_t> v(size * size_t(n_blocks));
    for (auto& b : v) b = uint8_t(byte(rng));
    auto finite_f16 = [&](uint8_t* p) {
        while ((p[1] & 0x7C) == 0x7C) p[1] = uint8_t(byte(rng));
    };
    for (int k = 0; k < n_blocks; ++k) {
        uint8_t* b = v.data() + size * size_t(k);
        switch (t) {
            case GgmlType::Q8_0:
            case GgmlType::Q4_0:
            case GgmlType::Q5_0: finite_f16(b); break;
            case GgmlType::Q4_K:
            case GgmlType::Q5_K: finite_f16(b), finite_f16(b + 2); break;
            case GgmlType::Q6_K: finite_f16(b + offsetof(BlockQ6_K, d)); break;
            case GgmlType::MXFP4:
                if (b[0] == 0xFF) b[0] = 0xFE;
                break;
            default: break;
        }
    }
    return v;
}

TEST(GgmlOracle, DequantizeRowIsBitExact) {
    Ggml g;
    REQUIRE_GGML(g);
    const std::pair<GgmlType, const char*> fns[] = {
        {GgmlType::Q8_0, "dequantize_row_q8_0"}, {GgmlType::Q4_0, "dequantize_row_q4_0"},
        {GgmlType::Q5_0, "dequantize_row_q5_0"}, {GgmlType::Q4_K, "dequantize_row_q4_K"},
        {GgmlType::Q5_K, "dequantize_row_q5_K"}, {GgmlType::Q6_K, "dequantize_row_q6_K"},
        {GgmlType::MXFP4, "dequantize_row_mxfp4"}, {GgmlType::F16, "ggml_fp16_to_fp32_row"},
        {GgmlType::BF16, "ggml_bf16_to_fp32_row"}};
    for (auto [t, name] : fns) {
        auto ref = g.sym<DequantFn>(name);
        if (!ref) continue;
        const int n_blocks = int(traits(t).block_size) == 1 ? 8192 : 2048 * 32 / int(traits(t).block_size);
        std::vector<uint8_t> src = random_blocks(t, n_blocks, 1234 + uint32_t(t));
        const int64_t n = int64_t(n_blocks) * traits(t).block_size;
        std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
        ref(src.data(), want.data(), n);
        dequantize_row(t, src.data(), got.data(), n);
        int mismatches = 0;
        for (int64_t i = 0; i < n && mismatches < 5; ++i)
            if (bits(got[size_t(i)]) != bits(want[size_t(i)]) &&
                !(std::isnan(got[size_t(i)]) && std::isnan(want[size_t(i)]))) {
                ++mismatches;
                ADD_FAILURE() << type_name(t) << " element " << i << ": got " << got[size_t(i)] << " ("
                              << std::hex << bits(got[size_t(i)]) << "), ggml " << want[size_t(i)] << " ("
                              << bits(want[size_t(i)]) << ")" << std::dec;
            }
    }
}

TEST(GgmlOracle, HalfConversionsMatchEveryValue) {
    Ggml g;
    REQUIRE_GGML(g);
    auto h2f = g.sym<float (*)(uint16_t)>("ggml_fp16_to_fp32");
    auto f2h = g.sym<uint16_t (*)(float)>("ggml_fp32_to_fp16");
    auto f2b = g.sym<uint16_t (*)(float)>("ggml_fp32_to_bf16");
    ASSERT_TRUE(h2f && f2h && f2b);
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float a = f16_to_f32(uint16_t(h)), b = h2f(uint16_t(h));
        if (std::isnan(b))
            ASSERT_TRUE(std::isnan(a)) << std::hex << h;
        else
            ASSERT_EQ(bits(a), bits(b)) << std::hex << h;
    }
    // Float -> half/bf16 on random bit patterns (every class: subnormals, ties, overflow, NaN).
    std::mt19937 rng(9);
    for (int i = 0; i < 2000000; ++i) {
        uint32_t u = rng();
        if (i % 4 == 1) u &= 0xFFFFE000u | (rng() & 0x1000u);  // f16 ties
        if (i % 4 == 2) u &= 0xFFFF8000u;                      // bf16 ties
        float f;
        std::memcpy(&f, &u, 4);
        if (std::isnan(f)) {
            ASSERT_EQ(f2h(f) & 0x7C00, 0x7C00);
            ASSERT_NE(f32_to_f16(f) & 0x3FF, 0);
            ASSERT_EQ(f32_to_bf16(f), f2b(f)) << std::hex << u;
            continue;
        }
        ASSERT_EQ(f32_to_f16(f), f2h(f)) << std::hex << u;
        ASSERT_EQ(f32_to_bf16(f), f2b(f)) << std::hex << u;
    }
}

TEST(GgmlOracle, Mxfp4QuantizerAgreesWithGgmlOffTies) {
    // ggml's quantize_row_mxfp4_ref uses the same OCP scale rule; on continuous random data (no
    // exact ties) both must pick the same values. Compared after decoding, since a negative value
    // rounding to zero may get code 8 (-0) here and code 0 there.
    Ggml g;
    REQUIRE_GGML(g);
    auto ref_q = g.sym<void (*)(const float*, void*, int64_t)>("quantize_row_mxfp4_ref");
    ASSERT_NE(ref_q, nullptr);
    std::mt19937 rng(21);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(32 * 4096);
    for (size_t i = 0; i < x.size(); ++i) x[i] = nd(rng) * std::ldexp(1.0f, int(i / 32 % 40) - 20);
    std::vector<BlockMxfp4> a(4096), b(4096);
    ref_q(x.data(), b.data(), int64_t(x.size()));
    quantize_row(GgmlType::MXFP4, x.data(), a.data(), int64_t(x.size()));
    std::vector<float> ya(x.size()), yb(x.size());
    dequantize_row(GgmlType::MXFP4, a.data(), ya.data(), int64_t(x.size()));
    dequantize_row(GgmlType::MXFP4, b.data(), yb.data(), int64_t(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(a[i / 32].e, b[i / 32].e) << "block " << i / 32;
        ASSERT_EQ(ya[i], yb[i]) << "element " << i << " x " << x[i];
    }
}

TEST(GgmlOracle, QuantizersAreAboutAsAccurateAsGgmls) {
    // Ours are simpler than ggml's reference quantizers (no scale search for the K-quants); they
    // must stay within 15% of ggml's relative RMS error on N(0,1) data (measured: Q4_K +11%,
    // Q5_K +7%, Q6_K +6%, the 32-wide formats equal).
    Ggml g;
    REQUIRE_GGML(g);
    const std::pair<GgmlType, const char*> fns[] = {
        {GgmlType::Q8_0, "quantize_row_q8_0_ref"}, {GgmlType::Q4_0, "quantize_row_q4_0_ref"},
        {GgmlType::Q5_0, "quantize_row_q5_0_ref"}, {GgmlType::Q4_K, "quantize_row_q4_K_ref"},
        {GgmlType::Q5_K, "quantize_row_q5_K_ref"}, {GgmlType::Q6_K, "quantize_row_q6_K_ref"},
        {GgmlType::MXFP4, "quantize_row_mxfp4_ref"}};
    const int64_t n = 256 * 128;
    std::mt19937 rng(2);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(n)), y(x.size()), z(x.size());
    for (auto& v : x) v = nd(rng);
    for (auto [t, name] : fns) {
        auto ref_q = g.sym<void (*)(const float*, void*, int64_t)>(name);
        if (!ref_q) continue;
        std::vector<uint8_t> ours(row_bytes(t, uint64_t(n))), theirs(ours.size());
        quantize_row(t, x.data(), ours.data(), n);
        ref_q(x.data(), theirs.data(), n);
        dequantize_row(t, ours.data(), y.data(), n);
        dequantize_row(t, theirs.data(), z.data(), n);
        double e_ours = 0, e_ggml = 0;
        for (size_t i = 0; i < x.size(); ++i)
            e_ours += (double(x[i]) - y[i]) * (double(x[i]) - y[i]), e_ggml += (double(x[i]) - z[i]) * (double(x[i]) - z[i]);
        EXPECT_LE(std::sqrt(e_ours), 1.15 * std::sqrt(e_ggml)) << type_name(t);
    }
}

TEST(GgmlOracle, TypeTableMatchesGgml) {
    // gguf/types.h: every id ggml defines, with its name, block size and bytes per block.
    Ggml g;
    REQUIRE_GGML(g);
    auto blck = g.sym<int64_t (*)(int)>("ggml_blck_size");
    auto size = g.sym<size_t (*)(int)>("ggml_type_size");
    auto name = g.sym<const char* (*)(int)>("ggml_type_name");
    ASSERT_TRUE(blck && size && name);
    int checked = 0;
    for (uint32_t id = 0; id < 64; ++id) {
        auto tr = type_traits(id);
        if (!tr) continue;
        ++checked;
        EXPECT_EQ(int64_t(tr->block_size), blck(int(id))) << tr->name;
        EXPECT_EQ(size_t(tr->type_size), size(int(id))) << tr->name;
        const char* ggml_name = name(int(id));
        ASSERT_NE(ggml_name, nullptr) << tr->name;
        // ggml spells them "q4_K", "mxfp4"; our table upper-cases them: compare ignoring case.
        auto lower = [](std::string s) {
            for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
            return s;
        };
        EXPECT_EQ(lower(std::string(tr->name)), lower(ggml_name)) << "id " << id;
    }
    EXPECT_GE(checked, 30);
}

}  // namespace
}  // namespace wo::quant
