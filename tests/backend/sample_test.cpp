// The sampling reference (backend/cpu/sample.cpp, docs/sampling.md): each stage checked against
// distributions computed by hand in the test, the draw against the inverse CDF worked out here,
// and Philox4x32-10 against the published known-answer vectors.
#include "backend/cpu/sample.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wo {
namespace {

using cpu::sample_row;

int32_t argmax(const std::vector<float>& l) {
    return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
}

// The distribution the draw uses: survivors with e / Σe, by probability descending (ties: lower
// id first).
std::vector<std::pair<int32_t, float>> dist(const std::vector<float>& l, const std::vector<int32_t>& hist,
                                            const SamplingParams& p) {
    cpu::SampleTrace t;
    sample_row(l, hist, p, 1, &t);
    double total = 0;
    for (int32_t id : t.survivors) total += t.e[static_cast<size_t>(id)];
    std::vector<std::pair<int32_t, float>> d;
    for (int32_t id : t.survivors) d.push_back({id, static_cast<float>(t.e[static_cast<size_t>(id)] / total)});
    std::stable_sort(d.begin(), d.end(), [](auto& a, auto& b) { return a.second > b.second; });
    return d;
}

// A "sampler" with a running index, as a sequence draws one token after another.
struct Seq {
    SamplingParams p;
    uint32_t index = 0;
    int32_t sample(const std::vector<float>& l, const std::vector<int32_t>& hist) {
        return sample_row(l, hist, p, index++);
    }
};

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
    Seq s{{.temperature = 0.0f}};
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
        Seq s{{.temperature = 1.3f, .top_k = 1, .seed = static_cast<uint64_t>(trial)}};
        EXPECT_EQ(s.sample(l, {}), argmax(l));
    }
}

TEST(Sampler, FullDistributionIsSoftmax) {
    expect_dist(dist(logits_of(kP4), {}, {.temperature = 1.0f}), {{0, 0.5}, {1, 0.25}, {2, 0.15}, {3, 0.1}});
}

TEST(Sampler, TemperatureSharpensOrFlattens) {
    // p_i^(1/T) renormalized.
    for (float t : {0.5f, 2.0f}) {
        Seq s{{.temperature = t}};
        double z = 0;
        for (double p : kP4) z += std::pow(p, 1.0 / t);
        std::vector<std::pair<int32_t, double>> want;
        for (int i = 0; i < 4; ++i) want.push_back({i, std::pow(kP4[i], 1.0 / t) / z});
        expect_dist(dist(logits_of(kP4), {}, s.p), want);
    }
}

TEST(Sampler, TopKKeepsKAndRenormalizes) {
    Seq s{{.top_k = 2}};
    expect_dist(dist(logits_of(kP4), {}, s.p), {{0, 0.5 / 0.75}, {1, 0.25 / 0.75}});
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
    auto d = dist(l, {}, {.top_k = 40});
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
    expect_dist(dist(logits_of(kP4), {}, {.top_p = 0.7f}), {{0, 2.0 / 3}, {1, 1.0 / 3}});
    // 0.75 < 0.8 <= 0.9: three tokens.
    expect_dist(dist(logits_of(kP4), {}, {.top_p = 0.8f}),
                {{0, 0.5 / 0.9}, {1, 0.25 / 0.9}, {2, 0.15 / 0.9}});
    // Anything at or below the top probability keeps only the top token.
    expect_dist(dist(logits_of(kP4), {}, {.top_p = 0.3f}), {{0, 1.0}});
    expect_dist(dist(logits_of(kP4), {}, {.top_p = 0.0f}), {{0, 1.0}});
}

TEST(Sampler, TopPAfterTopKSeesRenormalizedMass) {
    // top-k 3 leaves {0.5, 0.25, 0.15}/0.9 = {.556, .278, .167}; top-p 0.8 is reached after two
    // (.833). On the unrenormalized probabilities it would take three (0.75 < 0.8).
    expect_dist(dist(logits_of(kP4), {}, {.top_k = 3, .top_p = 0.8f}),
                {{0, 2.0 / 3}, {1, 1.0 / 3}});
}

