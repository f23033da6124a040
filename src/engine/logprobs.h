// Log-probabilities of sampled tokens for the OpenAI `logprobs` fields. They describe the
// model's raw next-token distribution, log_softmax of the logits BEFORE repetition penalty,
// temperature and top-k/top-p/min-p (what vLLM documents as its default "raw_logprobs"), so
// they do not depend on the sampling settings and always sum (exp) to 1 over the vocabulary.
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace wo {

struct TokenLogprob {
    int32_t id = 0;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;  // most likely first; ties: lower id first
};

// `chosen`'s log-probability under log_softmax(logits) and the `top_n` most likely entries
// (top_n is clamped to the vocabulary; 0 = none). Summed in double, so a 201088-wide row
// with logits spread over hundreds of units stays exact to float precision.
TokenLogprob token_logprobs(std::span<const float> logits, int32_t chosen, int top_n);

}  // namespace wo
