// The sampling reference (docs/sampling.md): penalty -> temperature -> top-k -> top-p -> min-p ->
// inverse-CDF draw in id order with a counter-based uniform. No stage sorts the vocabulary: top-k
// is a selection, top-p sorts only a set that provably holds the nucleus, and the draw walks ids
// in order, so a GPU can run the same algorithm with selections and one prefix sum.
#include "backend/cpu/sample.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace wo::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// (z desc, id asc): the order every ranked filter uses.
struct Before {
    const std::vector<float>& z;
    bool operator()(int32_t a, int32_t b) const { return z[a] > z[b] || (z[a] == z[b] && a < b); }
};

int32_t argmax_lowest(const std::vector<float>& z) {
    size_t best = 0;
    for (size_t i = 1; i < z.size(); ++i)
        if (z[i] > z[best]) best = i;
    return static_cast<int32_t>(best);
}

// Vocabulary-sized working arrays, kept per thread so a draw allocates nothing after the first
// (201,088 logits: three vectors of ~1 MB each otherwise, per token).
struct Scratch {
    std::vector<float> z, e;
    std::vector<char> keep, in;
    std::vector<int32_t> ids, set;
};

}  // namespace

int32_t sample_row(std::span<const float> logits, std::span<const int32_t> history, const SamplingParams& p,
                   uint32_t index, SampleTrace* trace) {
    const size_t V = logits.size();
    thread_local Scratch sc;
    std::vector<float>& z = sc.z;
    z.resize(V);
    for (size_t i = 0; i < V; ++i) z[i] = std::isnan(logits[i]) ? kNegInf : logits[i];
    if (p.repetition_penalty != 1.0f)
        for (int32_t id : history)  // from the raw logit, so a repeated id is penalized once
            if (id >= 0 && static_cast<size_t>(id) < V && !std::isnan(logits[id]))
                z[id] = penalized(logits[id], p.repetition_penalty);
    if (p.temperature <= 0.0f) {
        if (trace) trace->z = z;
        return argmax_lowest(z);
    }
    for (float& v : z) v /= p.temperature;
    const int32_t best = argmax_lowest(z);
    const float zmax = z[best];
    if (trace) trace->z = z;
    if (!std::isfinite(zmax)) return best;  // nothing to draw from (all -inf, or +inf present)

    std::vector<char>& keep = sc.keep;
    keep.resize(V);
    for (size_t i = 0; i < V; ++i) keep[i] = z[i] > kNegInf;
    // top-k: the k first in (z desc, id asc); the k-th one is found by selection.
    if (p.top_k > 0 && static_cast<size_t>(p.top_k) < V) {
        std::vector<int32_t>& ids = sc.ids;
        ids.clear();
        for (size_t i = 0; i < V; ++i)
            if (keep[i]) ids.push_back(static_cast<int32_t>(i));
        if (static_cast<size_t>(p.top_k) < ids.size()) {
            std::nth_element(ids.begin(), ids.begin() + (p.top_k - 1), ids.end(), Before{z});
            const int32_t kth = ids[static_cast<size_t>(p.top_k - 1)];
            for (size_t i = 0; i < V; ++i)
                keep[i] = keep[i] && !Before{z}(kth, static_cast<int32_t>(i));  // i ranks at or before kth
        }
    }
    // Unnormalized probabilities. exp runs in double and is rounded once to float, so backends
    // whose exp differs by an ulp still agree on e (the largest is exactly 1).
    std::vector<float>& e = sc.e;
    e.assign(V, 0.0f);
    for (size_t i = 0; i < V; ++i)
        if (keep[i]) e[i] = static_cast<float>(std::exp(static_cast<double>(z[i] - zmax)));
    // top-p: keep a token iff the mass strictly before it in (z desc, id asc) order is below
    // top_p x the mass of all survivors (so the token that crosses top_p is kept).
    if (p.top_p < 1.0f) {
        double total = 0;
        for (size_t i = 0; i < V; ++i) total += e[i];
        const double target = static_cast<double>(p.top_p) * total;
        // The nucleus lies inside any set {e >= t} whose mass reaches the target (e grows with
        // z): gather one with a falling threshold and sort only it.
        std::vector<int32_t>& set = sc.set;
        for (float t = 1e-2f;; t = t > 1e-30f ? t * 1e-2f : 0.0f) {
            set.clear();
            double mass = 0;
            for (size_t i = 0; i < V; ++i)
                if (keep[i] && e[i] >= t) set.push_back(static_cast<int32_t>(i)), mass += e[i];
            if (mass >= target || t == 0.0f) break;
        }
        std::sort(set.begin(), set.end(), Before{z});
        std::vector<char>& in = sc.in;
        in.assign(V, 0);
        double before = 0;
        for (int32_t id : set) {
            if (before < target || id == best) in[id] = 1;  // the first token always stays
            before += e[id];
        }
        for (size_t i = 0; i < V; ++i)
            if (!in[i]) keep[i] = 0, e[i] = 0.0f;
    }
    // min-p: relative to the most likely token, whose e is 1.
    if (p.min_p > 0.0f)
        for (size_t i = 0; i < V; ++i)
            if (keep[i] && e[i] < p.min_p) keep[i] = 0, e[i] = 0.0f;

    // The draw: the first id (ascending) whose running mass exceeds u x the total.
    double total = 0;
    for (size_t i = 0; i < V; ++i)
        if (keep[i]) total += e[i];
    const double u = sampling_uniform(p.seed, index);
    if (trace) {
        trace->e = e;
        trace->u = u;
        trace->survivors.clear();
        for (size_t i = 0; i < V; ++i)
            if (keep[i]) trace->survivors.push_back(static_cast<int32_t>(i));
    }
    const double target = u * total;
    double cum = 0;
    int32_t last = best;
    for (size_t i = 0; i < V; ++i) {
        if (!keep[i]) continue;
        cum += e[i];
        last = static_cast<int32_t>(i);
        if (cum > target) return last;
    }
    return last;  // rounding left the target at the very top of the mass
}

}  // namespace wo::cpu
