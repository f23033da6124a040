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
#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/device.h"
#include "backend/cuda/kernels.h"

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

// The bits of a decode product over x's first n rows (d wide) through P.gpu's matmul with
// tmv_split's launches dropped, against cuda::matmul_tmv splitting x into its own scratch: equal
// only when the op that wrote x left its split for the product (the backend's scratch holds no
// split of x otherwise). Needs P.gpu->reserve_scratch and decode rows set; a random Q8_0 weight
// of 1024 rows.
inline void expect_product_reads_the_split(Pair& P, Tensor x, int64_t d, int64_t n, std::mt19937& rng,
                                           const std::string& what) {
    auto& cb = dynamic_cast<cuda::CudaBackend&>(*P.gpu);
    const int64_t n_out = 1024;
    std::vector<uint8_t> q(size_t(n_out * d / 32) * 34);  // Q8_0 blocks: f16 scale 0.0625, random codes
    std::uniform_int_distribution<int> byte(0, 255);
    for (size_t b = 0; b < q.size(); b += 34) {
        q[b] = 0x00, q[b + 1] = 0x2C;
        for (size_t i = 2; i < 34; ++i) q[b + i] = uint8_t(byte(rng));
    }
    const Tensor w = P.gpu->weight(q.data(), GgmlType::Q8_0, d, n_out, 1, "w");
    ASSERT_EQ(w.layout, WeightLayout::DEVICE);
    Twin y = P.nan(n_out, n), ref = P.nan(n_out, n);
    Buffer sb = P.gpu->alloc(cuda::matmul_tmv_scratch_bytes(n, d), "test scratch");
    P.keep.push_back(sb);
    cuda::matmul_tmv(ref.g, x.row_range(0, n), w, nullptr, false, sb.data(), sb.bytes, cb.stream());
    const std::string old = cuda::set_launch_skip("tmv_split_kernel");
    P.gpu->matmul(y.g, x.row_range(0, n), w, nullptr);
    cuda::set_launch_skip(old);
    const auto a = P.rows_gpu(y.g), b = P.rows_gpu(ref.g);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << what << ": the op's split";
}

}  // namespace wo::test
