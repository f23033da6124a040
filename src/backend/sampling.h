// Per-sequence sampling parameters (a POD row of the backend's sampling table) and the
// counter-based random numbers every backend draws from. docs/sampling.md has the semantics;
// backend/cpu/sample.cpp is the readable reference every other backend must match.
#pragma once
#include <cstdint>

#include "quant/hd.h"

namespace wo {

struct SamplingParams {
    float temperature = 1.0f;         // <= 0: greedy (argmax, lowest id on ties)
    int32_t top_k = 0;                // 0 = off
    float top_p = 1.0f;               // 1 = off
    float min_p = 0.0f;               // 0 = off; keeps p >= min_p * p_max
    float repetition_penalty = 1.0f;  // 1 = off; llama.cpp style over every token fed so far
    uint32_t pad_ = 0;
    uint64_t seed = 0;
};
static_assert(sizeof(SamplingParams) == 32, "SamplingParams is a 32-byte table row");

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): the
// output depends only on (key, counter), so a draw never depends on call order or thread.
struct Philox4 {
    uint32_t v[4];
};

WO_HD inline Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                   uint32_t k1) {
    for (int r = 0; r < 10; ++r) {
        const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
        const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
        const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
        const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return {{c0, c1, c2, c3}};
}

// The uniform draw for the token at `index` of a sequence (its position, counting the prompt)
// under `seed`: a double in (0, 1) built from 53 random bits.
WO_HD inline double sampling_uniform(uint64_t seed, uint32_t index) {
    const Philox4 r = philox4x32_10(index, 0x53414D50u /* "SAMP" */, 0, 0, static_cast<uint32_t>(seed),
                                    static_cast<uint32_t>(seed >> 32));
    const uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 21) ^ (r.v[1] >> 11);  // 53 bits
    return (static_cast<double>(bits & ((uint64_t{1} << 53) - 1)) + 0.5) * 0x1.0p-53;
}

// A logit after the repetition penalty (llama.cpp convention: positive logits shrink, negative
// ones grow, so a penalty > 1 always makes a seen token less likely).
WO_HD inline float penalized(float z, float penalty) { return z > 0.0f ? z / penalty : z * penalty; }

}  // namespace wo
