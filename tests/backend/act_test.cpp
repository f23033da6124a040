// Activations (gelu, swiglu, gpt-oss's clamped swiglu) and the router's topk_softmax on every
// backend: hand-computed values, double references with stated bounds, ties and NaN.
#include <algorithm>
#include <numeric>

#include "backend/harness.h"

namespace wo::test {
namespace {

using Act = BackendTest;
WO_ALL_BACKENDS(Act);

TEST_P(Act, ClampedSwiglu) {
    Dev g = dev_f32(*be, {8, -8, 1, 7, -2, 6.9f}, 6), u = dev_f32(*be, {8, -8, 0.5f, -7.5f, 3, 6.9f}, 6);
    Dev y = dev_nan(*be, 6);
    be->swiglu_oai(y.t, g.t, u.t, 1.702f, 7.0f);
    const auto r = y.f32();
    const double want[] = {55.99962502642654,  5.859857319438229e-05, 1.268693648899232,
                           -41.99971876981991, -0.25736550742316744,  54.509567281764156};
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(r[i] / want[i], 1.0, 1e-5) << i;
}

TEST_P(Act, SwigluAndGelu) {
    Dev g = dev_f32(*be, {1, -1, 2, -3}, 4), u = dev_f32(*be, {2, 2, 2, 2}, 4), y = dev_nan(*be, 4);
    be->swiglu(y.t, g.t, u.t);
    const auto r = y.f32();
    EXPECT_NEAR(r[0], 2 * 1 / (1 + std::exp(-1.0)), 1e-6);
    EXPECT_NEAR(r[3], 2 * -3 / (1 + std::exp(3.0)), 1e-6);
    be->gelu(g.t);
    const auto gr = g.f32();
    const double want[] = {0.8411919906082768, -0.15880800939172324, 1.954597694087775, -0.0036373920817729943};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(gr[i], want[i], 1e-6) << i;
}

// Inputs over a wide range: small, around the limits, and large enough for exp to overflow.
std::vector<float> act_input(size_t n, uint32_t seed) {
    auto v = randn(n, seed, 4.0f);
    const float edges[] = {0.0f, -0.0f, 7.0f, -7.0f, 7.5f, -7.5f, 20.0f, -20.0f, 50.0f, -50.0f, 100.0f, -100.0f,
                           1e-3f, -1e-3f, 6.999f, -1.0f};
    for (size_t i = 0; i < std::size(edges) && i < n; ++i) v[i * 3 % n] = edges[i];
    return v;
}

TEST_P(Act, GeluMatchesTheTanhFormula) {
    const int64_t d = 2880, n = 5;
    const auto x = act_input(static_cast<size_t>(d * n), 1);
    Dev xd = dev_f32(*be, x, d, n);
    be->gelu(xd.t);
    std::vector<double> want, tol;
    const double c = std::sqrt(2.0 / M_PI);
    for (float v : x) {
        want.push_back(0.5 * v * (1 + std::tanh(c * (v + 0.044715 * v * v * v))));
        tol.push_back(8 * kEps32 * std::fabs(v) + 1e-37);
    }
    EXPECT_TRUE(near_all(xd.f32(), want, tol, "fp32 tanh (a few ulp of a value <= 1), 1 + tanh and two products: "
                                              "8·eps·|x|"));
}

TEST_P(Act, SwigluOnStridedGateUpMatchesTheFormula) {
    // gate and up are the two halves of one [2·ff, n] buffer (phi3's fused gate|up).
    const int64_t ff = 96, n = 7;
    const auto gu = act_input(static_cast<size_t>(2 * ff * n), 2);
    Dev gud = dev_f32(*be, gu, 2 * ff, n), y = dev_nan(*be, ff, n), yo = dev_nan(*be, ff, n);
    be->swiglu(y.t, gud.t.col_range(0, ff), gud.t.col_range(ff, ff));
    const float alpha = 1.702f, limit = 7.0f;
    be->swiglu_oai(yo.t, gud.t.col_range(0, ff), gud.t.col_range(ff, ff), alpha, limit);
    std::vector<double> want, tol, want_o, tol_o;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < ff; ++j) {
            const double g = gu[static_cast<size_t>(i * 2 * ff + j)], u = gu[static_cast<size_t>(i * 2 * ff + ff + j)];
            want.push_back(g / (1 + std::exp(-g)) * u);
            tol.push_back(8 * kEps32 * std::fabs(g * u) + 1e-37);
            const double gc = std::min(g, static_cast<double>(limit)), uc = std::clamp(u, -7.0, 7.0);
            want_o.push_back(gc / (1 + std::exp(-static_cast<double>(alpha) * gc)) * (uc + 1));
            tol_o.push_back(8 * kEps32 * std::fabs(gc) * (std::fabs(uc) + 1) + 1e-37);
        }
    EXPECT_TRUE(near_all(y.f32(), want, tol, "fp32 exp and three roundings, |silu(g)·u| <= |g·u|: 8·eps·|g·u|"));
    EXPECT_TRUE(near_all(yo.f32(), want_o, tol_o,
                         "clamps are exact; fp32 exp, u + 1 (rounds relative to |u| + 1) and three products: "
                         "8·eps·|g|·(|u| + 1)"));
}

// ---- topk_softmax
struct TopK {
    std::vector<int32_t> ids;
    std::vector<double> w;
};

// The k first in (logit desc, id asc), NaN last; softmax over those k logits, in double.
TopK topk_ref(const float* l, int64_t n_exp, int k) {
    std::vector<int32_t> order(static_cast<size_t>(n_exp));
    std::iota(order.begin(), order.end(), 0);
    auto key = [&](int32_t e) { return std::isnan(l[e]) ? -std::numeric_limits<double>::infinity() : l[e]; };
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return key(a) > key(b); });
    TopK r;
    r.ids.assign(order.begin(), order.begin() + k);
    double sum = 0;
    for (int32_t e : r.ids) sum += std::exp(static_cast<double>(l[e]) - l[r.ids[0]]);
    for (int32_t e : r.ids) r.w.push_back(std::exp(static_cast<double>(l[e]) - l[r.ids[0]]) / sum);
    return r;
}

