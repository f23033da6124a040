// resolve_tokens, embed / embed_add (every table type), get_rows, add and zero on every backend.
// These ops copy, convert or add once, so most results are exact: the bounds say where not.
#include "backend/harness.h"

namespace wo::test {
namespace {

const GgmlType kTableTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                                GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::MXFP4};

using Lookup = BackendTest;
WO_ALL_BACKENDS(Lookup);

TEST_P(Lookup, ResolveTokensTakesLastSampledAndWritesHistory) {
    const int n_slots = 3, n_ctx = 16;
    Dev last = dev_i32(*be, {11, 22, 33});
    Dev hist(*be, GgmlType::I32, n_ctx, n_slots);
    hist.poison();
    Dev params(*be, GgmlType::I32, sizeof(SamplingParams) / 4, n_slots);
    params.poison();
    Dev in = dev_i32(*be, {5, -1, 9, -1, -1}), pos = dev_i32(*be, {3, 4, 0, 7, 2}), slot = dev_i32(*be, {0, 0, 1, 2, 1});
    Dev tokens(*be, GgmlType::I32, 5);
    tokens.poison();
    be->resolve_tokens(tokens.t, in.t, pos.t, slot.t, SlotState{last.t, hist.t, params.t});
    EXPECT_EQ(tokens.i32(), (std::vector<int32_t>{5, 11, 9, 33, 22}));
    std::vector<int32_t> want(static_cast<size_t>(n_ctx * n_slots), kPoisonI32);
    want[0 * n_ctx + 3] = 5, want[0 * n_ctx + 4] = 11, want[1 * n_ctx + 0] = 9, want[2 * n_ctx + 7] = 33,
    want[1 * n_ctx + 2] = 22;
    EXPECT_EQ(hist.i32(), want) << "history[slot][pos] = token, nothing else written";
    EXPECT_EQ(last.i32(), (std::vector<int32_t>{11, 22, 33})) << "last ids are read, not written";
}

// The hand-computed case of the old CPU tests.
TEST_P(Lookup, EmbedAndGetRows) {
    Dev table = dev_f32(*be, {0, 1, 10, 11, 20, 21}, 2, 3);
    Dev ids = dev_i32(*be, {2, 0}), pick = dev_i32(*be, {1});
    Dev y = dev_nan(*be, 2, 2), z = dev_nan(*be, 2, 1);
    be->embed(y.t, table.t, ids.t);
    EXPECT_EQ(y.f32(), (std::vector<float>{20, 21, 0, 1}));
    be->embed_add(y.t, table.t, ids.t);
    EXPECT_EQ(y.f32(), (std::vector<float>{40, 42, 0, 2}));
    be->get_rows(z.t, y.t, pick.t);
    EXPECT_EQ(z.f32(), (std::vector<float>{0, 2}));
}

TEST_P(Lookup, AddAndZero) {
    Dev y = dev_f32(*be, {1, 2, 3, 4}, 2, 2), x = dev_f32(*be, {10, 20, 30, 40}, 2, 2);
    be->add(y.t, x.t);
    EXPECT_EQ(y.f32(), (std::vector<float>{11, 22, 33, 44}));
    be->zero(y.t.row_range(1, 1));
    EXPECT_EQ(y.f32(), (std::vector<float>{11, 22, 0, 0}));
}

TEST_P(Lookup, GetRowsCopiesRowsInIndexOrder) {
    const int64_t d = 2880, n_rows = 40;
    const auto x = randn(static_cast<size_t>(d * n_rows), 1);
    Dev xd = dev_f32(*be, x, d, n_rows);
    const std::vector<int32_t> idx = {39, 0, 7, 7, 20};
    Dev id = dev_i32(*be, idx), y = dev_nan(*be, d, 5);
    be->get_rows(y.t, xd.t, id.t);
    std::vector<float> want;
    for (int32_t r : idx) want.insert(want.end(), x.begin() + r * d, x.begin() + (r + 1) * d);
    EXPECT_TRUE(bits_equal(y.f32(), want)) << "a copy is exact";
}

TEST_P(Lookup, AddOnStridedViewsIsOneRoundingAndTouchesOnlyTheView) {
    const int64_t d = 100, n = 7, W = d + 28;  // y is columns [12, 112) of a [128, n] buffer
    auto y0 = randn(static_cast<size_t>(W * n), 2, 3.0f);
    for (int64_t i = 0; i < W * n; ++i)
        if (i % W < 12 || i % W >= 12 + d) y0[static_cast<size_t>(i)] = kNaN;
    const auto x = randn(static_cast<size_t>(d * n), 3, 1e-3f);
    Dev yd = dev_f32(*be, y0, W, n), xd = dev_f32(*be, x, d, n);
    be->add(yd.t.col_range(12, d), xd.t);
    const auto got = yd.f32();
    EXPECT_TRUE(wrote_exactly(got, W, 12, d));
    std::vector<float> want = y0;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < d; ++c) {
            // one IEEE f32 addition: correctly rounded, so every backend gets the same bits
            float& w = want[static_cast<size_t>(i * W + 12 + c)];
            w = static_cast<float>(static_cast<double>(w) + x[static_cast<size_t>(i * d + c)]);
        }
    EXPECT_TRUE(bits_equal(got, want));
}

