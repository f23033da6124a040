// CPU matmul for every supported weight type and the MoE FFN, against dequantize-then-naive
// references computed in double precision here.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "quant/quant.h"

namespace wo {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

// Quantized weight [n_in, n_out] (rows of n_in) and its exact dequantized values.
struct QWeight {
    std::vector<uint8_t> bytes;
    std::vector<float> deq;
    Tensor t;
    QWeight(GgmlType type, int64_t n_in, int64_t n_out, int64_t n_mat, uint32_t seed) {
        const auto src = randn(static_cast<size_t>(n_in * n_out * n_mat), seed);
        const size_t rb = row_bytes(type, static_cast<uint64_t>(n_in));
        bytes.resize(rb * static_cast<size_t>(n_out * n_mat));
        deq.resize(src.size());
        for (int64_t r = 0; r < n_out * n_mat; ++r) {
            quant::quantize_row(type, src.data() + r * n_in, bytes.data() + r * rb, n_in);
            quant::dequantize_row(type, bytes.data() + r * rb, deq.data() + r * n_in, n_in);
        }
        t = make_tensor(bytes.data(), type, n_in, n_out, n_mat);
    }
};

double dot_ref(const float* a, const float* b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
    return s;
}

const GgmlType kTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                           GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::MXFP4};

class MatmulTypes : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatmulTypes, MatchesDequantizedReference) {
    const GgmlType type = GetParam();
    const int64_t n_in = 512, n_out = 37, n_tok = 3;  // 37 rows: a ragged last row group
    QWeight w(type, n_in, n_out, 1, 7);
    auto x = randn(static_cast<size_t>(n_in * n_tok), 11);
    auto bias = randn(static_cast<size_t>(n_out), 13);
    std::vector<float> y(static_cast<size_t>(n_out * n_tok), 0.0f), y2(y.size(), 1.0f);
    auto be = make_cpu_backend(2);
    Tensor xt = make_tensor(x.data(), GgmlType::F32, n_in, n_tok),
           bt = make_tensor(bias.data(), GgmlType::F32, n_out);
    be->matmul(make_tensor(y.data(), GgmlType::F32, n_out, n_tok), xt, w.t, &bt);
    be->matmul_add(make_tensor(y2.data(), GgmlType::F32, n_out, n_tok), xt, w.t, nullptr);
    for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t r = 0; r < n_out; ++r) {
            const double ref = dot_ref(w.deq.data() + r * n_in, x.data() + t * n_in, n_in);
            // f32 accumulation over 512 terms of O(1) products: ~1e-5 absolute at most
            EXPECT_NEAR(y[t * n_out + r], ref + bias[r], 1e-4) << type_name(type) << " t=" << t << " r=" << r;
            EXPECT_NEAR(y2[t * n_out + r], ref + 1.0, 1e-4) << type_name(type) << " t=" << t << " r=" << r;
        }
}

// Decode (1-2 tokens) may take a fused dequantize-dot path and prefill a dequantize-into-buffer
// path; a token's result must not depend on which, or batching would change logits.
TEST_P(MatmulTypes, OneTokenAloneEqualsTheSameTokenInABatch) {
    const GgmlType type = GetParam();
    const int64_t n_in = 256, n_out = 19, n_tok = 5;
    QWeight w(type, n_in, n_out, 1, 3);
    auto x = randn(static_cast<size_t>(n_in * n_tok), 5);
    std::vector<float> all(static_cast<size_t>(n_out * n_tok)), one(static_cast<size_t>(n_out));
    auto be = make_cpu_backend(2);
    be->matmul(make_tensor(all.data(), GgmlType::F32, n_out, n_tok),
               make_tensor(x.data(), GgmlType::F32, n_in, n_tok), w.t, nullptr);
    for (int64_t t = 0; t < n_tok; ++t) {
        be->matmul(make_tensor(one.data(), GgmlType::F32, n_out, 1),
                   make_tensor(x.data() + t * n_in, GgmlType::F32, n_in, 1), w.t, nullptr);
        for (int64_t r = 0; r < n_out; ++r)
            ASSERT_EQ(one[r], all[t * n_out + r]) << type_name(type) << " t=" << t << " r=" << r;
    }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTypes, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(type_name(info.param)); });