void check_topk(Backend& be, const std::vector<float>& logits, int64_t n_exp, int k, const std::string& what) {
    const int64_t n = static_cast<int64_t>(logits.size()) / n_exp;
    Dev l = dev_f32(be, logits, n_exp, n), ids(be, GgmlType::I32, k, n), w = dev_nan(be, k, n);
    ids.poison();
    be.topk_softmax(ids.t, w.t, l.t, k);
    const auto gi = ids.i32();
    const auto gw = w.f32();
    std::vector<int32_t> want_ids;
    std::vector<double> want_w, tol;
    for (int64_t i = 0; i < n; ++i) {
        const float* row = logits.data() + i * n_exp;
        const TopK r = topk_ref(row, n_exp, k);
        double spread = 0;  // the largest exp argument: its f32 rounding is rel eps·|l - max|
        for (int32_t e : r.ids) spread = std::max(spread, static_cast<double>(row[r.ids[0]]) - row[e]);
        want_ids.insert(want_ids.end(), r.ids.begin(), r.ids.end());
        for (double v : r.w) want_w.push_back(v), tol.push_back((k + 4 + spread) * kEps32 * v);
    }
    EXPECT_EQ(gi, want_ids) << what;
    EXPECT_TRUE(near_all(gw, want_w, tol, "fp32 l - max (rel eps·|l - max| after exp), exp and a sum of k: "
                                          "(k + 4 + max|l - max|)·eps relative"))
        << what;
}

using TopkSoftmax = BackendTest;
WO_ALL_BACKENDS(TopkSoftmax);

