// log_softmax of one logits row, for the chosen token and the top entries.
#include "engine/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace wo {

TokenLogprob token_logprobs(std::span<const float> logits, int32_t chosen, int top_n) {
    TokenLogprob out;
    out.id = chosen;
    if (logits.empty()) return out;
    float mx = -std::numeric_limits<float>::infinity();
    for (float x : logits) mx = std::max(mx, x);
    double sum = 0;
    // Float exp (exact to an ulp, and several times faster than double over 201088 entries),
    // summed in double.
    for (float x : logits) sum += static_cast<double>(std::exp(x - mx));
    const double lse = static_cast<double>(mx) + std::log(sum);
    auto lp = [&](int32_t id) {
        return static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - lse);
    };
    if (chosen >= 0 && static_cast<size_t>(chosen) < logits.size()) out.logprob = lp(chosen);
    const size_t n = std::min(static_cast<size_t>(std::max(top_n, 0)), logits.size());
    if (n == 0) return out;
    // Larger logit first, lower id first among equals: a strict order, so the result is unique.
    auto better = [&](int32_t a, int32_t b) {
        const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
        return la > lb || (la == lb && a < b);
    };
    // A heap of the best n seen so far (worst on top) keeps this O(V log n).
    std::vector<int32_t> heap;
    heap.reserve(n + 1);
    for (int32_t id = 0; id < static_cast<int32_t>(logits.size()); ++id) {
        if (heap.size() < n) {
            heap.push_back(id);
            std::push_heap(heap.begin(), heap.end(), better);
        } else if (better(id, heap.front())) {
            std::pop_heap(heap.begin(), heap.end(), better);
            heap.back() = id;
            std::push_heap(heap.begin(), heap.end(), better);
        }
    }
    std::sort(heap.begin(), heap.end(), better);
    for (int32_t id : heap) out.top.emplace_back(id, lp(id));
    return out;
}

}  // namespace wo
