// matmul and matmul_add for every weight type on every backend: odd shapes, 1/7/33 tokens,
// strided x and y, bias and none, against the exact stored weight values multiplied in double;
// and batch invariance (a token alone equals the same token among 31 others, bit for bit).
#include "backend/harness.h"

namespace wo::test {
namespace {

const GgmlType kWeightTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                                 GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::MXFP4};

bool is_kquant(GgmlType t) { return t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K; }

struct MmShape {
    int64_t n_in, n_out, n_tok;
};

// n_in as the block size allows (K-quants need multiples of 256; 2880 is gpt-oss's width).
std::vector<MmShape> shapes_for(GgmlType t) {
    const int64_t wide = traits(t).block_size == 256 ? 2560 : 2880;
    const int64_t small = traits(t).block_size == 256 ? 256 : 64;
    const int64_t mid = traits(t).block_size == 256 ? 512 : 96;
    return {{small, 1, 1}, {mid, 3, 7}, {256, 67, 33}, {wide, 67, 7}, {small, 5120, 3}};
}

// Error bound of one output element, from S = Σ|x_i·w_i| (the ONE-LINE reasons are kWhy below):
// fp32 products and sums over n_in terms give a random-walk error ~sqrt(n)·eps·S (x2 margin);
// the bias and the accumulated y add one rounding each; K-quant weights may dequantize with a few
// eps of difference on a device (FMA), 4·eps·S.
double mm_tol(GgmlType t, int64_t n_in, double S, double bias, double y0, double ref) {
    return kEps32 * (2 * std::sqrt(static_cast<double>(n_in)) * S + (is_kquant(t) ? 4 * S : 0.0) +
                     2 * (std::fabs(bias) + std::fabs(y0)) + std::fabs(ref)) +
           1e-37;
}
const char* kWhy =
    "fp32 accumulation of n_in products: ~2·sqrt(n)·eps·Σ|x·w| (+4·eps·Σ for K-quant dequant, + one rounding "
    "per bias/accumulate add); prompt rows: + 2^-23·Σ|x·w| (bf16-term products on tensor cores)";
// Prompt rows (Backend::set_decode_rows) may take a tensor-core path whose products drop bf16
// term products below 2^-23 of their magnitude (backend/cuda/mma.cuh).
constexpr double kSplitBf16 = 0x1p-23;

// The role splits each test runs under: every row decode (the default), every row prompt, and a
// mixed step whose first 2 rows are decode rows.
constexpr int64_t kAllDecode = INT64_MAX;
const int64_t kSplits[] = {kAllDecode, 0, 2};

using Matmul = BackendTypeTest;
WO_ALL_BACKENDS_AND_TYPES(Matmul, ::testing::ValuesIn(kWeightTypes));

TEST_P(Matmul, MatchesTheStoredWeightsMultipliedInDouble) {
    const GgmlType type = std::get<1>(GetParam());
    uint32_t seed = 100;
    for (const MmShape s : shapes_for(type)) {
        auto w = make_weight(*be, type, s.n_in, s.n_out, 1, seed++);
        const auto x = randn(static_cast<size_t>(s.n_in * s.n_tok), seed++);
        const auto bias = randn(static_cast<size_t>(s.n_out), seed++);
        // Exact products in double, and Σ|x·w| for the bound.
        std::vector<double> dot(static_cast<size_t>(s.n_out * s.n_tok)), mag(dot.size());
        for (int64_t t = 0; t < s.n_tok; ++t)
            for (int64_t r = 0; r < s.n_out; ++r) {
                double d = 0, m = 0;
                const float* wr = w->row(r);
                const float* xr = x.data() + t * s.n_in;
                for (int64_t i = 0; i < s.n_in; ++i) {
                    const double p = static_cast<double>(xr[i]) * wr[i];
                    d += p, m += std::fabs(p);
                }
                dot[static_cast<size_t>(t * s.n_out + r)] = d, mag[static_cast<size_t>(t * s.n_out + r)] = m;
            }
        Dev bd = dev_f32(*be, bias, s.n_out);
        // x contiguous, or columns [32, 32+n_in) of a wider buffer; y likewise (columns [8, 8+n_out)).
        const int64_t XW = s.n_in + 64, YW = s.n_out + 16;
        std::vector<float> xw(static_cast<size_t>(XW * s.n_tok), kNaN);
        for (int64_t t = 0; t < s.n_tok; ++t)
            std::copy(x.begin() + t * s.n_in, x.begin() + (t + 1) * s.n_in, xw.begin() + t * XW + 32);
        Dev xc = dev_f32(*be, x, s.n_in, s.n_tok), xs = dev_f32(*be, xw, XW, s.n_tok);
        const auto y0 = randn(static_cast<size_t>(s.n_out * s.n_tok), seed++, 2.0f);

        for (int variant = 0; variant < 12; ++variant) {
            const bool strided = variant & 1, with_bias = variant & 2, add = (variant & 3) == 1 || (variant & 3) == 2;
            const int64_t n_dec = kSplits[variant / 4];
            be->set_decode_rows(n_dec);
            const int64_t W = strided ? YW : s.n_out, c0 = strided ? 8 : 0;
            std::vector<float> img(static_cast<size_t>(W * s.n_tok), kNaN);
            if (add)
                for (int64_t t = 0; t < s.n_tok; ++t)
                    for (int64_t r = 0; r < s.n_out; ++r) img[t * W + c0 + r] = y0[t * s.n_out + r];
            Dev y = dev_f32(*be, img, W, s.n_tok);
            const Tensor yv = y.t.col_range(c0, s.n_out);
            const Tensor xv = strided ? xs.t.col_range(32, s.n_in) : xc.t;
            if (add)
                be->matmul_add(yv, xv, w->t, with_bias ? &bd.t : nullptr);
            else
                be->matmul(yv, xv, w->t, with_bias ? &bd.t : nullptr);
            const auto out = y.f32();
            const std::string what = std::string(add ? "matmul_add" : "matmul") + (strided ? " strided" : "") +
                                     (with_bias ? " bias" : "") + " n_in=" + std::to_string(s.n_in) +
                                     " n_out=" + std::to_string(s.n_out) + " n_tok=" + std::to_string(s.n_tok) +
                                     (n_dec == kAllDecode ? "" : " decode rows " + std::to_string(n_dec));
            ASSERT_TRUE(wrote_exactly(out, W, c0, s.n_out)) << what;
            std::vector<float> got;
            std::vector<double> want, tol;
            for (int64_t t = 0; t < s.n_tok; ++t)
                for (int64_t r = 0; r < s.n_out; ++r) {
                    const size_t k = static_cast<size_t>(t * s.n_out + r);
                    const double b = with_bias ? bias[r] : 0.0, a = add ? y0[k] : 0.0;
                    const double ref = a + dot[k] + b;
                    got.push_back(out[static_cast<size_t>(t * W + c0 + r)]);
                    want.push_back(ref);
                    tol.push_back(mm_tol(type, s.n_in, mag[k], b, a, ref) + (t >= n_dec ? kSplitBf16 * mag[k] : 0.0));
                }
            EXPECT_TRUE(near_all(got, want, tol, kWhy)) << what;
        }
    }
    be->set_decode_rows(kAllDecode);
}

// A token's result must not depend on its neighbours or on how many share its step, or batching
// would change what a sequence generates: for decode rows and for prompt rows alike (each role
// has its own path; a token keeps its role whatever the batch).
TEST_P(Matmul, OneTokenAloneEqualsTheSameTokenInABatchOf32) {
    const GgmlType type = std::get<1>(GetParam());
    const int64_t n_in = traits(type).block_size == 256 ? 2560 : 2880, n_out = 67, n = 32;
    auto w = make_weight(*be, type, n_in, n_out, 1, 3);
    const auto x = randn(static_cast<size_t>(n_in * n), 5);
    const auto bias = randn(static_cast<size_t>(n_out), 6);
    for (const int64_t n_dec : {kAllDecode, int64_t(0)}) {
        SCOPED_TRACE(n_dec == 0 ? "prompt rows" : "decode rows");
        be->set_decode_rows(n_dec);
        Dev xd = dev_f32(*be, x, n_in, n), bd = dev_f32(*be, bias, n_out), all = dev_nan(*be, n_out, n);
        be->matmul(all.t, xd.t, w->t, &bd.t);
        const auto a = all.f32();
        Dev one = dev_nan(*be, n_out, 1);
        for (const int64_t t : {0, 1, 16, 31}) {
            be->matmul(one.t, xd.t.row_range(t, 1), w->t, &bd.t);
            EXPECT_TRUE(bits_equal(one.f32(), {a.begin() + t * n_out, a.begin() + (t + 1) * n_out})) << "t=" << t;
        }
        // And inside a batch of 7 (a short prefill chunk).
        Dev seven = dev_nan(*be, n_out, 7);
        be->matmul(seven.t, xd.t.row_range(10, 7), w->t, &bd.t);
        EXPECT_TRUE(bits_equal(seven.f32(), {a.begin() + 10 * n_out, a.begin() + 17 * n_out}));
    }
    be->set_decode_rows(kAllDecode);
}

}  // namespace
}  // namespace wo::test
