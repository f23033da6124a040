// CPU backend ops against values worked out by hand from the formulas (MODELS.md §1, HF/OAI
// reference code); the expected numbers were computed independently of this code.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/backend.h"

namespace wo {
namespace {

Tensor f32(std::vector<float>& v, int64_t cols, int64_t rows = 1) {
    return make_tensor(v.data(), GgmlType::F32, cols, rows);
}
Tensor i32(std::vector<int32_t>& v) {
    return make_tensor(v.data(), GgmlType::I32, static_cast<int64_t>(v.size()));
}

class OpsTest : public ::testing::Test {
protected:
    std::unique_ptr<Backend> be = make_cpu_backend(2);
};

TEST_F(OpsTest, RmsNormUsesEpsInsideTheRoot) {
    std::vector<float> x{1, 2, 3, 4}, w{1, 2, 0.5f, -1}, y(4);
    // mean(x²) = 7.5, + eps 0.5 = 8 -> scale 1/sqrt(8)
    be->rms_norm(f32(y, 4), f32(x, 4), f32(w, 4), 0.5f);
    const float s = 0.35355339f;
    EXPECT_NEAR(y[0], 1 * s, 1e-6);
    EXPECT_NEAR(y[1], 4 * s, 1e-6);
    EXPECT_NEAR(y[2], 1.5f * s, 1e-6);
    EXPECT_NEAR(y[3], -4 * s, 1e-6);
}

TEST_F(OpsTest, LayerNormWithBias) {
    std::vector<float> x{1, 2, 3, 4}, w{1, 2, 1, 1}, b{0, 0, 1, -1}, y(4);
    // mean 2.5, var 1.25, + eps 0.75 = 2 -> normalized (-1.5, -.5, .5, 1.5)/sqrt(2)
    be->layer_norm(f32(y, 4), f32(x, 4), f32(w, 4), f32(b, 4), 0.75f);
    EXPECT_NEAR(y[0], -1.06066017f, 1e-6);
    EXPECT_NEAR(y[1], -0.70710678f, 1e-6);
    EXPECT_NEAR(y[2], 1.35355339f, 1e-6);
    EXPECT_NEAR(y[3], 0.06066017f, 1e-6);
}

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

TEST_F(OpsTest, RopeNormRotatesAdjacentPairs) {
    std::vector<float> x{1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4};  // 2 tokens x 2 heads
    std::vector<int32_t> pos{0, 1};
    be->rope(f32(x, 8, 2), i32(pos), quarter_turns(RopeMode::NORM));
    const float r = 0.70710678f;
    const std::vector<float> pos1{-2, 1, (3 - 4) * r, (3 + 4) * r};
    for (int j = 0; j < 4; ++j) {
        EXPECT_NEAR(x[j], 1 + j, 1e-6) << "pos 0 is the identity";
        EXPECT_NEAR(x[8 + j], pos1[j], 1e-6) << j;
        EXPECT_NEAR(x[12 + j], pos1[j], 1e-6) << "second head, " << j;
    }
}

TEST_F(OpsTest, RopeNeoxRotatesHalves) {
    std::vector<float> x{1, 2, 3, 4, 1, 2, 3, 4};
    std::vector<int32_t> pos{1};
    RopeParams p = quarter_turns(RopeMode::NEOX);
    be->rope(f32(x, 8, 1), i32(pos), p);
    const float r = 0.70710678f;
    // pairs (x0, x2) turn by π/2, (x1, x3) by π/4
    const std::vector<float> want{-3, (2 - 4) * r, 1, (2 + 4) * r};
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(x[j], want[j], 1e-6) << j;
}

TEST_F(OpsTest, RopePartialDimsLeaveTheRestAlone) {
    std::vector<float> x{1, 2, 3, 4};
    std::vector<int32_t> pos{1};
    RopeParams p = quarter_turns(RopeMode::NEOX);
    p.n_dims = 2;  // one pair (x0, x1) at inv_freq 1/(1·factor) = π/2
    p.n_head = 1;
    be->rope(f32(x, 4, 1), i32(pos), p);
    EXPECT_NEAR(x[0], -2, 1e-6);
    EXPECT_NEAR(x[1], 1, 1e-6);
    EXPECT_EQ(x[2], 3);
    EXPECT_EQ(x[3], 4);
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

TEST_F(OpsTest, RopeYarnScalesCosAndSin) {
    std::vector<float> x(64, 0.0f);
    x[0] = 1.0f;  // pair 0 (x0, x32) at inv_freq 1
    std::vector<int32_t> pos{3};
    be->rope(f32(x, 64, 1), i32(pos), gpt_oss_yarn());
    EXPECT_NEAR(x[0], std::cos(3.0) * 1.3465736, 1e-5);
    EXPECT_NEAR(x[32], std::sin(3.0) * 1.3465736, 1e-5);
}

// 2 query heads share 1 kv head (GQA), head_dim 2. Keys at pos 0, 1, 2; the query at pos 2.
struct AttnCase {
    std::vector<float> q{0, 0, 0, 0, 0, 0, 0, 0, 0.6931472f * 2, 0, 0, 1.0986123f * 2};
    std::vector<float> k{100, 0, 1, 0, 0, 1};
    std::vector<float> v{1000, 1000, 4, 0, 0, 8};
    std::vector<float> out = std::vector<float>(12);
    std::vector<float> kc = std::vector<float>(2 * 8), vc = std::vector<float>(2 * 8);  // n_ctx 8, 1 slot
    std::vector<int32_t> pos{0, 1, 2}, slot{0, 0, 0};
    std::vector<float> sinks{0.6931472f, 0.0f};
    AttnParams p{2, 1, 2, 0.5f, 2, nullptr};
    void run(Backend& be) {
        KvLayer kv{make_tensor(kc.data(), GgmlType::F32, 2, 8, 1),
                   make_tensor(vc.data(), GgmlType::F32, 2, 8, 1)};
        be.attention(f32(out, 4, 3), f32(q, 4, 3), f32(k, 2, 3), f32(v, 2, 3), kv, i32(pos), i32(slot), p);
    }
};

TEST_F(OpsTest, AttentionWindowAndSinks) {
    AttnCase c;
    Tensor sinks = f32(c.sinks, 2);
    c.p.sinks = &sinks;
    c.run(*be);
    // Window 2 hides key 0 from the query at pos 2. Head 0: scaled scores (ln2, 0), sink ln2
    // (unscaled): weights 2, 1 over 2+1+2 -> (2·v1 + v2)/5.
    EXPECT_NEAR(c.out[8], 1.6f, 1e-5);
    EXPECT_NEAR(c.out[9], 1.6f, 1e-5);
    // Head 1: scores (0, ln3), sink 0: weights 1, 3 over 1+3+1 -> (v1 + 3·v2)/5.
    EXPECT_NEAR(c.out[10], 0.8f, 1e-5);
    EXPECT_NEAR(c.out[11], 4.8f, 1e-5);
}

TEST_F(OpsTest, AttentionWithoutSinkOrWindow) {
    AttnCase c;
    c.p.window = 0;
    c.q[8] = 0;  // head 0 now scores key 0 at 0 too: uniform over 3 keys
    c.run(*be);
    EXPECT_NEAR(c.out[8], (1000 + 4 + 0) / 3.0f, 1e-3);
    EXPECT_NEAR(c.out[9], (1000 + 0 + 8) / 3.0f, 1e-3);
    // The first token sees only itself.
    EXPECT_NEAR(c.out[0], 1000, 1e-3);
    // The step's keys landed in the cache at their positions.
    EXPECT_EQ(c.kc[2 * 2 + 1], 1.0f);
    EXPECT_EQ(c.vc[2 * 1 + 0], 4.0f);
}

TEST_F(OpsTest, ClampedSwiglu) {
    std::vector<float> g{8, -8, 1, 7, -2, 6.9f}, u{8, -8, 0.5f, -7.5f, 3, 6.9f}, y(6);
    be->swiglu_oai(f32(y, 6), f32(g, 6), f32(u, 6), 1.702f, 7.0f);
    const double want[] = {55.99962502642654,  5.859857319438229e-05, 1.268693648899232,
                           -41.99971876981991, -0.25736550742316744,  54.509567281764156};
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(y[i] / want[i], 1.0, 1e-5) << i;
}

TEST_F(OpsTest, SwigluAndGelu) {
    std::vector<float> g{1, -1, 2, -3}, u{2, 2, 2, 2}, y(4);
    be->swiglu(f32(y, 4), f32(g, 4), f32(u, 4));
    EXPECT_NEAR(y[0], 2 * 1 / (1 + std::exp(-1.0)), 1e-6);
    EXPECT_NEAR(y[3], 2 * -3 / (1 + std::exp(3.0)), 1e-6);
    be->gelu(f32(g, 4));
    const double want[] = {0.8411919906082768, -0.15880800939172324, 1.954597694087775,
                           -0.0036373920817729943};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(g[i], want[i], 1e-6) << i;
}

TEST_F(OpsTest, TopkThenSoftmaxOverTheSelectedOnly) {
    std::vector<float> logits{1, 5, 3, 4, 2, 0, 5.5f, -1}, w(4);
    std::vector<int32_t> ids(4);
    be->topk_softmax(make_tensor(ids.data(), GgmlType::I32, 4), f32(w, 4), f32(logits, 8), 4);
    EXPECT_EQ(ids, (std::vector<int32_t>{6, 1, 3, 2}));
    const double want[] = {0.5230820908987206, 0.3172653256766647, 0.11671539071300706, 0.04293719271160759};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(w[i], want[i], 1e-6) << i;
}

// Self-contained (own backend, own data) so it can move to a per-backend op suite.
// Tied router logits pick the lower expert id first (Backend::topk_softmax's contract), both
// for the ranking inside the top k and for which of the tied experts make the cut at its edge.
TEST(RouterTopk, TiedLogitsPickTheLowerExpertIdFirst) {
    std::unique_ptr<Backend> be = make_cpu_backend(2);
    // Row 0: experts 1, 3, 6 tie for first and 2, 5 for the last place (k = 4).
    // Row 1: all eight tie. Row 2: ties only below the cut (k = 4 takes 7, 0, 4, 2).
    std::vector<float> logits{0, 3, 2, 3, -1, 2, 3, 1,  //
                              1, 1, 1, 1, 1, 1, 1, 1,   //
                              5, 0, 2, 0, 4, 0, 0, 9};
    std::vector<float> w(12);
    std::vector<int32_t> ids(12);
    be->topk_softmax(make_tensor(ids.data(), GgmlType::I32, 4, 3), make_tensor(w.data(), GgmlType::F32, 4, 3),
                     make_tensor(logits.data(), GgmlType::F32, 8, 3), 4);
    EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 4), (std::vector<int32_t>{1, 3, 6, 2}));
    EXPECT_EQ(std::vector<int32_t>(ids.begin() + 4, ids.begin() + 8), (std::vector<int32_t>{0, 1, 2, 3}));
    EXPECT_EQ(std::vector<int32_t>(ids.begin() + 8, ids.end()), (std::vector<int32_t>{7, 0, 4, 2}));
    // Softmax over the selected: (e^3, e^3, e^3, e^2) / sum, and four equal weights.
    const double s = 3 * std::exp(3.0) + std::exp(2.0);
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(w[size_t(j)], std::exp(3.0) / s, 1e-6) << j;
    EXPECT_NEAR(w[3], std::exp(2.0) / s, 1e-6);
    for (int j = 4; j < 8; ++j) EXPECT_NEAR(w[size_t(j)], 0.25, 1e-6) << j;
    // k = 1 on a full tie: expert 0.
    std::vector<int32_t> one(1);
    std::vector<float> w1(1), flat{2, 2, 2, 2};
    be->topk_softmax(make_tensor(one.data(), GgmlType::I32, 1), make_tensor(w1.data(), GgmlType::F32, 1),
                     make_tensor(flat.data(), GgmlType::F32, 4), 1);
    EXPECT_EQ(one[0], 0);
    EXPECT_FLOAT_EQ(w1[0], 1.0f);
}

TEST_F(OpsTest, AddAndZero) {
    std::vector<float> y{1, 2, 3, 4}, x{10, 20, 30, 40};
    be->add(f32(y, 2, 2), f32(x, 2, 2));
    EXPECT_EQ(y, (std::vector<float>{11, 22, 33, 44}));
    be->zero(f32(y, 2, 2).row_range(1, 1));
    EXPECT_EQ(y, (std::vector<float>{11, 22, 0, 0}));
}

TEST_F(OpsTest, EmbedAndGetRows) {
    std::vector<float> table{0, 1, 10, 11, 20, 21}, y(4), z(2);
    std::vector<int32_t> ids{2, 0}, pick{1};
    be->embed(f32(y, 2, 2), f32(table, 2, 3), i32(ids));
    EXPECT_EQ(y, (std::vector<float>{20, 21, 0, 1}));
    be->embed_add(f32(y, 2, 2), f32(table, 2, 3), i32(ids));
    EXPECT_EQ(y, (std::vector<float>{40, 42, 0, 2}));
    be->get_rows(f32(z, 2, 1), f32(y, 2, 2), i32(pick));
    EXPECT_EQ(z, (std::vector<float>{0, 2}));
}

}  // namespace
}  // namespace wo
