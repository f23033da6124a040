// Sampling pipeline: penalty -> temperature -> softmax over the full vocab -> top-k -> top-p ->
// min-p -> one draw. Sorting is avoided where no filter needs an order: a 200k-vocab sort per
// token would dominate a CPU decode step.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/error.h"

namespace wo {

namespace {

using Cand = std::pair<int32_t, float>;  // (id, probability)

// Higher probability first; the lower id breaks ties so greedy and top-k=1 agree.
bool by_prob_desc(const Cand& a, const Cand& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
}

// A uniform double in [0, 1) from the top 53 bits: the same on every standard library
// (std::generate_canonical and the distributions are implementation-defined).
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

std::vector<float> penalized_scaled(std::span<const float> logits, std::span<const int32_t> context,
                                    const SamplingParams& p) {
    std::vector<float> z(logits.begin(), logits.end());
    if (p.repetition_penalty != 1.0f && !context.empty()) {
        std::vector<char> seen(z.size(), 0);
        for (int32_t id : context) {
            if (id < 0 || static_cast<size_t>(id) >= z.size() || seen[id]) continue;
            seen[id] = 1;
            // llama.cpp convention: shrink positive logits, push negative ones further down,
            // so penalty > 1 always makes a seen token less likely.
            z[id] = z[id] > 0 ? z[id] / p.repetition_penalty : z[id] * p.repetition_penalty;
        }
    }
    if (p.temperature != 1.0f)
        for (float& v : z) v /= p.temperature;
    return z;
}

// Candidates of the whole pipeline, renormalized; sorted by probability iff `sorted`.
std::vector<Cand> select(std::span<const float> logits, std::span<const int32_t> context,
                         const SamplingParams& p, bool sorted) {
    WO_CHECK(!logits.empty(), "sampling from an empty logit vector");
    std::vector<float> z = penalized_scaled(logits, context, p);
    const float zmax = *std::max_element(z.begin(), z.end());
    if (!std::isfinite(zmax)) return {{argmax(z), 1.0f}};  // nothing finite to normalize

    // Softmax over the full vocabulary (double sum: 200k small terms).
    std::vector<Cand> c(z.size());
    double sum = 0;
    for (size_t i = 0; i < z.size(); ++i) {
        const double e = std::exp(static_cast<double>(z[i]) - zmax);
        c[i] = {static_cast<int32_t>(i), static_cast<float>(e)};
        sum += e;
    }
    for (Cand& x : c) x.second = static_cast<float>(x.second / sum);

    auto renormalize = [](std::vector<Cand>& v) {
        double s = 0;
        for (const Cand& x : v) s += x.second;
        for (Cand& x : v) x.second = static_cast<float>(x.second / s);
    };

    bool is_sorted = false;
    if (p.top_k > 0 && static_cast<size_t>(p.top_k) < c.size()) {
        std::partial_sort(c.begin(), c.begin() + p.top_k, c.end(), by_prob_desc);
        c.resize(p.top_k);
        is_sorted = true;
        renormalize(c);
    }
    if (p.top_p < 1.0f) {
        // Smallest prefix (by probability) whose mass reaches top_p; at least one token.
        // Sort progressively: the prefix is usually short even for a 200k vocab.
        size_t m = is_sorted ? c.size() : std::min<size_t>(c.size(), 1024);
        size_t keep = 0;
        for (;;) {
            if (!is_sorted) std::partial_sort(c.begin(), c.begin() + m, c.end(), by_prob_desc);
            double cum = 0;
            keep = 0;
            while (keep < m && (keep == 0 || cum < p.top_p)) cum += c[keep++].second;
            if (cum >= p.top_p || m == c.size()) break;
            m = std::min(c.size(), m * 4);
        }
        c.resize(keep);
        is_sorted = true;
        renormalize(c);
    }
    if (p.min_p > 0.0f) {
        float pmax = 0;
        for (const Cand& x : c) pmax = std::max(pmax, x.second);
        const float cut = p.min_p * pmax;
        std::erase_if(c, [cut](const Cand& x) { return x.second < cut; });
        renormalize(c);
    }
    if (sorted && !is_sorted) std::sort(c.begin(), c.end(), by_prob_desc);
    return c;
}

}  // namespace

int32_t argmax(std::span<const float> logits) {
    WO_CHECK(!logits.empty(), "argmax of an empty logit vector");
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i)
        if (logits[i] > logits[best]) best = i;  // strict: the lowest id keeps a tie
    return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

std::vector<std::pair<int32_t, float>> Sampler::distribution(std::span<const float> logits,
                                                             std::span<const int32_t> context) const {
    if (params_.temperature <= 0.0f) {
        std::vector<float> z = penalized_scaled(logits, context, {.temperature = 1.0f,
                                                                  .repetition_penalty = params_.repetition_penalty});
        return {{argmax(z), 1.0f}};
    }
    return select(logits, context, params_, true);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> context) {
    if (params_.temperature <= 0.0f) return distribution(logits, context)[0].first;
    const std::vector<Cand> c = select(logits, context, params_, false);
    if (c.size() == 1) return c[0].first;
    const double r = uniform01(rng_);
    double cum = 0;
    for (const Cand& x : c) {
        cum += x.second;
        if (r < cum) return x.first;
    }
    return c.back().first;  // rounding left r just above the total mass
}

}  // namespace wo
