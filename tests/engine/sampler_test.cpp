// Sampler: each stage checked against distributions computed by hand in the test.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace wo {
namespace {

// Logits whose softmax is exactly the given probabilities (up to float rounding).
std::vector<float> logits_of(const std::vector<double>& p) {
    std::vector<float> l;
    for (double x : p) l.push_back(static_cast<float>(std::log(x)));
    return l;
}

const std::vector<double> kP4 = {0.5, 0.25, 0.15, 0.1};

void expect_dist(const std::vector<std::pair<int32_t, float>>& got,
                 const std::vector<std::pair<int32_t, double>>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].first, want[i].first) << "rank " << i;
        EXPECT_NEAR(got[i].second, want[i].second, 1e-5) << "rank " << i;
    }
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
    Sampler s({.temperature = 0.0f});
    std::vector<float> l = {1, 3, 3, 2};
    EXPECT_EQ(s.sample(l, {}), 1);
    EXPECT_EQ(argmax(l), 1);
    std::vector<float> neg = {-5, -2, -7};
    EXPECT_EQ(s.sample(neg, {}), 1);
}

TEST(Sampler, TopK1EqualsGreedy) {
    std::mt19937 gen(7);
    std::normal_distribution<float> nd(0, 3);
    for (int trial = 0; trial < 50; ++trial) {
        std::vector<float> l(300);
        for (float& v : l) v = nd(gen);
        Sampler s({.temperature = 1.3f, .top_k = 1, .seed = static_cast<uint64_t>(trial)});
        EXPECT_EQ(s.sample(l, {}), argmax(l));
    }
}

TEST(Sampler, FullDistributionIsSoftmax) {
    Sampler s({.temperature = 1.0f});
    expect_dist(s.distribution(logits_of(kP4), {}), {{0, 0.5}, {1, 0.25}, {2, 0.15}, {3, 0.1}});
}

TEST(Sampler, TemperatureSharpensOrFlattens) {
    // p_i^(1/T) renormalized.
    for (float t : {0.5f, 2.0f}) {
        Sampler s({.temperature = t});
        double z = 0;
        for (double p : kP4) z += std::pow(p, 1.0 / t);
        std::vector<std::pair<int32_t, double>> want;
        for (int i = 0; i < 4; ++i) want.push_back({i, std::pow(kP4[i], 1.0 / t) / z});
        expect_dist(s.distribution(logits_of(kP4), {}), want);
    }
}

TEST(Sampler, TopKKeepsKAndRenormalizes) {
    Sampler s({.top_k = 2});
    expect_dist(s.distribution(logits_of(kP4), {}), {{0, 0.5 / 0.75}, {1, 0.25 / 0.75}});
}