TEST_P(TopkSoftmax, TopkThenSoftmaxOverTheSelectedOnly) {
    Dev l = dev_f32(*be, {1, 5, 3, 4, 2, 0, 5.5f, -1}, 8), ids(*be, GgmlType::I32, 4), w = dev_nan(*be, 4);
    ids.poison();
    be->topk_softmax(ids.t, w.t, l.t, 4);
    EXPECT_EQ(ids.i32(), (std::vector<int32_t>{6, 1, 3, 2}));
    const auto r = w.f32();
    const double want[] = {0.5230820908987206, 0.3172653256766647, 0.11671539071300706, 0.04293719271160759};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(r[i], want[i], 1e-6) << i;
}

// Router logits that tie (a quantized router, or a broken one) must select the lower expert id,
// the order every backend and the HF reference agree on. Written out by hand, so a backend that
// let the higher id win (a strict > the other way round, or a parallel reduction that keeps the
// last one seen) fails here.
TEST_P(TopkSoftmax, TiedRouterLogitsPickTheLowerId) {
    const std::vector<float> logits = {
        1, 3, 3, 2, 3, 0, 3, 0,  // four-way tie for the top: ids 1, 2, 4 in that order (not 6)
        5, 1, 2, 2, 2, 0, 2, 0,  // tie across the k boundary: 0, then 2 and 3 of {2, 3, 4, 6}
        0, 0, 0, 0, 0, 0, 0, 0,  // all equal: the first k
    };
    Dev l = dev_f32(*be, logits, 8, 3), ids(*be, GgmlType::I32, 3, 3), w = dev_nan(*be, 3, 3);
    ids.poison();
    be->topk_softmax(ids.t, w.t, l.t, 3);
    EXPECT_EQ(ids.i32(), (std::vector<int32_t>{1, 2, 4, 0, 2, 3, 0, 1, 2}));
    // weights: {e^0, e^0, e^0}/3 for the ties at the top
    const auto r = w.f32();
    for (int j : {0, 1, 2, 6, 7, 8}) EXPECT_NEAR(r[j], 1.0 / 3, 1e-6) << j;
    const double z = 1 + 2 * std::exp(-3.0);
    EXPECT_NEAR(r[3], 1 / z, 1e-6);
    EXPECT_NEAR(r[4], std::exp(-3.0) / z, 1e-6);
    EXPECT_NEAR(r[5], std::exp(-3.0) / z, 1e-6);
}

TEST_P(TopkSoftmax, NanRanksLast) {
    // NaN in place of the largest logit must not be selected while k real logits remain.
    const std::vector<float> logits = {kNaN, 1, kNaN, 2, 0, 9,  //
                                       kNaN, kNaN, kNaN, kNaN, -1, -2};
    Dev l = dev_f32(*be, logits, 6, 2), ids(*be, GgmlType::I32, 2, 2), w = dev_nan(*be, 2, 2);
    ids.poison();
    be->topk_softmax(ids.t, w.t, l.t, 2);
    EXPECT_EQ(ids.i32(), (std::vector<int32_t>{5, 3, 4, 5}));
    const auto r = w.f32();
    EXPECT_NEAR(r[0], 1 / (1 + std::exp(-7.0)), 1e-6);
    EXPECT_NEAR(r[2], 1 / (1 + std::exp(-1.0)), 1e-6);
}

TEST_P(TopkSoftmax, MatchesTheReferenceForRouterShapes) {
    struct Case {
        int64_t n_exp;
        int k;
        int64_t n;
    };
    for (const Case c : {Case{4, 2, 7}, Case{32, 4, 33}, Case{128, 4, 33}, Case{32, 32, 3}}) {
        auto l = randn(static_cast<size_t>(c.n_exp * c.n), static_cast<uint32_t>(c.n_exp), 2.0f);
        // Half the rows on a coarse grid, so ties are everywhere, including at the k-th place.
        for (int64_t i = 0; i < c.n; i += 2)
            for (int64_t e = 0; e < c.n_exp; ++e) {
                float& v = l[static_cast<size_t>(i * c.n_exp + e)];
                v = std::round(v * 2) / 2;
            }
        check_topk(*be, l, c.n_exp, c.k, "n_exp " + std::to_string(c.n_exp) + " k " + std::to_string(c.k));
    }
}

}  // namespace
}  // namespace wo::test