// Every expert type a converted gpt-oss file can hold: MXFP4 (the published weights) and, for
// experts that arrive as floats off the MXFP4 grid, the --type (F32, F16, BF16, Q8_0).
class Moe : public ::testing::TestWithParam<std::tuple<MoeAct, GgmlType>> {};

TEST_P(Moe, ExpertFfnMatchesNaiveComposition) {
    const auto [act, type] = GetParam();
    const int64_t d = 64, ff = 32, n_exp = 4, k = 2, n = 3;
    QWeight gate(type, d, ff, n_exp, 1), up(type, d, ff, n_exp, 2), down(type, ff, d, n_exp, 3);
    auto gb = randn(static_cast<size_t>(ff * n_exp), 4), ub = randn(gb.size(), 5),
         db = randn(static_cast<size_t>(d * n_exp), 6);
    auto x = randn(static_cast<size_t>(d * n), 8, 0.5f);
    std::vector<int32_t> ids{3, 0, 1, 3, 2, 1};
    std::vector<float> wts{0.7f, 0.3f, 0.5f, 0.5f, 0.9f, 0.1f};
    std::vector<float> y(static_cast<size_t>(d * n), 0.25f);
    Tensor gbt = make_tensor(gb.data(), GgmlType::F32, ff, n_exp),
           ubt = make_tensor(ub.data(), GgmlType::F32, ff, n_exp),
           dbt = make_tensor(db.data(), GgmlType::F32, d, n_exp);
    MoeFfn m{gate.t, up.t, down.t, &gbt, &ubt, &dbt, act, 1.702f, 7.0f};
    auto be = make_cpu_backend(2);
    be->moe_ffn(make_tensor(y.data(), GgmlType::F32, d, n), make_tensor(x.data(), GgmlType::F32, d, n),
                make_tensor(ids.data(), GgmlType::I32, k, n), make_tensor(wts.data(), GgmlType::F32, k, n),
                m);
    for (int64_t i = 0; i < n; ++i) {
        std::vector<double> want(static_cast<size_t>(d), 0.25);
        for (int64_t j = 0; j < k; ++j) {
            const int64_t e = ids[static_cast<size_t>(i * k + j)];
            std::vector<float> hidden(static_cast<size_t>(ff));
            for (int64_t f = 0; f < ff; ++f) {
                double g = dot_ref(gate.deq.data() + (e * ff + f) * d, x.data() + i * d, d) + gb[e * ff + f];
                double u = dot_ref(up.deq.data() + (e * ff + f) * d, x.data() + i * d, d) + ub[e * ff + f];
                if (act == MoeAct::SWIGLU_OAI) {
                    g = std::min(g, 7.0);
                    u = std::clamp(u, -7.0, 7.0);
                    hidden[f] = static_cast<float>(g / (1 + std::exp(-1.702 * g)) * (u + 1));
                } else {
                    hidden[f] = static_cast<float>(g / (1 + std::exp(-g)) * u);
                }
            }
            for (int64_t c = 0; c < d; ++c)
                want[c] += wts[i * k + j] *
                           (dot_ref(down.deq.data() + (e * d + c) * ff, hidden.data(), ff) + db[e * d + c]);
        }
        for (int64_t c = 0; c < d; ++c)
            EXPECT_NEAR(y[i * d + c], want[c], 1e-4 + 1e-5 * std::abs(want[c])) << i << "," << c;
    }
}

INSTANTIATE_TEST_SUITE_P(ActsAndTypes, Moe,
                         ::testing::Combine(::testing::Values(MoeAct::SWIGLU_OAI, MoeAct::SWIGLU),
                                            ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16,
                                                              GgmlType::Q8_0, GgmlType::MXFP4)),
                         [](const auto& info) {
                             return std::string(std::get<0>(info.param) == MoeAct::SWIGLU_OAI ? "swiglu_oai_" : "swiglu_") +
                                    std::string(type_name(std::get<1>(info.param)));
                         });

}  // namespace
}  // namespace wo
