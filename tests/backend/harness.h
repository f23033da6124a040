// The op suite's harness: every backend present (CPU always; CUDA when built and a GPU is there),
// tensors that live in backend memory (alloc / upload / download only), NaN-poisoned outputs,
// weights with their exact stored values, and element-wise checks that name the bound's reason.
// References are computed in the tests, in double, from the formulas; never by the CPU backend.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <ostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "quant/quant.h"
#ifdef WO_HAVE_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/register.h"
#endif

namespace wo {
// gtest prints a parameter with this (not as a byte dump) when a test fails.
inline void PrintTo(GgmlType t, std::ostream* os) { *os << type_name(t); }
}  // namespace wo

namespace wo::test {

constexpr double kEps32 = 0x1p-24;  // unit roundoff of f32 (half an ulp of 1)
constexpr double kEps16 = 0x1p-11;  // unit roundoff of f16
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int32_t kPoisonI32 = std::numeric_limits<int32_t>::min();

// Backends this build and machine can run. Evaluated when gtest expands the parameters.
inline std::vector<std::string> backends_present() {
    std::vector<std::string> v{"cpu"};
#ifdef WO_HAVE_CUDA
    static const bool registered = (cuda::register_backend(), true);
    (void)registered;
    if (cuda::device_count() > 0) v.push_back("cuda");
#endif
    return v;
}

inline std::unique_ptr<Backend> make_backend(const std::string& name) {
    if (name == "cpu") return make_cpu_backend(2);
    auto it = backend_factories().find(name);
    if (it == backend_factories().end()) throw std::runtime_error("backend not registered: " + name);
    return it->second(BackendOptions{});
}

// ---- parameters and their readable names ("cpu", "cuda", "cpu_Q4_K")
using BackendType = std::tuple<std::string, GgmlType>;
inline const std::string& backend_of(const std::string& p) { return p; }
inline const std::string& backend_of(const BackendType& p) { return std::get<0>(p); }

struct ParamName {
    std::string operator()(const ::testing::TestParamInfo<std::string>& i) const { return i.param; }
    std::string operator()(const ::testing::TestParamInfo<BackendType>& i) const {
        return std::get<0>(i.param) + "_" + std::string(type_name(std::get<1>(i.param)));
    }
};

// A fixture holding one backend for the test's parameter.
template <class P>
class OnBackend : public ::testing::TestWithParam<P> {
protected:
    void SetUp() override { be = make_backend(backend_of(this->GetParam())); }
    std::unique_ptr<Backend> be;
};
using BackendTest = OnBackend<std::string>;
using BackendTypeTest = OnBackend<BackendType>;

#define WO_ALL_BACKENDS(suite) \
    INSTANTIATE_TEST_SUITE_P(, suite, ::testing::ValuesIn(::wo::test::backends_present()), ::wo::test::ParamName{})
#define WO_ALL_BACKENDS_AND_TYPES(suite, types)                                                            \
    INSTANTIATE_TEST_SUITE_P(, suite,                                                                      \
                             ::testing::Combine(::testing::ValuesIn(::wo::test::backends_present()), types), \
                             ::wo::test::ParamName{})

// ---- a tensor in backend memory
struct Dev {
    Backend* be = nullptr;
    Buffer buf;
    Tensor t;