TEST(Sampler, TopPOverLargeVocabulary) {
    // 2000 equal tokens and 3000 negligible ones: 0.9001 of the mass needs 1801 tokens, past
    // the first partial sort of 1024. Ties keep the lower ids.
    std::vector<float> l(5000, -100.0f);
    for (int i = 0; i < 2000; ++i) l[i] = 1.0f;
    auto d = dist(l, {}, {.top_p = 0.9001f});
    ASSERT_EQ(d.size(), 1801u);
    for (int i = 0; i < 1801; ++i) {
        EXPECT_EQ(d[i].first, i);
        EXPECT_NEAR(d[i].second, 1.0 / 1801, 1e-7);
    }
}

TEST(Sampler, MinPKeepsTokensNearTheTop) {
    // min-p 0.4: cut at 0.2 -> {0.5, 0.25}.
    expect_dist(dist(logits_of(kP4), {}, {.min_p = 0.4f}), {{0, 2.0 / 3}, {1, 1.0 / 3}});
    // min-p 0.25: cut at 0.125 -> three tokens.
    expect_dist(dist(logits_of(kP4), {}, {.min_p = 0.25f}),
                {{0, 0.5 / 0.9}, {1, 0.25 / 0.9}, {2, 0.15 / 0.9}});
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
    // logits {2, -1, 1, 0}; ids 0 and 1 seen (1 twice: penalized once) with penalty 2
    // -> {1, -2, 1, 0}.
    std::vector<float> l = {2, -1, 1, 0};
    std::vector<int32_t> ctx = {0, 1, 1, 99 /* out of range: ignored */};
    Seq greedy{{.temperature = 0.0f, .repetition_penalty = 2.0f}};
    EXPECT_EQ(greedy.sample(l, ctx), 0);  // tie 0 vs 2 -> lowest id
    EXPECT_EQ(Seq{{.temperature = 0.0f}}.sample(l, ctx), 0);
    Seq s{{.repetition_penalty = 2.0f}};
    const double e1 = std::exp(1.0), em2 = std::exp(-2.0), e0 = 1.0, z = 2 * e1 + em2 + e0;
    expect_dist(dist(l, ctx, s.p), {{0, e1 / z}, {2, e1 / z}, {3, e0 / z}, {1, em2 / z}});
    // A penalty below 1 encourages: id 2 with logit 1 -> 2 beats id 0 (2, unseen).
    std::vector<int32_t> ctx2 = {2};
    Seq enc{{.temperature = 0.0f, .repetition_penalty = 0.5f}};
    l = {1.5f, -1, 1, 0};
    EXPECT_EQ(enc.sample(l, ctx2), 2);
}

TEST(Sampler, DrawFrequenciesMatchTheDistribution) {
    // 20000 draws from {0.5, 0.25, 0.15, 0.1}: each count within 5 binomial standard deviations.
    Seq s{{.seed = 12345}};
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
    Seq s{{.top_p = 0.7f, .seed = 9}};
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
    Seq a{p}, b{p}, c{{.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .min_p = 0.01f, .seed = 43}};
    std::vector<int32_t> ra, rb, rc;
    for (int i = 0; i < 200; ++i) {
        ra.push_back(a.sample(l, ra));
        rb.push_back(b.sample(l, rb));
        rc.push_back(c.sample(l, rc));
    }
    EXPECT_EQ(ra, rb);
    EXPECT_NE(ra, rc);
}

TEST(Sampler, PhiloxMatchesTheKnownAnswerVectors) {
    // Random123's kat_vectors for philox4x32_10: counter, key -> output.
    auto a = philox4x32_10(0, 0, 0, 0, 0, 0);
    EXPECT_EQ(a.v[0], 0x6627e8d5u);
    EXPECT_EQ(a.v[1], 0xe169c58du);
    EXPECT_EQ(a.v[2], 0xbc57ac4cu);
    EXPECT_EQ(a.v[3], 0x9b00dbd8u);
    auto b = philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
    EXPECT_EQ(b.v[0], 0x408f276du);
    EXPECT_EQ(b.v[1], 0x41c83b0eu);
    EXPECT_EQ(b.v[2], 0xa20bc7c6u);
    EXPECT_EQ(b.v[3], 0x6d5451fdu);
    auto c = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
    EXPECT_EQ(c.v[0], 0xd16cfe09u);
    EXPECT_EQ(c.v[1], 0x94fdccebu);
    EXPECT_EQ(c.v[2], 0x5001e420u);
    EXPECT_EQ(c.v[3], 0x24126ea1u);
}

