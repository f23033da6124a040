// Token sampling from next-token logits: repetition penalty, temperature, top-k, top-p, min-p,
// then one draw from a per-sequence seeded RNG (so a seed gives the same tokens alone or batched).
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace wo {

struct SamplingParams {
    float temperature = 1.0f;         // 0 = greedy (argmax, lowest id on ties)
    int32_t top_k = 0;                // 0 = off
    float top_p = 1.0f;               // 1 = off
    float min_p = 0.0f;               // 0 = off; keeps p >= min_p * p_max
    float repetition_penalty = 1.0f;  // 1 = off; llama.cpp style over prompt + generated ids
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplingParams& params);

    // `context` is the sequence so far (prompt + generated ids): each distinct id in it is
    // penalized once. Consumes exactly one RNG draw unless the choice is deterministic
    // (temperature 0, or only one candidate left).
    int32_t sample(std::span<const float> logits, std::span<const int32_t> context);

    // The distribution `sample` draws from: (id, probability) by probability descending (ties:
    // lower id first), renormalized to sum 1. Exposed so tests can check each stage by hand.
    std::vector<std::pair<int32_t, float>> distribution(std::span<const float> logits,
                                                        std::span<const int32_t> context) const;

    const SamplingParams& params() const { return params_; }

private:
    SamplingParams params_;
    std::mt19937_64 rng_;
};

// Index of the largest value; the lowest index wins ties.
int32_t argmax(std::span<const float> logits);

}  // namespace wo