TEST(Sampler, TopKOverLargeVocabularyKeepsTheKLargest) {
    std::mt19937 gen(5);
    std::normal_distribution<float> nd(0, 2);
    std::vector<float> l(5000);
    for (float& v : l) v = nd(gen);
    l[17] = l[4000] = 9.0f;  // a tie at the top: the lower id ranks first
    std::vector<int32_t> ids(l.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
    auto d = Sampler({.top_k = 40}).distribution(l, {});
    ASSERT_EQ(d.size(), 40u);
    double z = 0;
    for (int i = 0; i < 40; ++i) z += std::exp(static_cast<double>(l[ids[i]]));
    for (int i = 0; i < 40; ++i) {
        EXPECT_EQ(d[i].first, ids[i]) << "rank " << i;
        EXPECT_NEAR(d[i].second, std::exp(static_cast<double>(l[ids[i]])) / z, 1e-5);
    }
    EXPECT_EQ(d[0].first, 17);
}

TEST(Sampler, TopPCutsAtCumulativeMass) {
    // 0.5 < 0.7 <= 0.75: two tokens.
    expect_dist(Sampler({.top_p = 0.7f}).distribution(logits_of(kP4), {}), {{0, 2.0 / 3}, {1, 1.0 / 3}});
    // 0.75 < 0.8 <= 0.9: three tokens.
    expect_dist(Sampler({.top_p = 0.8f}).distribution(logits_of(kP4), {}),
                {{0, 0.5 / 0.9}, {1, 0.25 / 0.9}, {2, 0.15 / 0.9}});
    // Anything at or below the top probability keeps only the top token.
    expect_dist(Sampler({.top_p = 0.3f}).distribution(logits_of(kP4), {}), {{0, 1.0}});
    expect_dist(Sampler({.top_p = 0.0f}).distribution(logits_of(kP4), {}), {{0, 1.0}});
}

TEST(Sampler, TopPAfterTopKSeesRenormalizedMass) {
    // top-k 3 leaves {0.5, 0.25, 0.15}/0.9 = {.556, .278, .167}; top-p 0.8 is reached after two
    // (.833). On the unrenormalized probabilities it would take three (0.75 < 0.8).
    expect_dist(Sampler({.top_k = 3, .top_p = 0.8f}).distribution(logits_of(kP4), {}),
                {{0, 2.0 / 3}, {1, 1.0 / 3}});
}

TEST(Sampler, TopPOverLargeVocabulary) {
    // 2000 equal tokens and 3000 negligible ones: 0.9001 of the mass needs 1801 tokens, past
    // the first partial sort of 1024. Ties keep the lower ids.
    std::vector<float> l(5000, -100.0f);
    for (int i = 0; i < 2000; ++i) l[i] = 1.0f;
    auto d = Sampler({.top_p = 0.9001f}).distribution(l, {});
    ASSERT_EQ(d.size(), 1801u);
    for (int i = 0; i < 1801; ++i) {
        EXPECT_EQ(d[i].first, i);
        EXPECT_NEAR(d[i].second, 1.0 / 1801, 1e-7);
    }
}

TEST(Sampler, MinPKeepsTokensNearTheTop) {
    // min-p 0.4: cut at 0.2 -> {0.5, 0.25}.
    expect_dist(Sampler({.min_p = 0.4f}).distribution(logits_of(kP4), {}), {{0, 2.0 / 3}, {1, 1.0 / 3}});
    // min-p 0.25: cut at 0.125 -> three tokens.
    expect_dist(Sampler({.min_p = 0.25f}).distribution(logits_of(kP4), {}),
                {{0, 0.5 / 0.9}, {1, 0.25 / 0.9}, {2, 0.15 / 0.9}});
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
    // logits {2, -1, 1, 0}; ids 0 and 1 seen (1 twice: penalized once) with penalty 2
    // -> {1, -2, 1, 0}.
    std::vector<float> l = {2, -1, 1, 0};
    std::vector<int32_t> ctx = {0, 1, 1, 99 /* out of range: ignored */};
    Sampler greedy({.temperature = 0.0f, .repetition_penalty = 2.0f});
    EXPECT_EQ(greedy.sample(l, ctx), 0);  // tie 0 vs 2 -> lowest id
    EXPECT_EQ(Sampler({.temperature = 0.0f}).sample(l, ctx), 0);
    Sampler s({.repetition_penalty = 2.0f});
    const double e1 = std::exp(1.0), em2 = std::exp(-2.0), e0 = 1.0, z = 2 * e1 + em2 + e0;
    expect_dist(s.distribution(l, ctx), {{0, e1 / z}, {2, e1 / z}, {3, e0 / z}, {1, em2 / z}});
    // A penalty below 1 encourages: id 2 with logit 1 -> 2 beats id 0 (2, unseen).
    std::vector<int32_t> ctx2 = {2};
    Sampler enc({.temperature = 0.0f, .repetition_penalty = 0.5f});
    l = {1.5f, -1, 1, 0};
    EXPECT_EQ(enc.sample(l, ctx2), 2);
}

TEST(Sampler, DrawFrequenciesMatchTheDistribution) {
    // 20000 draws from {0.5, 0.25, 0.15, 0.1}: each count within 5 binomial standard deviations.
    Sampler s({.seed = 12345});
    const std::vector<float> l = logits_of(kP4);
    const int n = 20000;
    std::vector<int> count(4, 0);
    for (int i = 0; i < n; ++i) count[s.sample(l, {})]++;
    for (int i = 0; i < 4; ++i) {
        const double mean = n * kP4[i], sd = std::sqrt(n * kP4[i] * (1 - kP4[i]));
        EXPECT_NEAR(count[i], mean, 5 * sd) << "token " << i;
    }
}

TEST(Sampler, FilteredTokensAreNeverDrawn) {
    Sampler s({.top_p = 0.7f, .seed = 9});
    const std::vector<float> l = logits_of(kP4);
    std::map<int32_t, int> seen;
    for (int i = 0; i < 2000; ++i) seen[s.sample(l, {})]++;
    EXPECT_EQ(seen.count(2), 0u);
    EXPECT_EQ(seen.count(3), 0u);
    EXPECT_GT(seen[0], seen[1]);  // 2/3 vs 1/3
    EXPECT_GT(seen[1], 0);
}

TEST(Sampler, SameSeedSameDrawsDifferentSeedDifferentDraws) {
    std::mt19937 gen(3);
    std::normal_distribution<float> nd(0, 1);
    std::vector<float> l(1000);
    for (float& v : l) v = nd(gen);
    const SamplingParams p{.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .min_p = 0.01f, .seed = 42};
    Sampler a(p), b(p), c({.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .min_p = 0.01f, .seed = 43});
    std::vector<int32_t> ra, rb, rc;
    for (int i = 0; i < 200; ++i) {
        ra.push_back(a.sample(l, ra));
        rb.push_back(b.sample(l, rb));
        rc.push_back(c.sample(l, rc));
    }
    EXPECT_EQ(ra, rb);
    EXPECT_NE(ra, rc);
}

}  // namespace
}  // namespace wo
