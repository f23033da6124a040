// The sampling reference: one row of logits to one token id, exactly as docs/sampling.md says.
// Every backend's sample op must draw the same ids from the same logits, history and seed.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "backend/sampling.h"

namespace wo::cpu {

// What each stage left, for tests that check the stages by hand.
struct SampleTrace {
    std::vector<float> z;           // logits after penalty and temperature (NaN as -inf)
    std::vector<int32_t> survivors; // ids that passed every filter, ascending
    std::vector<float> e;           // exp(z - max z) per id (0 for dropped ids)
    double u = 0;                   // the uniform draw
};

// `history`: every token fed so far (prompt and generated, the last fed one included); each
// distinct id in it is penalized once. `index`: position of the token being drawn.
int32_t sample_row(std::span<const float> logits, std::span<const int32_t> history, const SamplingParams& p,
                   uint32_t index, SampleTrace* trace = nullptr);

}  // namespace wo::cpu
