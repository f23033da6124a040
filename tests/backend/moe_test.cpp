// moe_ffn on every backend with MXFP4, Q8_0 and F32 experts: SWIGLU and gpt-oss's clamped
// SWIGLU_OAI, with and without biases, experts shared by many tokens and one repeated inside a
// token's row; a double reference that propagates an error bound through the layer; batch
// invariance.
#include <algorithm>
#include <numeric>

#include "backend/harness.h"

namespace wo::test {
namespace {

// The model reserves op scratch once (Backend::reserve_scratch); the tests reserve per case.
void reserve_for(Backend& be, int64_t d, int64_t ff, int64_t n_exp, int64_t k, int64_t n) {
    StepLimits l;
    l.max_tokens = n;
    l.n_embd = d;
    l.n_ff = ff;
    l.n_expert = n_exp;
    l.n_expert_used = k;
    be.reserve_scratch(l);
}

struct MoeCase {
    int64_t d = 128, ff = 96, n_exp = 8, k = 4, n = 33;
    float x_scale = 1.0f;  // larger inputs drive gate/up past the OAI limit
};

struct Experts {
    std::unique_ptr<Weight> gate, up, down;
    std::vector<float> gb, ub, db;
    Dev gbd, ubd, dbd;
    MoeFfn m;
    Experts(Backend& be, GgmlType type, const MoeCase& c, MoeAct act, bool biases, uint32_t seed) {
        gate = make_weight(be, type, c.d, c.ff, c.n_exp, seed, 0.3f);
        up = make_weight(be, type, c.d, c.ff, c.n_exp, seed + 1, 0.3f);
        down = make_weight(be, type, c.ff, c.d, c.n_exp, seed + 2, 0.2f);
        gb = randn(static_cast<size_t>(c.ff * c.n_exp), seed + 3, 0.5f);
        ub = randn(gb.size(), seed + 4, 0.5f);
        db = randn(static_cast<size_t>(c.d * c.n_exp), seed + 5, 0.5f);
        if (!biases) std::fill(gb.begin(), gb.end(), 0.0f), std::fill(ub.begin(), ub.end(), 0.0f),
                     std::fill(db.begin(), db.end(), 0.0f);
        gbd = dev_f32(be, gb, c.ff, c.n_exp), ubd = dev_f32(be, ub, c.ff, c.n_exp), dbd = dev_f32(be, db, c.d, c.n_exp);
        m = MoeFfn{gate->t, up->t, down->t, biases ? &gbd.t : nullptr, biases ? &ubd.t : nullptr,
                   biases ? &dbd.t : nullptr, act, 1.702f, 7.0f};
    }
};

// y0 + Σ_j w_j·(down_e·act(gate_e·x + gb, up_e·x + ub) + db), in double, with its error bound:
// each fp32 dot (~2·sqrt(n)·eps·Σ|terms|) is carried through the activation's slope
// (|∂act/∂g| <= 1.2·|other input|, |∂act/∂u| <= |g|), the down projection (independent errors
// of the hidden units add as a random walk, 3x) and the weighted sum.
// Rows i >= n_dec are prompt rows: their dots may carry 2^-23·Σ|terms| more (bf16-term products
// on tensor cores, backend/cuda/mma.cuh).
void moe_ref(const Experts& E, const MoeCase& c, const std::vector<float>& x, const std::vector<int32_t>& ids,
             const std::vector<float>& wts, const std::vector<float>& y0, std::vector<double>& want,
             std::vector<double>& tol, int64_t n_dec) {
    const double u = kEps32, L = E.m.limit, alpha = E.m.alpha;
    want.assign(y0.begin(), y0.end());
    tol.assign(y0.size(), 0.0);
    for (int64_t i = 0; i < c.n; ++i) {
        const float* xr = x.data() + i * c.d;
        std::vector<double> acc_mag(static_cast<size_t>(c.d), std::fabs(static_cast<double>(y0[i * c.d])));
        for (int64_t j = 0; j < c.k; ++j) {
            const int64_t e = ids[static_cast<size_t>(i * c.k + j)];
            const double wt = wts[static_cast<size_t>(i * c.k + j)];
            std::vector<double> h(static_cast<size_t>(c.ff)), dh(h.size());
            for (int64_t f = 0; f < c.ff; ++f) {
                double g = E.gb[e * c.ff + f], up = E.ub[e * c.ff + f];
                double sg = std::fabs(g), su = std::fabs(up);
                for (int64_t t = 0; t < c.d; ++t) {
                    const double pg = static_cast<double>(xr[t]) * E.gate->row(f, e)[t];
                    const double pu = static_cast<double>(xr[t]) * E.up->row(f, e)[t];
                    g += pg, up += pu, sg += std::fabs(pg), su += std::fabs(pu);
                }
                const double rt = 2 * std::sqrt(static_cast<double>(c.d)) * u + (i >= n_dec ? 0x1p-23 : 0.0);
                const double eg = rt * sg, eu = rt * su;
                if (E.m.act == MoeAct::SWIGLU_OAI) {
                    const double gc = std::min(g, L), uc = std::clamp(up, -L, L);
                    h[f] = gc / (1 + std::exp(-alpha * gc)) * (uc + 1);
                    dh[f] = 1.2 * (std::fabs(uc) + 1) * eg + std::fabs(gc) * eu + 8 * u * std::fabs(gc) * (std::fabs(uc) + 1);
                } else {
                    h[f] = g / (1 + std::exp(-g)) * up;
                    dh[f] = 1.2 * std::fabs(up) * eg + std::fabs(g) * eu + 8 * u * std::fabs(g * up);
                }
            }
            for (int64_t col = 0; col < c.d; ++col) {
                const float* dr = E.down->row(col, e);
                double o = E.db[e * c.d + col], mag = std::fabs(o), prop = 0;
                for (int64_t f = 0; f < c.ff; ++f) {
                    o += dr[f] * h[f];
                    mag += std::fabs(dr[f] * h[f]);
                    prop += (dr[f] * dh[f]) * (dr[f] * dh[f]);
                }
                // The hidden units' errors come from separate roundings: they add up like a
                // random walk (3x its scale), not all in one direction.
                const double eo = 3 * std::sqrt(prop) + 2 * std::sqrt(static_cast<double>(c.ff)) * u * mag +
                                  (i >= n_dec ? 0x1p-23 * mag : 0.0);
                const size_t yi = static_cast<size_t>(i * c.d + col);
                want[yi] += wt * o;
                tol[yi] += std::fabs(wt) * eo;
                acc_mag[static_cast<size_t>(col)] += std::fabs(wt * o);
            }
        }
        for (int64_t col = 0; col < c.d; ++col)  // the weighted sum: one product and one add per choice
            tol[static_cast<size_t>(i * c.d + col)] += 2 * static_cast<double>(c.k + 1) * u * acc_mag[col] + 1e-37;
    }
}

// Expert choices: random, so experts are shared by many tokens, and token 1 picks one expert
// twice (the sum must count it twice).
void choices(const MoeCase& c, uint32_t seed, std::vector<int32_t>& ids, std::vector<float>& wts) {
    std::mt19937 rng(seed);
    ids.resize(static_cast<size_t>(c.n * c.k));
    wts.resize(ids.size());
    for (int64_t i = 0; i < c.n; ++i) {
        std::vector<int32_t> perm(static_cast<size_t>(c.n_exp));
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        float sum = 0;
        for (int64_t j = 0; j < c.k; ++j) {
            ids[static_cast<size_t>(i * c.k + j)] = perm[static_cast<size_t>(j)];
            sum += wts[static_cast<size_t>(i * c.k + j)] = 0.1f + std::uniform_real_distribution<float>(0, 1)(rng);
        }
        for (int64_t j = 0; j < c.k; ++j) wts[static_cast<size_t>(i * c.k + j)] /= sum;
    }
    if (c.n > 1 && c.k > 1) ids[static_cast<size_t>(c.k + 1)] = ids[static_cast<size_t>(c.k)];
}

const GgmlType kExpertTypes[] = {GgmlType::MXFP4, GgmlType::Q8_0, GgmlType::F32};

using Moe = BackendTypeTest;
WO_ALL_BACKENDS_AND_TYPES(Moe, ::testing::ValuesIn(kExpertTypes));

constexpr int64_t kAllDecode = INT64_MAX;

TEST_P(Moe, MatchesTheDoubleReference) {
    const GgmlType type = std::get<1>(GetParam());
    uint32_t seed = 1;
    for (const int64_t n_dec : {kAllDecode, int64_t(0), int64_t(3)})
    for (const MoeAct act : {MoeAct::SWIGLU, MoeAct::SWIGLU_OAI})
        for (const bool biases : {false, true})
            for (const MoeCase c : {MoeCase{}, MoeCase{128, 96, 8, 4, 1, 1.0f}, MoeCase{128, 64, 4, 2, 7, 4.0f}}) {
                const std::string what = std::string(act == MoeAct::SWIGLU ? "SWIGLU" : "SWIGLU_OAI") +
                                         (biases ? " biases" : "") + " n=" + std::to_string(c.n) +
                                         " x_scale=" + std::to_string(c.x_scale) +
                                         (n_dec == kAllDecode ? "" : " decode rows " + std::to_string(n_dec));
                be->set_decode_rows(n_dec);
                Experts E(*be, type, c, act, biases, seed);
                seed += 10;
                const auto x = randn(static_cast<size_t>(c.d * c.n), seed++, c.x_scale);
                const auto y0 = randn(x.size(), seed++, 1.0f);
                std::vector<int32_t> ids;
                std::vector<float> wts;
                choices(c, seed++, ids, wts);
                Dev xd = dev_f32(*be, x, c.d, c.n), yd = dev_f32(*be, y0, c.d, c.n), wd = dev_f32(*be, wts, c.k, c.n);
                Dev idd(*be, GgmlType::I32, c.k, c.n);
                idd.upload(ids);
                reserve_for(*be, c.d, c.ff, c.n_exp, c.k, c.n);
                be->moe_ffn(yd.t, xd.t, idd.t, wd.t, E.m);
                std::vector<double> want, tol;
                moe_ref(E, c, x, ids, wts, y0, want, tol, n_dec);
                EXPECT_TRUE(near_all(yd.f32(), want, tol,
                                     "fp32 dots (~2·sqrt(n)·eps·Σ|terms|) carried through the activation slope, "
                                     "the down projection (random walk, 3x) and the weighted sum; prompt rows "
                                     "+ 2^-23·Σ|terms| per dot"))
                    << what;
            }
    be->set_decode_rows(kAllDecode);
}

TEST_P(Moe, OneTokenAloneEqualsTheSameTokenInABatchOf32) {
    const GgmlType type = std::get<1>(GetParam());
    const MoeCase c{2880, 64, 8, 4, 32, 1.0f};
    Experts E(*be, type, c, MoeAct::SWIGLU_OAI, true, 7);
    const auto x = randn(static_cast<size_t>(c.d * c.n), 8);
    const auto y0 = randn(x.size(), 9);
    std::vector<int32_t> ids;
    std::vector<float> wts;
    choices(c, 10, ids, wts);
    Dev xd = dev_f32(*be, x, c.d, c.n), wd = dev_f32(*be, wts, c.k, c.n);
    Dev idd(*be, GgmlType::I32, c.k, c.n);
    idd.upload(ids);
    reserve_for(*be, c.d, c.ff, c.n_exp, c.k, c.n);
    for (const int64_t n_dec : {kAllDecode, int64_t(0)}) {
        SCOPED_TRACE(n_dec == 0 ? "prompt rows" : "decode rows");
        be->set_decode_rows(n_dec);
        Dev all = dev_f32(*be, y0, c.d, c.n);
        be->moe_ffn(all.t, xd.t, idd.t, wd.t, E.m);
        const auto a = all.f32();
        for (const int64_t t : {0, 1, 20, 31}) {
            Dev one = dev_f32(*be, std::vector<float>(y0.begin() + t * c.d, y0.begin() + (t + 1) * c.d), c.d, 1);
            be->moe_ffn(one.t, xd.t.row_range(t, 1), idd.t.row_range(t, 1), wd.t.row_range(t, 1), E.m);
            EXPECT_TRUE(bits_equal(one.f32(), {a.begin() + t * c.d, a.begin() + (t + 1) * c.d})) << "t=" << t;
        }
    }
    be->set_decode_rows(kAllDecode);
}

}  // namespace
}  // namespace wo::test
