// token_logprobs against log-softmax written out by hand.
#include "engine/logprobs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace wo {
namespace {

TEST(Logprobs, SmallRowByHand) {
    const std::vector<float> l = {1.0f, 3.0f, 3.0f, -2.0f};
    const double z = std::exp(1.0) + 2 * std::exp(3.0) + std::exp(-2.0);
    const TokenLogprob r = token_logprobs(l, 0, 3);
    EXPECT_EQ(r.id, 0);
    EXPECT_NEAR(r.logprob, 1.0 - std::log(z), 1e-6);
    ASSERT_EQ(r.top.size(), 3u);
    // Ties: the lower id first.
    EXPECT_EQ(r.top[0].first, 1);
    EXPECT_EQ(r.top[1].first, 2);
    EXPECT_EQ(r.top[2].first, 0);
    EXPECT_NEAR(r.top[0].second, 3.0 - std::log(z), 1e-6);
    EXPECT_EQ(r.top[0].second, r.top[1].second);
    // top_n past the vocabulary is clamped; all entries sum (exp) to 1.
    const TokenLogprob all = token_logprobs(l, 3, 10);
    ASSERT_EQ(all.top.size(), 4u);
    double s = 0;
    for (const auto& [id, lp] : all.top) s += std::exp(lp);
    EXPECT_NEAR(s, 1.0, 1e-6);
    EXPECT_EQ(all.top[3].first, 3);
    EXPECT_TRUE(token_logprobs(l, 1, 0).top.empty());
}

TEST(Logprobs, LargeVocabularyWithWideLogits) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0, 40);
    std::vector<float> l(201088);
    for (auto& x : l) x = nd(rng);
    l[777] = 400;  // dominant
    const TokenLogprob r = token_logprobs(l, 12345, 20);
    double m = -1e300;
    for (float x : l) m = std::max(m, static_cast<double>(x));
    double z = 0;
    for (float x : l) z += std::exp(static_cast<double>(x) - m);
    EXPECT_NEAR(r.logprob, l[12345] - (m + std::log(z)), 1e-3);
    ASSERT_EQ(r.top.size(), 20u);
    EXPECT_EQ(r.top[0].first, 777);
    EXPECT_NEAR(r.top[0].second, 0.0, 1e-6);
    for (size_t i = 1; i < r.top.size(); ++i) EXPECT_GE(r.top[i - 1].second, r.top[i].second);
    double s = 0;
    for (const auto& [id, lp] : r.top) s += std::exp(lp);
    EXPECT_LE(s, 1.0 + 1e-6);
}

}  // namespace
}  // namespace wo