// ---- embed / embed_add over every table type
using Embed = BackendTypeTest;
WO_ALL_BACKENDS_AND_TYPES(Embed, ::testing::ValuesIn(kTableTypes));

// Dequantization tolerance of one stored element. F32/F16/BF16 convert exactly; Q8_0, Q4_0, Q5_0
// and MXFP4 are one product of a small integer and a scale (one rounding, the same everywhere).
// K-quants compute d·sc·q − dmin·m with several roundings a device may fuse differently (FMA);
// both terms stay within 2·max|row| for these rows, so a few eps of that.
double dequant_tol(GgmlType t, double row_max) {
    const bool kquant = t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K;
    return kquant ? 8 * kEps32 * row_max : 0.0;
}

TEST_P(Embed, EveryTokenGetsItsRowAsF32) {
    const GgmlType type = std::get<1>(GetParam());
    const int64_t d = traits(type).block_size == 256 ? 512 : 2880, V = 67;
    auto w = make_weight(*be, type, d, V, 1, 5);
    const std::vector<int32_t> ids = {0, 66, 5, 5, 31, 12, 66};
    const int64_t n = static_cast<int64_t>(ids.size());
    Dev id = dev_i32(*be, ids), y = dev_nan(*be, d, n);
    be->embed(y.t, w->t, id.t);
    const auto got = y.f32();
    std::vector<double> want, tol;
    for (int32_t r : ids) {
        double mx = 0;
        for (int64_t c = 0; c < d; ++c) mx = std::max(mx, std::fabs(static_cast<double>(w->row(r)[c])));
        for (int64_t c = 0; c < d; ++c) want.push_back(w->row(r)[c]), tol.push_back(dequant_tol(type, mx));
    }
    EXPECT_TRUE(near_all(got, want, tol, "the stored value: exact, K-quants within 8 eps of the row max"));

    // embed_add: y0 + w, one more rounding of the sum.
    const auto y0 = randn(static_cast<size_t>(d * n), 6, 2.0f);
    Dev ya = dev_f32(*be, y0, d, n);
    be->embed_add(ya.t, w->t, id.t);
    const auto got_add = ya.f32();
    for (size_t i = 0; i < want.size(); ++i) {
        const double s = static_cast<double>(y0[i]) + want[i];
        tol[i] += tol[i] == 0 ? 0.0 : kEps32 * std::fabs(s);
        want[i] = tol[i] == 0 ? static_cast<double>(static_cast<float>(s)) : s;  // exact types: one IEEE add
    }
    EXPECT_TRUE(near_all(got_add, want, tol, "y0 + stored value, one f32 rounding (K-quants: + 8 eps of row max)"));
}

}  // namespace
}  // namespace wo::test
