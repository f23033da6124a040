// RoPE parameters and the per-dimension frequencies every backend uses, computed once on the
// host at load and uploaded (RopeParams::inv_freq), so CPU and CUDA rotate by the same angles.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/tensor.h"

namespace wo {

// NORM rotates adjacent pairs (2i, 2i+1) (llama GGUFs: the converter permuted Q/K rows);
// NEOX rotates (i, i + n_dims/2) (HF half-split; qwen2, phi3, gpt-oss).
enum class RopeMode { NORM, NEOX };
enum class RopeScaling { NONE, LINEAR, YARN };

struct RopeParams {
    RopeMode mode = RopeMode::NORM;
    int n_dims = 0;    // rotated dims per head (the rest pass through)
    int head_dim = 0;  // stride between heads in the row
    int n_head = 0;    // heads in the row being rotated
    float freq_base = 10000.0f;
    RopeScaling scaling = RopeScaling::NONE;
    float factor = 1.0f;              // LINEAR: positions / factor; YARN: context extension factor
    int orig_ctx = 0;                 // YARN: original (pre-extension) context length
    float beta_fast = 32;             // YARN ramp bounds (gpt-oss / OAI ntk_beta)
    float beta_slow = 1;              // (OAI ntk_alpha)
    std::vector<float> freq_factors;  // optional per-pair divisors (llama rope_freqs.weight)
    Tensor inv_freq;                  // F32 [n_dims/2] in backend memory: rope_inv_freq(*this)
};

// YaRN ramp bounds as OAI computes them, NOT rounded (OAI config "truncate": false):
// dim index where the rotation count over orig_ctx equals beta.
inline double yarn_corr_dim(const RopeParams& p, double beta) {
    return p.n_dims * std::log(p.orig_ctx / (beta * 2.0 * M_PI)) / (2.0 * std::log(p.freq_base));
}

// Scale applied to both cos and sin (YaRN "concentration" 0.1·ln(factor) + 1; 1 otherwise).
inline float rope_attn_factor(const RopeParams& p) {
    if (p.scaling == RopeScaling::YARN && p.factor > 1.0f)
        return static_cast<float>(0.1 * std::log(p.factor) + 1.0);
    return 1.0f;
}

// theta_i(pos) = pos · inv_freq[i] for pair i = 0 .. n_dims/2-1.
inline std::vector<float> rope_inv_freq(const RopeParams& p) {
    const int half = p.n_dims / 2;
    std::vector<float> inv(half);
    const bool yarn = p.scaling == RopeScaling::YARN && p.factor > 1.0f;
    const double low = yarn ? yarn_corr_dim(p, p.beta_fast) : 0.0;
    double high = yarn ? yarn_corr_dim(p, p.beta_slow) : 0.0;
    if (yarn && high == low) high += 0.001;  // avoid a zero-width ramp
    for (int i = 0; i < half; ++i) {
        const double freq = std::pow(static_cast<double>(p.freq_base), 2.0 * i / p.n_dims);
        double v = 1.0 / freq;  // extrapolation: the original frequency
        if (yarn) {
            const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
            const double interp = 1.0 / (p.factor * freq);
            v = interp * ramp + v * (1.0 - ramp);
        } else if (p.scaling == RopeScaling::LINEAR && p.factor > 0.0f) {
            v /= p.factor;
        }
        if (!p.freq_factors.empty()) v /= p.freq_factors[static_cast<size_t>(i)];
        inv[static_cast<size_t>(i)] = static_cast<float>(v);
    }
    return inv;
}

}  // namespace wo
