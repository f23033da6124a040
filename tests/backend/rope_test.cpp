// RoPE on every backend: NORM and NEOX pairs, LINEAR and YaRN scaling, partial rotation
// (n_dims < head_dim), per-pair frequency factors, strided rows, positions up to 131071; the
// inverse frequencies always come from a backend tensor (RopeParams::inv_freq). Also the YaRN
// table itself (host code shared by every backend).
#include "backend/harness.h"

namespace wo::test {
namespace {

// A RopeParams with its inv_freq table uploaded to the backend (the Dev keeps it alive).
struct Rope {
    RopeParams p;
    Dev inv;
    std::vector<float> host;
    Rope(Backend& be, RopeParams params) : p(std::move(params)) {
        host = rope_inv_freq(p);
        inv = dev_f32(be, host, static_cast<int64_t>(host.size()));
        p.inv_freq = inv.t;
    }
};

// inv_freq = 1/(freq·factor) with LINEAR scaling: factor 2/π, base 4, 4 dims gives inv_freq
// (π/2, π/4), so at pos 1 the angles are exact quarter and eighth turns.
RopeParams quarter_turns(RopeMode mode) {
    RopeParams p;
    p.mode = mode;
    p.n_dims = 4;
    p.head_dim = 4;
    p.n_head = 2;
    p.freq_base = 4;
    p.scaling = RopeScaling::LINEAR;
    p.factor = static_cast<float>(2.0 / M_PI);
    return p;
}

RopeParams gpt_oss_yarn() {
    RopeParams p;
    p.mode = RopeMode::NEOX;
    p.n_dims = 64;
    p.head_dim = 64;
    p.n_head = 1;
    p.freq_base = 150000;
    p.scaling = RopeScaling::YARN;
    p.factor = 32;
    p.orig_ctx = 4096;
    return p;
}

TEST(Yarn, RampBoundsAndConcentrationMatchTheFormula) {
    const RopeParams p = gpt_oss_yarn();
    // low = 32·ln(4096/(32·2π))/ln 150000, high = 32·ln(4096/2π)/ln 150000, not rounded
    EXPECT_NEAR(yarn_corr_dim(p, 32), 8.0928, 1e-4);
    EXPECT_NEAR(yarn_corr_dim(p, 1), 17.398, 1e-3);
    EXPECT_NEAR(rope_attn_factor(p), 1.346574, 1e-6);  // 0.1·ln 32 + 1
}

TEST(Yarn, InvFreqInterpolatesOnlyInsideTheRamp) {
    const std::vector<float> inv = rope_inv_freq(gpt_oss_yarn());
    ASSERT_EQ(inv.size(), 32u);
    // i <= 8: pure extrapolation 150000^(-i/32); i >= 18: pure interpolation /32; 9..17 mixed
    const std::pair<int, double> want[] = {{0, 1.0},           {4, 0.2254180002},  {8, 0.0508132748},
                                           {9, 0.0317056962},  {12, 0.0067949595}, {17, 1.2931870e-4},
                                           {18, 3.8308812e-5}, {31, 3.0235114e-7}};
    for (auto [i, v] : want) EXPECT_NEAR(inv[i] / v, 1.0, 2e-6) << "i=" << i;
}

using RopeOp = BackendTest;
WO_ALL_BACKENDS(RopeOp);

TEST_P(RopeOp, NormRotatesAdjacentPairs) {
    Rope r(*be, quarter_turns(RopeMode::NORM));
    Dev x = dev_f32(*be, {1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4}, 8, 2);  // 2 tokens x 2 heads
    Dev pos = dev_i32(*be, {0, 1});
    be->rope(x.t, pos.t, r.p);
    const auto v = x.f32();
    const float s = 0.70710678f;
    const std::vector<float> pos1{-2, 1, (3 - 4) * s, (3 + 4) * s};
    for (int j = 0; j < 4; ++j) {
        EXPECT_NEAR(v[j], 1 + j, 1e-6) << "pos 0 is the identity";
        EXPECT_NEAR(v[8 + j], pos1[j], 1e-6) << j;
        EXPECT_NEAR(v[12 + j], pos1[j], 1e-6) << "second head, " << j;
    }
}

TEST_P(RopeOp, NeoxRotatesHalves) {
    Rope r(*be, quarter_turns(RopeMode::NEOX));
    Dev x = dev_f32(*be, {1, 2, 3, 4, 1, 2, 3, 4}, 8, 1);
    Dev pos = dev_i32(*be, {1});
    be->rope(x.t, pos.t, r.p);
    const auto v = x.f32();
    const float s = 0.70710678f;
    // pairs (x0, x2) turn by π/2, (x1, x3) by π/4
    const std::vector<float> want{-3, (2 - 4) * s, 1, (2 + 4) * s};
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(v[j], want[j], 1e-6) << j;
}

TEST_P(RopeOp, PartialDimsLeaveTheRestAlone) {
    RopeParams p = quarter_turns(RopeMode::NEOX);
    p.n_dims = 2;  // one pair (x0, x1) at inv_freq 1/(1·factor) = π/2
    p.n_head = 1;
    Rope r(*be, p);
    Dev x = dev_f32(*be, {1, 2, 3, 4}, 4, 1);
    Dev pos = dev_i32(*be, {1});
    be->rope(x.t, pos.t, r.p);
    const auto v = x.f32();
    EXPECT_NEAR(v[0], -2, 1e-6);
    EXPECT_NEAR(v[1], 1, 1e-6);
    EXPECT_EQ(v[2], 3);
    EXPECT_EQ(v[3], 4);
}

TEST_P(RopeOp, YarnScalesCosAndSin) {
    Rope r(*be, gpt_oss_yarn());
    std::vector<float> x0(64, 0.0f);
    x0[0] = 1.0f;  // pair 0 (x0, x32) at inv_freq 1
    Dev x = dev_f32(*be, x0, 64, 1);
    Dev pos = dev_i32(*be, {3});
    be->rope(x.t, pos.t, r.p);
    const auto v = x.f32();
    EXPECT_NEAR(v[0], std::cos(3.0) * 1.3465736, 1e-5);
    EXPECT_NEAR(v[32], std::sin(3.0) * 1.3465736, 1e-5);
}

// Random rows against the rotation computed in double from the same (uploaded) inv_freq table.
void check_rope(Backend& be, RopeParams params, const std::string& what) {
    Rope r(be, std::move(params));
    const RopeParams& p = r.p;
    // The rotated heads are columns [c0, c0 + n_head·head_dim) of a wider row (k inside a fused
    // qkv buffer): everything else must stay as it was.
    const int64_t c0 = 128, width = c0 + static_cast<int64_t>(p.n_head) * p.head_dim + 64;
    const std::vector<int32_t> positions = {0, 1, 2, 5, 127, 128, 129, 1000, 4095, 4096, 32767, 65535, 131071};
    const int64_t n = static_cast<int64_t>(positions.size());
    const auto x = randn(static_cast<size_t>(width * n), 17, 1.5f);
    Dev xd = dev_f32(be, x, width, n), pos = dev_i32(be, positions);
    be.rope(xd.t.col_range(c0, width - c0 - 64), pos.t, p);
    const auto got = xd.f32();
    std::vector<double> want(x.begin(), x.end()), tol(x.size(), 0.0);
    const double m = rope_attn_factor(p);
    const int half = p.n_dims / 2;
    for (int64_t i = 0; i < n; ++i)
        for (int h = 0; h < p.n_head; ++h) {
            const int64_t base = i * width + c0 + static_cast<int64_t>(h) * p.head_dim;
            for (int j = 0; j < half; ++j) {
                const int64_t ia = base + (p.mode == RopeMode::NORM ? 2 * j : j);
                const int64_t ib = base + (p.mode == RopeMode::NORM ? 2 * j + 1 : j + half);
                const double th = static_cast<double>(positions[static_cast<size_t>(i)]) * r.host[j];
                const double a = x[ia], b = x[ib];
                want[ia] = (a * std::cos(th) - b * std::sin(th)) * m;
                want[ib] = (b * std::cos(th) + a * std::sin(th)) * m;
                const double t = m * (std::fabs(a) + std::fabs(b)) * (kEps32 * std::fabs(th) + 8 * kEps32);
                tol[ia] = tol[ib] = t;
            }
        }
    EXPECT_TRUE(near_all(got, want, tol,
                         "θ = pos·inv_freq may be rounded to fp32 as HF does (angle error eps·|θ|); sin, cos and "
                         "the rotation add a few eps: m·(|a|+|b|)·(eps·|θ| + 8·eps); untouched dims exact"))
        << what;
}

RopeParams base(RopeMode mode, int n_dims, int head_dim, int n_head) {
    RopeParams p;
    p.mode = mode;
    p.n_dims = n_dims;
    p.head_dim = head_dim;
    p.n_head = n_head;
    p.freq_base = 10000.0f;
    return p;
}

TEST_P(RopeOp, NormAndNeoxMatchTheRotationInDouble) {
    for (RopeMode mode : {RopeMode::NORM, RopeMode::NEOX}) {
        const std::string m = mode == RopeMode::NORM ? "NORM" : "NEOX";
        check_rope(*be, base(mode, 64, 64, 8), m + " full");
        check_rope(*be, base(mode, 128, 128, 2), m + " head_dim 128");
        check_rope(*be, base(mode, 32, 64, 4), m + " partial n_dims 32 of 64");
        check_rope(*be, base(mode, 24, 96, 3), m + " partial n_dims 24 of 96 (phi-style)");
    }
}

TEST_P(RopeOp, ScalingAndFrequencyFactors) {
    RopeParams lin = base(RopeMode::NORM, 64, 64, 4);
    lin.scaling = RopeScaling::LINEAR;
    lin.factor = 4;
    check_rope(*be, lin, "LINEAR x4");
    RopeParams yarn = gpt_oss_yarn();
    yarn.n_head = 8;
    check_rope(*be, yarn, "YaRN gpt-oss");
    RopeParams yp = yarn;
    yp.n_dims = 32;  // partial rotation with YaRN
    check_rope(*be, yp, "YaRN partial");
    RopeParams ff = base(RopeMode::NORM, 64, 64, 2);
    ff.freq_base = 500000;
    for (int i = 0; i < 32; ++i) ff.freq_factors.push_back(1.0f + static_cast<float>(i % 5));
    check_rope(*be, ff, "llama3 freq_factors");
}

}  // namespace
}  // namespace wo::test
