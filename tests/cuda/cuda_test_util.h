// Shared helpers of the CUDA tests: a CPU and a CUDA backend side by side, tensors with the same
// contents on both, NaN-poisoned outputs, and an error measure that names the worst element.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/device.h"

// GTEST_SKIP only leaves the function it is written in, so this is a macro.
#define REQUIRE_GPU() \
    if (wo::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: GPU tests skipped"

namespace wo::test {

inline uint32_t fresh_seed() {
    static std::random_device rd;
    return rd();
}

// A tensor with the same shape and contents on the CPU (c) and the GPU (g).
struct Twin {
    Tensor c, g;
};

class Pair {
public:
    Pair() : cpu(make_cpu_backend(0)), gpu(cuda::make_backend(0)) {}
    Twin f32(const std::vector<float>& v, int64_t ne0, int64_t ne1 = 1) {
        return make(GgmlType::F32, v.data(), ne0, ne1);
    }
    Twin i32(const std::vector<int32_t>& v, int64_t ne0, int64_t ne1 = 1) {
        return make(GgmlType::I32, v.data(), ne0, ne1);
    }
    Twin nan(int64_t ne0, int64_t ne1 = 1) {
        std::vector<float> v(static_cast<size_t>(ne0 * ne1), std::numeric_limits<float>::quiet_NaN());
        return f32(v, ne0, ne1);
    }
    Twin make(GgmlType t, const void* data, int64_t ne0, int64_t ne1) {
        const size_t bytes = tensor_bytes(t, ne0, ne1);
        Buffer bc = cpu->alloc(bytes, "test"), bg = gpu->alloc(bytes, "test");
        Twin w{bc.view(t, ne0, ne1), bg.view(t, ne0, ne1)};
        cpu->upload(w.c, data, bytes);
        gpu->upload(w.g, data, bytes);
        keep.push_back(bc);
        keep.push_back(bg);
        return w;
    }
    template <typename T>
    std::vector<T> get_gpu(Tensor t, size_t n) {
        std::vector<T> v(n);
        gpu->download(v.data(), t, n * sizeof(T));
        return v;
    }
    // Whole rows of an F32 view (strided views are read row by row).
    std::vector<float> rows(Backend& b, Tensor t) {
        std::vector<float> v(static_cast<size_t>(t.cols() * t.rows()));
        for (int64_t r = 0; r < t.rows(); ++r)
            b.download(v.data() + r * t.cols(), t.row_range(r, 1),
                       static_cast<size_t>(t.cols()) * sizeof(float));
        return v;
    }
    std::vector<float> rows_cpu(Tensor t) { return rows(*cpu, t); }
    std::vector<float> rows_gpu(Tensor t) { return rows(*gpu, t); }

    std::unique_ptr<Backend> cpu, gpu;
    std::vector<Buffer> keep;
};

inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// Fails unless |got - want| <= abs_tol + rel_tol·|want| everywhere (NaN never passes unless both
// are NaN); names the worst element.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rel_tol,
                         double abs_tol, const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    double worst = 0;
    size_t wi = 0;
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(got[i]) && std::isnan(want[i])) continue;
        const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
        const double lim = abs_tol + rel_tol * std::fabs(want[i]);
        const double ratio = std::isnan(d) ? std::numeric_limits<double>::infinity() : d / lim;
        if (ratio > 1) ++bad;
        if (ratio > worst || std::isnan(got[i])) worst = ratio, wi = i;
    }
    EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " outside the bound; worst at " << wi
                       << ": got " << got[wi] << ", want " << want[wi];
}

}  // namespace wo::test
