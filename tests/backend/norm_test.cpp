// rms_norm and layer_norm on every backend: hand-computed values, double references over odd
// widths and token counts, strided outputs, and batch invariance.
#include "backend/harness.h"

namespace wo::test {
namespace {

using Norm = BackendTest;
WO_ALL_BACKENDS(Norm);

TEST_P(Norm, RmsNormUsesEpsInsideTheRoot) {
    Dev x = dev_f32(*be, {1, 2, 3, 4}, 4), w = dev_f32(*be, {1, 2, 0.5f, -1}, 4), y = dev_nan(*be, 4);
    // mean(x²) = 7.5, + eps 0.5 = 8 -> scale 1/sqrt(8)
    be->rms_norm(y.t, x.t, w.t, 0.5f);
    const auto r = y.f32();
    const float s = 0.35355339f;
    EXPECT_NEAR(r[0], 1 * s, 1e-6);
    EXPECT_NEAR(r[1], 4 * s, 1e-6);
    EXPECT_NEAR(r[2], 1.5f * s, 1e-6);
    EXPECT_NEAR(r[3], -4 * s, 1e-6);
}

TEST_P(Norm, LayerNormWithBias) {
    Dev x = dev_f32(*be, {1, 2, 3, 4}, 4), w = dev_f32(*be, {1, 2, 1, 1}, 4), b = dev_f32(*be, {0, 0, 1, -1}, 4);
    Dev y = dev_nan(*be, 4);
    // mean 2.5, var 1.25, + eps 0.75 = 2 -> normalized (-1.5, -.5, .5, 1.5)/sqrt(2)
    be->layer_norm(y.t, x.t, w.t, b.t, 0.75f);
    const auto r = y.f32();
    EXPECT_NEAR(r[0], -1.06066017f, 1e-6);
    EXPECT_NEAR(r[1], -0.70710678f, 1e-6);
    EXPECT_NEAR(r[2], 1.35355339f, 1e-6);
    EXPECT_NEAR(r[3], 0.06066017f, 1e-6);
}

struct Shape {
    int64_t d, n;
};
const Shape kShapes[] = {{64, 1}, {100, 7}, {2880, 33}, {4096, 3}};

// Rows of x with a large common offset in some (layer_norm's cancellation) and a wide range.
std::vector<float> norm_input(int64_t d, int64_t n, uint32_t seed) {
    auto x = randn(static_cast<size_t>(d * n), seed, 2.0f);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < d; ++c) x[static_cast<size_t>(i * d + c)] += (i % 3 == 1) ? 40.0f : 0.0f;
    return x;
}

TEST_P(Norm, RmsNormMatchesDoubleReference) {
    for (const Shape s : kShapes)
        for (const float eps : {1e-5f, 0.5f}) {
            const auto x = norm_input(s.d, s.n, 1);
            const auto w = randn(static_cast<size_t>(s.d), 2, 0.2f, 1.0f);
            // Output as columns [16, 16+d) of a wider buffer: the op must write exactly its view.
            const int64_t W = s.d + 32;
            Dev xd = dev_f32(*be, x, s.d, s.n), wd = dev_f32(*be, w, s.d), y = dev_nan(*be, W, s.n);
            be->rms_norm(y.t.col_range(16, s.d), xd.t, wd.t, eps);
            const auto img = y.f32();
            ASSERT_TRUE(wrote_exactly(img, W, 16, s.d)) << "d=" << s.d;
            std::vector<float> got;
            std::vector<double> want, tol;
            for (int64_t i = 0; i < s.n; ++i) {
                double ss = 0;
                for (int64_t c = 0; c < s.d; ++c) ss += static_cast<double>(x[i * s.d + c]) * x[i * s.d + c];
                const double inv = 1.0 / std::sqrt(ss / static_cast<double>(s.d) + eps);
                for (int64_t c = 0; c < s.d; ++c) {
                    got.push_back(img[static_cast<size_t>(i * W + 16 + c)]);
                    const double r = x[i * s.d + c] * inv * w[c];
                    want.push_back(r);
                    tol.push_back((4 + 2 * std::sqrt(static_cast<double>(s.d))) * kEps32 * std::fabs(r) + 1e-37);
                }
            }
            EXPECT_TRUE(near_all(got, want, tol,
                                 "fp32 sum of d squares (rel ~sqrt(d)·eps, halved by the root) and two "
                                 "products: (4 + 2·sqrt(d))·eps·|y|"))
                << "d=" << s.d << " n=" << s.n << " eps=" << eps;
        }
}

TEST_P(Norm, LayerNormMatchesDoubleReference) {
    for (const Shape s : kShapes) {
        const float eps = 1e-5f;
        const auto x = norm_input(s.d, s.n, 3);
        const auto w = randn(static_cast<size_t>(s.d), 4, 0.2f, 1.0f), b = randn(static_cast<size_t>(s.d), 5, 0.5f);
        Dev xd = dev_f32(*be, x, s.d, s.n), wd = dev_f32(*be, w, s.d), bd = dev_f32(*be, b, s.d);
        Dev y = dev_nan(*be, s.d, s.n);
        be->layer_norm(y.t, xd.t, wd.t, bd.t, eps);
        const auto got = y.f32();
        std::vector<double> want, tol;
        const double rt = std::sqrt(static_cast<double>(s.d));
        for (int64_t i = 0; i < s.n; ++i) {
            const float* xr = x.data() + i * s.d;
            double sum = 0, mx = 0;
            for (int64_t c = 0; c < s.d; ++c) sum += xr[c], mx = std::max(mx, std::fabs(static_cast<double>(xr[c])));
            const double mean = sum / static_cast<double>(s.d);
            double var = 0;
            for (int64_t c = 0; c < s.d; ++c) var += (xr[c] - mean) * (xr[c] - mean);
            const double inv = 1.0 / std::sqrt(var / static_cast<double>(s.d) + eps);
            for (int64_t c = 0; c < s.d; ++c) {
                const double xh = (xr[c] - mean) * inv;
                want.push_back(xh * w[c] + b[c]);
                // the mean can be off by ~sqrt(d)·eps·max|x|: in normalized units that is mx·inv
                tol.push_back(kEps32 * ((8 + 2 * rt) * (std::fabs(xh) + mx * inv) * std::fabs(w[c]) +
                                        2 * std::fabs(b[c])) +
                              1e-37);
            }
        }
        EXPECT_TRUE(near_all(got, want, tol,
                             "fp32 mean and variance over d terms (shift ~sqrt(d)·eps·max|x|, rel ~sqrt(d)·eps "
                             "on the scale), then a product and the bias add"))
            << "d=" << s.d << " n=" << s.n;
    }
}

// A token's normalized row must not depend on the other rows of the call.
TEST_P(Norm, OneTokenAloneEqualsTheSameTokenInABatchOf32) {
    const int64_t d = 2880, n = 32;
    const auto x = norm_input(d, n, 7);
    const auto w = randn(static_cast<size_t>(d), 8, 0.2f, 1.0f), b = randn(static_cast<size_t>(d), 9, 0.5f);
    Dev xd = dev_f32(*be, x, d, n), wd = dev_f32(*be, w, d), bd = dev_f32(*be, b, d);
    Dev all_rms = dev_nan(*be, d, n), all_ln = dev_nan(*be, d, n), one = dev_nan(*be, d, 1);
    be->rms_norm(all_rms.t, xd.t, wd.t, 1e-5f);
    be->layer_norm(all_ln.t, xd.t, wd.t, bd.t, 1e-5f);
    const auto rms = all_rms.f32(), ln = all_ln.f32();
    for (const int64_t t : {0, 1, 17, 31}) {
        be->rms_norm(one.t, xd.t.row_range(t, 1), wd.t, 1e-5f);
        EXPECT_TRUE(bits_equal(one.f32(), {rms.begin() + t * d, rms.begin() + (t + 1) * d})) << "rms_norm t=" << t;
        be->layer_norm(one.t, xd.t.row_range(t, 1), wd.t, bd.t, 1e-5f);
        EXPECT_TRUE(bits_equal(one.f32(), {ln.begin() + t * d, ln.begin() + (t + 1) * d})) << "layer_norm t=" << t;
    }
}

}  // namespace
}  // namespace wo::test