    Dev() = default;
    Dev(Backend& b, GgmlType type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) : be(&b) {
        buf = b.alloc(tensor_bytes(type, ne0, ne1, ne2), "op suite");
        t = buf.view(type, ne0, ne1, ne2);
    }
    size_t bytes() const { return tensor_bytes(t.type, t.ne[0], t.ne[1], t.ne[2]); }
    template <class T>
    void upload(const std::vector<T>& v) {
        if (v.size() * sizeof(T) != bytes()) throw std::logic_error("Dev::upload: size mismatch");
        be->upload(t, v.data(), bytes());
    }
    template <class T>
    std::vector<T> download() const {
        std::vector<T> v(bytes() / sizeof(T));
        be->download(v.data(), t, bytes());
        return v;
    }
    std::vector<float> f32() const { return download<float>(); }
    std::vector<int32_t> i32() const { return download<int32_t>(); }
    // Fills with NaN (F32, F16, BF16) or kPoisonI32 (I32), so an element the op never wrote is seen.
    void poison() {
        if (t.type == GgmlType::I32)
            upload(std::vector<int32_t>(bytes() / 4, kPoisonI32));
        else if (t.type == GgmlType::F16 || t.type == GgmlType::BF16)
            upload(std::vector<uint16_t>(bytes() / 2, t.type == GgmlType::F16 ? 0x7E00 : 0x7FC0));
        else
            upload(std::vector<float>(bytes() / 4, kNaN));
    }
};

inline Dev dev_f32(Backend& be, const std::vector<float>& v, int64_t ne0, int64_t ne1 = 1) {
    Dev d(be, GgmlType::F32, ne0, ne1);
    d.upload(v);
    return d;
}
inline Dev dev_i32(Backend& be, const std::vector<int32_t>& v) {
    Dev d(be, GgmlType::I32, static_cast<int64_t>(v.size()));
    d.upload(v);
    return d;
}
inline Dev dev_nan(Backend& be, int64_t ne0, int64_t ne1 = 1) {
    Dev d(be, GgmlType::F32, ne0, ne1);
    d.poison();
    return d;
}

// ---- weights: bytes of type `type` (kept alive: the CPU uses them in place), their exact stored
// values (quant::dequantize_row), and the backend's tensor for them.
struct Weight {
    std::vector<uint8_t> bytes;
    std::vector<float> deq;  // [n_mat][n_out][n_in]
    int64_t n_in = 0, n_out = 0, n_mat = 0;
    Tensor t;
    const float* row(int64_t r, int64_t m = 0) const { return deq.data() + (m * n_out + r) * n_in; }
};

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f, float mean = 0.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(mean, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

inline std::unique_ptr<Weight> make_weight(Backend& be, GgmlType type, int64_t n_in, int64_t n_out, int64_t n_mat,
                                           uint32_t seed, float scale = 1.0f) {
    auto w = std::make_unique<Weight>();
    w->n_in = n_in, w->n_out = n_out, w->n_mat = n_mat;
    const auto src = randn(static_cast<size_t>(n_in * n_out * n_mat), seed, scale);
    const size_t rb = row_bytes(type, static_cast<uint64_t>(n_in));
    w->bytes.resize(rb * static_cast<size_t>(n_out * n_mat));
    w->deq.resize(src.size());
    for (int64_t r = 0; r < n_out * n_mat; ++r) {
        quant::quantize_row(type, src.data() + r * n_in, w->bytes.data() + r * rb, n_in);
        quant::dequantize_row(type, w->bytes.data() + r * rb, w->deq.data() + r * n_in, n_in);
    }
    w->t = be.weight(w->bytes.data(), type, n_in, n_out, n_mat, "op suite weight");
    return w;
}

// ---- checks
inline bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// |got[i] - want[i]| <= tol[i] for every i; NaN in got fails unless want is NaN too. Reports the
// first few failures and the reason the bound has.
inline ::testing::AssertionResult near_all(const std::vector<float>& got, const std::vector<double>& want,
                                           const std::vector<double>& tol, const std::string& why) {
    if (got.size() != want.size() || tol.size() != want.size())
        return ::testing::AssertionFailure() << "size mismatch: " << got.size() << " vs " << want.size();
    size_t bad = 0;
    std::ostringstream os;
    for (size_t i = 0; i < got.size(); ++i) {
        const bool ok = std::isnan(want[i]) ? std::isnan(got[i])
                                            : !std::isnan(got[i]) && std::fabs(got[i] - want[i]) <= tol[i];
        if (ok) continue;
        if (bad++ < 5)
            os << "\n  [" << i << "] got " << got[i] << " want " << want[i] << " (|diff| "
               << std::fabs(got[i] - want[i]) << " > tol " << tol[i] << ")";
    }
    if (bad == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements outside the bound ("
                                         << why << "):" << os.str();
}

// Bit-for-bit equality (NaN payloads included).
inline ::testing::AssertionResult bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << b.size();
    for (size_t i = 0; i < a.size(); ++i)
        if (!same_bits(a[i], b[i]))
            return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i];
    return ::testing::AssertionSuccess();
}

// Elements [c0, c0 + n) of each row of a [width, rows] image are not NaN, the others are (the op
// wrote exactly its view).
inline ::testing::AssertionResult wrote_exactly(const std::vector<float>& img, int64_t width, int64_t c0,
                                                int64_t n) {
    for (size_t i = 0; i < img.size(); ++i) {
        const int64_t c = static_cast<int64_t>(i) % width;
        const bool inside = c >= c0 && c < c0 + n;
        if (inside == std::isnan(img[i]))
            return ::testing::AssertionFailure() << "element " << i << " (row " << static_cast<int64_t>(i) / width
                                                 << ", column " << c << ") " << (inside ? "not written" : "overwritten");
    }
    return ::testing::AssertionSuccess();
}

}  // namespace wo::test
