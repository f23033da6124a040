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

void renormalize(std::vector<Cand>& v) {
    double s = 0;
    for (const Cand& x : v) s += x.second;
    for (Cand& x : v) x.second = static_cast<float>(x.second / s);
}

// Probabilities of the full vocabulary, in place (softmax; the sum is kept in double because
// it adds 200k small terms). Returns false when no logit is finite.
bool softmax_inplace(std::vector<float>& z) {
    const float zmax = *std::max_element(z.begin(), z.end());
    if (!std::isfinite(zmax)) return false;
    double sum = 0;
    for (float& v : z) {
        v = std::exp(v - zmax);
        sum += v;
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (float& v : z) v *= inv;
    return true;
}

// The top-p prefix of `c` (any order on entry; sorted on return), renormalized.
void top_p_cut(std::vector<Cand>& c, float top_p) {
    std::sort(c.begin(), c.end(), by_prob_desc);
    double cum = 0;
    size_t keep = 0;
    while (keep < c.size() && (keep == 0 || cum < top_p)) cum += c[keep++].second;
    c.resize(keep);
    renormalize(c);
}

// Candidates of the whole pipeline, renormalized; sorted by probability iff `sorted`.
// `probs` holds the full-vocabulary softmax on entry.
std::vector<Cand> select_from(const std::vector<float>& probs, const SamplingParams& p, bool sorted) {
    const size_t n = probs.size();
    float pmax = *std::max_element(probs.begin(), probs.end());
    std::vector<Cand> c;
    bool is_sorted = false;
    if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
        // A heap of the k best seen so far (its front is the worst of them): one pass over the
        // vocabulary, and most tokens are rejected by a single comparison.
        const size_t k = static_cast<size_t>(p.top_k);
        c.reserve(k);
        for (size_t i = 0; i < n; ++i) {
            const Cand x{static_cast<int32_t>(i), probs[i]};
            if (c.size() < k) {
                c.push_back(x);
                std::push_heap(c.begin(), c.end(), by_prob_desc);
            } else if (by_prob_desc(x, c.front())) {
                std::pop_heap(c.begin(), c.end(), by_prob_desc);
                c.back() = x;
                std::push_heap(c.begin(), c.end(), by_prob_desc);
            }
        }
        renormalize(c);
        if (p.top_p < 1.0f) {
            top_p_cut(c, p.top_p);
            is_sorted = true;
        }
    } else if (p.top_p < 1.0f) {
        // The nucleus is a prefix of the tokens by probability, so it lies inside any set
        // {p >= t} whose mass already reaches top_p: gather such a set with a falling threshold
        // and sort only it, not the whole vocabulary.
        float t = pmax * 1e-2f;
        for (;;) {
            c.clear();
            double mass = 0;
            for (size_t i = 0; i < n; ++i)
                if (probs[i] >= t) {
                    c.push_back({static_cast<int32_t>(i), probs[i]});
                    mass += probs[i];
                }
            if (mass >= p.top_p || t == 0.0f) break;
            t = t > 1e-30f ? t * 1e-2f : 0.0f;  // the last round takes every token
        }
        top_p_cut(c, p.top_p);
        is_sorted = true;
    } else {
        // min-p alone (or nothing): a threshold pass, no order needed.
        const float cut = p.min_p > 0.0f ? p.min_p * pmax : 0.0f;
        for (size_t i = 0; i < n; ++i)
            if (probs[i] >= cut && probs[i] > 0.0f) c.push_back({static_cast<int32_t>(i), probs[i]});
    }
    if (p.min_p > 0.0f) {
        pmax = 0;
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
    WO_CHECK(!logits.empty(), "sampling from an empty logit vector");
    SamplingParams unit = params_;
    if (params_.temperature <= 0.0f) unit.temperature = 1.0f;
    std::vector<float> z = penalized_scaled(logits, context, unit);
    if (params_.temperature <= 0.0f) return {{argmax(z), 1.0f}};
    const int32_t best = argmax(z);
    if (!softmax_inplace(z)) return {{best, 1.0f}};
    return select_from(z, params_, true);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> context) {
    WO_CHECK(!logits.empty(), "sampling from an empty logit vector");
    if (params_.temperature <= 0.0f) return distribution(logits, context)[0].first;
    std::vector<float> z = penalized_scaled(logits, context, params_);
    const int32_t best = argmax(z);
    if (!softmax_inplace(z)) return best;
    const bool filtered = (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < z.size()) ||
                          params_.top_p < 1.0f || params_.min_p > 0.0f;
    const double r = uniform01(rng_);
    double cum = 0;
    if (!filtered) {  // the whole vocabulary, in id order: no candidate list needed
        int32_t last = 0;
        for (size_t i = 0; i < z.size(); ++i) {
            if (z[i] <= 0.0f) continue;
            cum += z[i];
            last = static_cast<int32_t>(i);
            if (r < cum) return last;
        }
        return last;  // rounding left r just above the total mass
    }
    const std::vector<Cand> c = select_from(z, params_, false);
    if (c.size() == 1) return c[0].first;
    for (const Cand& x : c) {
        cum += x.second;
        if (r < cum) return x.first;
    }
    return c.back().first;
}

}  // namespace wo