TEST(Sampler, TheDrawIsTheInverseCdfInIdOrder) {
    // Survivors {0.5, 0.25, 0.15, 0.1} in id order: the id is the first whose running mass
    // exceeds u. Checked for many (seed, index) pairs against u computed here.
    const std::vector<float> l = logits_of(kP4);
    const double cdf[4] = {0.5, 0.75, 0.9, 1.0};
    for (uint64_t seed : {1ull, 77ull, 0xdeadbeefcafeull})
        for (uint32_t index = 0; index < 200; ++index) {
            const double u = sampling_uniform(seed, index);
            ASSERT_GT(u, 0.0);
            ASSERT_LT(u, 1.0);
            int want = 0;
            while (want < 3 && !(cdf[want] > u + 1e-6)) ++want;
            if (std::fabs(u - cdf[want]) < 1e-5 || (want > 0 && std::fabs(u - cdf[want - 1]) < 1e-5)) continue;
            EXPECT_EQ(sample_row(l, {}, {.seed = seed}, index), want) << "seed " << seed << " index " << index;
        }
}

TEST(Sampler, TheDrawDependsOnSeedAndIndexOnlyNeverOnCallOrder) {
    std::mt19937 gen(11);
    std::normal_distribution<float> nd(0, 2);
    std::vector<float> l(3000);
    for (float& v : l) v = nd(gen);
    const SamplingParams p{.temperature = 0.8f, .top_k = 100, .seed = 5};
    std::vector<int32_t> forward, backward(50);
    for (uint32_t i = 0; i < 50; ++i) forward.push_back(sample_row(l, {}, p, i));
    for (uint32_t i = 50; i-- > 0;) backward[i] = sample_row(l, {}, p, i);
    EXPECT_EQ(forward, backward);
    std::map<int32_t, int> distinct;
    for (int32_t id : forward) distinct[id]++;
    EXPECT_GT(distinct.size(), 5u) << "different indexes draw different tokens";
}

TEST(Sampler, NanLogitsAreNeverDrawnAndInfinityWins) {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    std::vector<float> l = {nan, 1.0f, nan, 0.5f};
    for (uint32_t i = 0; i < 100; ++i) {
        const int32_t id = sample_row(l, {}, {.seed = 3}, i);
        EXPECT_TRUE(id == 1 || id == 3) << id;
    }
    EXPECT_EQ(sample_row(std::vector<float>{0.0f, inf, 2.0f}, {}, {.seed = 3}, 0), 1);
    EXPECT_EQ(sample_row(std::vector<float>{nan, 2.0f, 3.0f}, {}, {.temperature = 0.0f}, 0), 2);
}

TEST(Sampler, TopKTiesAtTheBoundaryKeepTheLowerIds) {
    // Four tokens tie for ranks 2-5 under top-k 3: ids 1 and 2 are kept, 3 and 4 are not.
    const std::vector<float> l = {5, 1, 1, 1, 1, 0};
    auto d = dist(l, {}, {.top_k = 3});
    ASSERT_EQ(d.size(), 3u);
    EXPECT_EQ(d[0].first, 0);
    EXPECT_EQ(d[1].first, 1);
    EXPECT_EQ(d[2].first, 2);
}

TEST(Sampler, MinPIsRelativeToTheMostLikelyTokenAfterTemperature) {
    // T = 0.5 squares the probabilities: {.25, .0625, .0225, .01}/.345; min-p 0.2 keeps
    // p >= 0.2 x p_max, i.e. (p_i/p_0)^2 >= 0.2 -> ids 0 and 1 ((0.5)^2 = 0.25).
    auto d = dist(logits_of(kP4), {}, {.temperature = 0.5f, .min_p = 0.2f});
    expect_dist(d, {{0, 0.25 / 0.3125}, {1, 0.0625 / 0.3125}});
}

}  // namespace
}  // namespace wo
