// Helpers for tests that call the CUDA kernels of backend/cuda/kernels.h directly on memory
// they cudaMalloc themselves: device buffers, random weights of every type, host references.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/cuda/device.h"
#include "backend/cuda/kernels.h"
#include "backend/tensor.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "util/error.h"

namespace wo::cuda::test {

// GTEST_SKIP only leaves the function it is written in, so this is a macro.
#define REQUIRE_GPU() \
    if (wo::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: GPU tests skipped"

// For its lifetime, calls of few tokens take (or never take) the warp-per-rows kernels
// (kernels.h set_warp_min_blocks), whatever their row count.
class WarpKernels {
public:
    explicit WarpKernels(bool on);
    ~WarpKernels();
    WarpKernels(const WarpKernels&) = delete;
    WarpKernels& operator=(const WarpKernels&) = delete;

private:
    int64_t old_;
};

inline void ck(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Device memory owned by the test.
class DevBuf {
public:
    explicit DevBuf(size_t bytes) : bytes_(bytes) { ck(cudaMalloc(&p_, bytes ? bytes : 1), "cudaMalloc"); }
    ~DevBuf() { cudaFree(p_); }
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    void* get() const { return p_; }
    uint8_t* bytes() const { return static_cast<uint8_t*>(p_); }
    size_t size() const { return bytes_; }
    void upload(const void* src, size_t n, size_t at = 0) {
        ck(cudaMemcpy(bytes() + at, src, n, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
    }
    void download(void* dst, size_t n, size_t at = 0) const {
        ck(cudaMemcpy(dst, bytes() + at, n, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
    }
    void fill(uint8_t byte) { ck(cudaMemset(p_, byte, bytes_), "cudaMemset"); }

private:
    void* p_ = nullptr;
    size_t bytes_ = 0;
};

template <typename T>
std::vector<T> download_vec(const DevBuf& b, size_t n, size_t at = 0) {
    std::vector<T> v(n);
    b.download(v.data(), n * sizeof(T), at);
    return v;
}

inline void sync() { ck(cudaDeviceSynchronize(), "cudaDeviceSynchronize (kernel error)"); }

// 0xFFFFFFFF as a float: a NaN pattern no kernel writes by itself (poisons outputs).
inline float poison() {
    const uint32_t u = 0xFFFFFFFFu;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline const std::vector<GgmlType>& all_types() {
    static const std::vector<GgmlType> t = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                                            GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K,
                                            GgmlType::Q6_K, GgmlType::MXFP4};
    return t;
}
inline int64_t block_of(GgmlType t) { return traits(t).block_size; }

// Random rows of type t with sane scales (finite values of magnitude about `scale`): the code
// bytes are random, the scale fields are overwritten with random finite values.
inline std::vector<uint8_t> random_weights(GgmlType t, int64_t rows, int64_t n, std::mt19937& rng,
                                           float scale = 1.0f) {
    const size_t rb = row_bytes(t, uint64_t(n));
    std::vector<uint8_t> w(rb * size_t(rows));
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f), pos(0.5f, 1.0f);
    if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) {
        std::vector<float> f(static_cast<size_t>(n));
        for (int64_t r = 0; r < rows; ++r) {
            for (auto& v : f) v = scale * uni(rng);
            quant::quantize_row(t, f.data(), w.data() + rb * size_t(r), n);
        }
        return w;
    }
    for (size_t i = 0; i < w.size(); i += 4) {  // 4 random bytes per draw: the vocab matrix is 615 MB
        const uint32_t v = rng();
        for (size_t k = 0; k < 4 && i + k < w.size(); ++k) w[i + k] = uint8_t(v >> (8 * k));
    }
    const int64_t n_blocks = int64_t(w.size()) / traits(t).type_size;
    auto h = [&](float v) { return quant::f32_to_f16(v); };
    for (int64_t b = 0; b < n_blocks; ++b) {
        uint8_t* p = w.data() + size_t(b) * traits(t).type_size;
        switch (t) {
            case GgmlType::Q8_0:
                reinterpret_cast<quant::BlockQ8_0*>(p)->d = h(scale * pos(rng) / 127);
                break;
            case GgmlType::Q4_0:
                reinterpret_cast<quant::BlockQ4_0*>(p)->d = h(scale * pos(rng) / 8);
                break;
            case GgmlType::Q5_0:
                reinterpret_cast<quant::BlockQ5_0*>(p)->d = h(scale * pos(rng) / 16);
                break;
            case GgmlType::Q4_K: {
                auto* q = reinterpret_cast<quant::BlockQ4_K*>(p);
                q->d = h(scale * pos(rng) / (15 * 63)), q->dmin = h(scale * pos(rng) / (2 * 63));
                break;
            }
            case GgmlType::Q5_K: {
                auto* q = reinterpret_cast<quant::BlockQ5_K*>(p);
                q->d = h(scale * pos(rng) / (31 * 63)), q->dmin = h(scale * pos(rng) / (2 * 63));
                break;
            }
            case GgmlType::Q6_K:
                reinterpret_cast<quant::BlockQ6_K*>(p)->d = h(scale * pos(rng) / (32 * 127));
                break;
            case GgmlType::MXFP4:  // |value| <= 12 * 2^(e-128): e in [122, 125] + log2(scale) keeps it <= 1.5
                                   // * scale
                reinterpret_cast<quant::BlockMxfp4*>(p)->e =
                    uint8_t(122 + byte(rng) % 4 + int(std::lround(std::log2(scale))));
                break;
            default:
                throw std::logic_error("random_weights: type");
        }
    }
    return w;
}

// Row r of a weight (rows of row_bytes(t, n) bytes) dequantized on the CPU by quant/.
inline std::vector<float> cpu_row(GgmlType t, const std::vector<uint8_t>& w, int64_t n, int64_t r) {
    std::vector<float> f(static_cast<size_t>(n));
    quant::dequantize_row(t, w.data() + row_bytes(t, uint64_t(n)) * size_t(r), f.data(), n);
    return f;
}

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

// Worst-case first-order bound on the rounding error of cta_dots over n_in terms: 4 warps each take
// a quarter of the 8-element units, a lane sums 8 * ceil(quarter / 32) products with one rounding
// per FMA, then 5 butterfly additions and 3 additions of the warp sums, and the result takes up
// to `extra` more roundings (bias, accumulate); times Σ|terms|. Q8_0 and MXFP4 (dequant.cuh's
// scaled units) sum each unit into a fresh partial (8 roundings, relative to that unit's terms)
// and add it to the lane's sum with one FMA per unit: 8 + units roundings instead of 8 * units.
inline double dot_error_bound(int64_t n_in, int extra, double sum_abs, GgmlType t) {
    const int64_t units = (n_in + 7) / 8, quarter = (units + 3) / 4, per_lane = (quarter + 31) / 32;
    const bool scaled = t == GgmlType::Q8_0 || t == GgmlType::MXFP4;
    const double roundings = double((scaled ? 8 + per_lane : 8 * per_lane) + 5 + 3 + extra);
    return roundings * std::ldexp(1.0, -24) * sum_abs * 1.01 + 1e-30;
}

// The same bound for the prompt path (mma.cuh): each product may lose the dropped bf16 term
// products, below 2^-23 of its magnitude (none for weights exact in bf16: MXFP4, BF16), and the
// fp32 accumulation at most 2^-23 of Σ|terms| per MMA instruction (3, 5 or 6 per 16 elements by
// the weight's terms, allowing the tensor core's truncation) plus `extra` roundings after it.
inline double mma_error_bound(int64_t n_in, int extra, double sum_abs, GgmlType t) {
    const bool exact = t == GgmlType::MXFP4 || t == GgmlType::BF16;
    const int per16 = exact ? 3 : t == GgmlType::F16 ? 5 : 6;
    const double mmas = double((n_in + 15) / 16) * per16;
    return ((exact ? 0 : 1) + mmas + extra) * std::ldexp(1.0, -23) * sum_abs * 1.01 + 1e-30;
}

// The same bound for the tensor-core decode (tmv.cuh): per 32-element block the tensor core's
// accumulation of its two chained MMAs (2^-23 of Σ|terms| each, as mma_error_bound), then hi +
// lo and the FMA into the range's sum (2 roundings per block, relative to the running sum), the
// range additions (ranges - 1) and `extra` after; the activation split: hi + lo is within
// 2^-22 of each scaled element, and an element far below the row's largest (x_max) loses up to
// 2^-39 of x_max (f16 subnormals), times Σ|w| (sum_abs_w).
inline double tmv_error_bound(int64_t n_in, int extra, double sum_abs, double sum_abs_w, double x_max,
                              int ranges = 4) {
    const int64_t per = (n_in / 32 + ranges - 1) / ranges;
    const double roundings = double(2 * per + ranges - 1 + extra);
    return (roundings * std::ldexp(1.0, -24) + 2 * std::ldexp(1.0, -23) + std::ldexp(1.0, -22)) * sum_abs *
               1.01 +
           std::ldexp(1.0, -38) * x_max * sum_abs_w + 1e-30;
}

// The same bound for the prompt path from split activations (tmm.cuh): per 32-element block
// the tensor core's accumulation of four chained MMAs (2^-23 of the block's Σ|terms| each), the
// FMA into the one running sum (one rounding per block) and `extra` after; the split as tmv's.
inline double tmm_error_bound(int64_t n_in, int extra, double sum_abs, double sum_abs_w, double x_max) {
    const double roundings = double(n_in / 32 + extra);
    return (roundings * std::ldexp(1.0, -24) + 4 * std::ldexp(1.0, -23) + std::ldexp(1.0, -22)) * sum_abs *
               1.01 +
           std::ldexp(1.0, -38) * x_max * sum_abs_w + 1e-30;
}

// Bits equal, or both NaN (the CPU keeps a NaN's payload, the GPU may give the canonical NaN).
inline bool same_value(float a, float b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    uint32_t x, y;
    std::memcpy(&x, &a, 4);
    std::memcpy(&y, &b, 4);
    return x == y;
}

inline WarpKernels::WarpKernels(bool on) : old_(set_warp_min_blocks(on ? 0 : INT64_MAX)) {}
inline WarpKernels::~WarpKernels() { set_warp_min_blocks(old_); }

}  // namespace wo::cuda::test
