// CUDA moe_ffn against a naive double-precision composition on the CPU (per pair: gate and up
// dots of the CPU-dequantized experts, the activation, the down dot, the weighted sum in j order).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/kernels.h"
#include "kernel_test_util.h"

namespace wo::cuda::test {
namespace {

struct MoeData {
    GgmlType type;
    int64_t d, n_ff, n_exp;
    bool biases;
    std::vector<uint8_t> gate, up, down;
    std::vector<float> gb, ub, db;
};

MoeData make_experts(GgmlType t, int64_t d, int64_t n_ff, int64_t n_exp, bool biases, float scale,
                     std::mt19937& rng) {
    MoeData m{t, d, n_ff, n_exp, biases, {}, {}, {}, {}, {}, {}};
    m.gate = random_weights(t, n_ff * n_exp, d, rng, scale);
    m.up = random_weights(t, n_ff * n_exp, d, rng, scale);
    m.down = random_weights(t, d * n_exp, n_ff, rng, scale);
    if (biases) {
        m.gb = random_floats(size_t(n_ff * n_exp), rng, -0.5f, 0.5f);
        m.ub = random_floats(size_t(n_ff * n_exp), rng, -0.5f, 0.5f);
        m.db = random_floats(size_t(d * n_exp), rng, -0.5f, 0.5f);
    }
    return m;
}

// Device copies of the experts and the MoeFfn that views them; packed: repacked into the DEVICE
// layout as the model loader does (Q8_0 / MXFP4: both paths on tensor cores from split
// activations, tmv.cuh and tmm.cuh).
struct DevExperts {
    DevBuf gate, up, down, gb, ub, db;
    std::optional<DevBuf> pg, pu, pd;
    Tensor tgb, tub, tdb;
    MoeFfn ffn;
    DevExperts(const MoeData& m, MoeAct act, bool packed = false)
        : gate(m.gate.size()),
          up(m.up.size()),
          down(m.down.size()),
          gb(m.gb.size() * 4),
          ub(m.ub.size() * 4),
          db(m.db.size() * 4) {
        gate.upload(m.gate.data(), m.gate.size());
        up.upload(m.up.data(), m.up.size());
        down.upload(m.down.data(), m.down.size());
        ffn.gate = make_tensor(gate.get(), m.type, m.d, m.n_ff, m.n_exp);
        ffn.up = make_tensor(up.get(), m.type, m.d, m.n_ff, m.n_exp);
        ffn.down = make_tensor(down.get(), m.type, m.n_ff, m.d, m.n_exp);
        if (m.biases) {
            gb.upload(m.gb.data(), m.gb.size() * 4);
            ub.upload(m.ub.data(), m.ub.size() * 4);
            db.upload(m.db.data(), m.db.size() * 4);
            tgb = make_tensor(gb.get(), GgmlType::F32, m.n_ff, m.n_exp);
            tub = make_tensor(ub.get(), GgmlType::F32, m.n_ff, m.n_exp);
            tdb = make_tensor(db.get(), GgmlType::F32, m.d, m.n_exp);
            ffn.gate_b = &tgb, ffn.up_b = &tub, ffn.down_b = &tdb;
        }
        ffn.act = act;
        if (packed) {
            auto pack = [](std::optional<DevBuf>& buf, Tensor& w) {
                buf.emplace(repack_bytes(w));
                w = repack(w, buf->get(), nullptr);
                EXPECT_EQ(w.layout, WeightLayout::DEVICE);
            };
            pack(pg, ffn.gate), pack(pu, ffn.up), pack(pd, ffn.down);
            sync();
        }
    }
};

// The activation in double and the magnitudes of its partial derivatives (taken at the clamped
// point without the clamp's zero slope: an upper bound for a first-order error estimate).
struct Act {
    double v, dg, du;
};
Act act_ref(MoeAct act, double g, double u, double alpha, double limit) {
    if (act == MoeAct::SWIGLU) {
        const double s = 1.0 / (1.0 + std::exp(-g));
        return {g * s * u, std::fabs(s * (1 + g * (1 - s)) * u), std::fabs(g * s)};
    }
    const double gc = std::min(g, limit), uc = std::clamp(u, -limit, limit);
    const double s = 1.0 / (1.0 + std::exp(-alpha * gc));
    return {gc * s * (uc + 1), std::fabs(s * (1 + alpha * gc * (1 - s)) * (uc + 1)), std::fabs(gc * s)};
}

struct Ref {
    double y, bound;
};

// y[i][c] reference and its error bound for token i. The bound is first order, doubled: the
// gate/up dots (dot_error_bound with the bias rounding) through the activation's slopes, plus
// 8 roundings of the activation (expf is within 2 ulp) and α|g| for the rounding of α·g; the
// down dot (its own bound plus Σ|w|·error of G); then 2 roundings per term of the combine.
// The dots' bound by path: the decode path on CUDA cores (dot_error_bound), the prompt path
// (mma_error_bound), the decode and prompt paths from split activations (tmv_error_bound,
// tmm_error_bound, with Σ|w| and the input row's largest magnitude).
enum class Path { DECODE, PROMPT, TMV, TMM };
std::vector<Ref> moe_ref(const MoeData& m, MoeAct act, const float* x, const int32_t* ids, const float* wts,
                         int k, const float* y0, Path path) {
    auto dot_bound = [&](int64_t n_in, int extra, double mag, double w_abs, double x_max) {
        return path == Path::PROMPT ? mma_error_bound(n_in, extra, mag, m.type)
               : path == Path::TMV  ? tmv_error_bound(n_in, extra, mag, w_abs, x_max)
               : path == Path::TMM  ? tmm_error_bound(n_in, extra, mag, w_abs, x_max)
                                    : dot_error_bound(n_in, extra, mag, m.type);
    };
    double x_max = 0;
    for (int64_t i = 0; i < m.d; ++i) x_max = std::max(x_max, std::fabs(double(x[i])));
    const double u = std::ldexp(1.0, -24), alpha = double(1.702f), limit = 7.0;  // MoeFfn's floats
    const int64_t d = m.d, n_ff = m.n_ff;
    std::vector<Ref> out(static_cast<size_t>(d));
    std::vector<double> mag(static_cast<size_t>(d));
    for (int64_t c = 0; c < d; ++c) out[size_t(c)] = {y0[c], 0.0}, mag[size_t(c)] = std::fabs(y0[c]);
    std::vector<double> G(static_cast<size_t>(n_ff)), eG(static_cast<size_t>(n_ff));
    for (int j = 0; j < k; ++j) {
        const int e = ids[j];
        for (int64_t f = 0; f < n_ff; ++f) {
            auto gr = cpu_row(m.type, m.gate, d, e * n_ff + f), ur = cpu_row(m.type, m.up, d, e * n_ff + f);
            double g = 0, gm = 0, uu = 0, um = 0, ga = 0, ua = 0;
            for (int64_t i = 0; i < d; ++i) {
                g += double(gr[size_t(i)]) * x[i], gm += std::fabs(double(gr[size_t(i)]) * x[i]);
                uu += double(ur[size_t(i)]) * x[i], um += std::fabs(double(ur[size_t(i)]) * x[i]);
                ga += std::fabs(double(gr[size_t(i)])), ua += std::fabs(double(ur[size_t(i)]));
            }
            if (m.biases) {
                g += m.gb[size_t(e * n_ff + f)], gm += std::fabs(m.gb[size_t(e * n_ff + f)]);
                uu += m.ub[size_t(e * n_ff + f)], um += std::fabs(m.ub[size_t(e * n_ff + f)]);
            }
            const Act a = act_ref(act, g, uu, alpha, limit);
            G[size_t(f)] = a.v;
            eG[size_t(f)] = a.dg * dot_bound(d, 1, gm, ga, x_max) + a.du * dot_bound(d, 1, um, ua, x_max) +
                            (8 + alpha * std::fabs(g)) * u * std::fabs(a.v);
        }
        double g_max = 0;  // the largest |G| the GPU can have
        for (int64_t f = 0; f < n_ff; ++f) g_max = std::max(g_max, std::fabs(G[size_t(f)]) + eG[size_t(f)]);
        for (int64_t c = 0; c < d; ++c) {
            auto dr = cpu_row(m.type, m.down, n_ff, e * d + c);
            double o = 0, om = 0, prop = 0, da = 0;
            for (int64_t f = 0; f < n_ff; ++f) {
                o += double(dr[size_t(f)]) * G[size_t(f)];
                om += std::fabs(double(dr[size_t(f)]) * G[size_t(f)]);
                prop += std::fabs(double(dr[size_t(f)])) * eG[size_t(f)];
                da += std::fabs(double(dr[size_t(f)]));
            }
            if (m.biases) o += m.db[size_t(e * d + c)], om += std::fabs(m.db[size_t(e * d + c)]);
            const double eo = dot_bound(n_ff, 1, om, da, g_max) + prop;
            out[size_t(c)].y += double(wts[j]) * o;
            out[size_t(c)].bound += std::fabs(double(wts[j])) * eo;
            mag[size_t(c)] += std::fabs(double(wts[j]) * o);
        }
    }
    for (int64_t c = 0; c < d; ++c)
        out[size_t(c)].bound = 2 * (out[size_t(c)].bound + 2 * k * u * mag[size_t(c)]);
    return out;
}

// Runs moe_ffn on tokens [first, first+n) of the inputs (y starts as y0 there) with scratch
// poisoned, the first n_decode of them on the decode path; returns y for those tokens.
constexpr int64_t kAllDecode = INT64_MAX;
std::vector<float> run_moe(DevExperts& ex, const MoeData& m, const std::vector<float>& x,
                           const std::vector<int32_t>& ids, const std::vector<float>& wts,
                           const std::vector<float>& y0, int k, int64_t first, int64_t n,
                           int64_t n_decode = kAllDecode) {
    const int64_t d = m.d;
    DevBuf dx(sizeof(float) * size_t(n * d)), dy(sizeof(float) * size_t(n * d)),
        di(sizeof(int32_t) * size_t(n * k)), dw(sizeof(float) * size_t(n * k));
    dx.upload(x.data() + first * d, dx.size());
    dy.upload(y0.data() + first * d, dy.size());
    di.upload(ids.data() + first * k, di.size());
    dw.upload(wts.data() + first * k, dw.size());
    StepLimits l;
    l.max_tokens = n, l.n_embd = d, l.n_ff = m.n_ff, l.n_expert = m.n_exp, l.n_expert_used = k;
    const size_t sb = moe_scratch_bytes(l);
    EXPECT_GT(sb, 0u);
    DevBuf scratch(sb);
    scratch.fill(0xFF);
    const size_t zb = moe_scratch_zero_bytes(d);  // the fold counters: zero before, zero after
    EXPECT_EQ(cudaMemset(scratch.get(), 0, zb), cudaSuccess);
    moe_ffn(make_tensor(dy.get(), GgmlType::F32, d, n), make_tensor(dx.get(), GgmlType::F32, d, n),
            make_tensor(di.get(), GgmlType::I32, k, n), make_tensor(dw.get(), GgmlType::F32, k, n), ex.ffn,
            scratch.get(), sb, n_decode, nullptr);
    sync();
    std::vector<int32_t> counters(zb / sizeof(int32_t));
    EXPECT_EQ(cudaMemcpy(counters.data(), scratch.get(), zb, cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < counters.size(); ++i)
        EXPECT_EQ(counters[i], 0) << "fold counter " << i << " left set";
    return download_vec<float>(dy, size_t(n * d));
}

void check_against_ref(const MoeData& m, MoeAct act, const std::vector<float>& x,
                       const std::vector<int32_t>& ids, const std::vector<float>& wts,
                       const std::vector<float>& y0, int k, const std::vector<float>& y,
                       const std::vector<int64_t>& tokens, Path path = Path::DECODE) {
    int64_t bad = 0;
    for (int64_t i : tokens) {
        auto ref = moe_ref(m, act, x.data() + i * m.d, ids.data() + i * k, wts.data() + i * k, k,
                           y0.data() + i * m.d, path);
        for (int64_t c = 0; c < m.d; ++c) {
            const double err = std::fabs(double(y[size_t(i * m.d + c)]) - ref[size_t(c)].y);
            if (!(err <= ref[size_t(c)].bound) && bad++ < 5) {
                ADD_FAILURE() << "token " << i << " col " << c << ": gpu " << y[size_t(i * m.d + c)]
                              << " ref " << ref[size_t(c)].y << " err " << err << " bound "
                              << ref[size_t(c)].bound;
            }
        }
    }
    EXPECT_EQ(bad, 0);
}

// k distinct experts per token, as topk gives.
std::vector<int32_t> distinct_ids(int64_t n, int k, int n_exp, std::mt19937& rng) {
    std::vector<int32_t> ids(static_cast<size_t>(n * k));
    std::vector<int32_t> perm(static_cast<size_t>(n_exp));
    for (int64_t i = 0; i < n; ++i) {
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        std::copy_n(perm.begin(), k, ids.begin() + i * k);
    }
    return ids;
}

// A step of n tokens on the decode path, then on the prompt path: the sample tokens against the
// reference (bounds of `dec`, `pr`) and against their solo runs in the same role; y_dec = the
// decode path's output. Call it through ASSERT_NO_FATAL_FAILURE.
void check_both_paths(DevExperts& ex, const MoeData& m, const std::vector<float>& x,
                      const std::vector<int32_t>& ids, const std::vector<float>& wts,
                      const std::vector<float>& y0, int k, int64_t n, const std::vector<int64_t>& sample,
                      Path dec, Path pr, std::vector<float>& y_dec) {
    for (int64_t n_decode : {kAllDecode, int64_t(0)}) {
        const bool prompt = n_decode == 0;
        auto y = run_moe(ex, m, x, ids, wts, y0, k, 0, n, n_decode);
        check_against_ref(m, MoeAct::SWIGLU_OAI, x, ids, wts, y0, k, y, sample, prompt ? pr : dec);
        for (int64_t i : sample) {
            auto y1 = run_moe(ex, m, x, ids, wts, y0, k, i, 1, n_decode);
            for (int64_t c = 0; c < m.d; ++c)
                ASSERT_TRUE(same_value(y[size_t(i * m.d + c)], y1[size_t(c)]))
                    << (prompt ? "prompt token " : "token ") << i << " col " << c;
        }
        if (!prompt) y_dec = std::move(y);
    }
}

enum class Routing { RANDOM, ONE_EXPERT, FEW_EXPERTS };

std::vector<int32_t> make_ids(Routing r, int64_t n, int k, int n_exp, std::mt19937& rng) {
    std::vector<int32_t> ids(static_cast<size_t>(n * k));
    std::uniform_int_distribution<int> any(0, n_exp - 1), two(0, 1);
    for (auto& e : ids)
        e = r == Routing::RANDOM       ? any(rng)
            : r == Routing::ONE_EXPERT ? n_exp / 2
                                       : (two(rng) ? 1 : n_exp - 2);
    if (r == Routing::RANDOM) ids[1] = ids[0];  // the same expert twice for one token
    return ids;
}

TEST(CudaMoe, MatchesNaiveCompositionEveryRoutingTypeAndActivation) {
    REQUIRE_GPU();
    std::mt19937 rng(31);
    for (GgmlType t : {GgmlType::MXFP4, GgmlType::Q8_0, GgmlType::F32}) {
        // F32: rows that are not a multiple of 8 (the tail unit); the block types: odd block counts.
        const int64_t d = t == GgmlType::F32 ? 37 : 96, n_ff = t == GgmlType::F32 ? 21 : 160;
        const int n_exp = 8, k = 3;
        const int64_t n = 13;
        for (MoeAct act : {MoeAct::SWIGLU_OAI, MoeAct::SWIGLU}) {
            const bool biases = act == MoeAct::SWIGLU_OAI;  // gpt-oss has them; llama-style MoE not
            const MoeData m = make_experts(t, d, n_ff, n_exp, biases, 0.3f, rng);
            DevExperts ex(m, act);
            for (Routing r : {Routing::RANDOM, Routing::ONE_EXPERT, Routing::FEW_EXPERTS}) {
                SCOPED_TRACE(std::string(type_name(t)) + (act == MoeAct::SWIGLU ? " swiglu" : " swiglu_oai") +
                             " routing " + std::to_string(int(r)));
                auto x = random_floats(size_t(n * d), rng);
                auto ids = make_ids(r, n, k, n_exp, rng);
                auto wts = random_floats(size_t(n * k), rng, 0.0f, 1.0f);
                auto y0 = random_floats(size_t(n * d), rng);
                auto y = run_moe(ex, m, x, ids, wts, y0, k, 0, n);
                std::vector<int64_t> all(static_cast<size_t>(n));
                std::iota(all.begin(), all.end(), 0);
                check_against_ref(m, act, x, ids, wts, y0, k, y, all);
            }
        }
    }
}

// Batch invariance: each token's output equal bit for bit to the token run alone (the
// one-token kernels, CTA-per-rows and then warp-per-rows; the batch of 37 takes the wide one).
TEST(CudaMoe, BatchInvariantBitForBit) {
    REQUIRE_GPU();
    std::mt19937 rng(32);
    for (bool warp : {false, true})
        for (GgmlType t : {GgmlType::MXFP4, GgmlType::Q8_0}) {
            SCOPED_TRACE(std::string(type_name(t)) + (warp ? " (warp-per-rows)" : ""));
            WarpKernels wk(warp);
            const int64_t d = 128, n_ff = 96, n = 37;
            const int n_exp = 6, k = 2;
            const MoeData m = make_experts(t, d, n_ff, n_exp, true, 0.3f, rng);
            DevExperts ex(m, MoeAct::SWIGLU_OAI);
            auto x = random_floats(size_t(n * d), rng);
            auto ids = make_ids(Routing::RANDOM, n, k, n_exp, rng);
            auto wts = random_floats(size_t(n * k), rng, 0.0f, 1.0f);
            auto y0 = random_floats(size_t(n * d), rng);
            auto y = run_moe(ex, m, x, ids, wts, y0, k, 0, n);
            if (warp) {  // the batch's passes of 2 and 4 pairs against the CTA kernels
                WarpKernels off(false);
                auto yc = run_moe(ex, m, x, ids, wts, y0, k, 0, n);
                for (size_t c = 0; c < y.size(); ++c)
                    ASSERT_TRUE(same_value(y[c], yc[c])) << "warp passes against the CTA kernels, at " << c;
            }
            for (int64_t i = 0; i < n; ++i) {
                auto y1 = run_moe(ex, m, x, ids, wts, y0, k, i, 1);
                for (int64_t c = 0; c < d; ++c)
                    ASSERT_TRUE(same_value(y[size_t(i * d + c)], y1[size_t(c)]) && !std::isnan(y1[size_t(c)]))
                        << "token " << i << " col " << c;
            }
        }
}

// gpt-oss-20b's expert shapes: 32 MXFP4 experts of 2880 x 2880, top-4, 64 tokens; three tokens
// checked against the reference and against their solo runs.
TEST(CudaMoe, GptOss20bShape) {
    REQUIRE_GPU();
    std::mt19937 rng(33);
    const int64_t d = 2880, n_ff = 2880, n = 64;
    const int n_exp = 32, k = 4;
    const MoeData m = make_experts(GgmlType::MXFP4, d, n_ff, n_exp, true, 0.05f, rng);
    DevExperts ex(m, MoeAct::SWIGLU_OAI);
    auto x = random_floats(size_t(n * d), rng);
    auto ids = distinct_ids(n, k, n_exp, rng);
    auto wts = random_floats(size_t(n * k), rng, 0.0f, 0.5f);
    auto y0 = random_floats(size_t(n * d), rng);
    std::vector<float> y;  // the decode path, then the prompt path on the same step
    ASSERT_NO_FATAL_FAILURE(
        check_both_paths(ex, m, x, ids, wts, y0, k, n, {0, 31, 63}, Path::DECODE, Path::PROMPT, y));
}

// The prompt path (tensor-core tiles of 64 pairs per expert) against the reference: 150 tokens,
// so one expert's pairs span several tiles under every routing; packed: experts in the DEVICE
// layout (tmm.cuh; n_ff = 160 and d = 96 have odd block counts and partial row tiles).
TEST(CudaMoe, PromptPathMatchesNaiveComposition) {
    REQUIRE_GPU();
    std::mt19937 rng(35);
    for (GgmlType t : {GgmlType::MXFP4, GgmlType::Q8_0, GgmlType::F32}) {
        const int64_t d = t == GgmlType::F32 ? 37 : 96, n_ff = t == GgmlType::F32 ? 21 : 160;
        const int n_exp = 8, k = 3;
        const int64_t n = 150;
        for (int variant = 0; variant < (t == GgmlType::F32 ? 2 : 4); ++variant) {
            const MoeAct act = variant % 2 == 0 ? MoeAct::SWIGLU_OAI : MoeAct::SWIGLU;
            const bool biases = act == MoeAct::SWIGLU_OAI, packed = variant >= 2;
            const MoeData m = make_experts(t, d, n_ff, n_exp, biases, 0.3f, rng);
            DevExperts ex(m, act, packed);
            for (Routing r : {Routing::RANDOM, Routing::ONE_EXPERT, Routing::FEW_EXPERTS}) {
                SCOPED_TRACE(std::string(type_name(t)) + (act == MoeAct::SWIGLU ? " swiglu" : " swiglu_oai") +
                             (packed ? " packed" : "") + " routing " + std::to_string(int(r)));
                auto x = random_floats(size_t(n * d), rng);
                auto ids = make_ids(r, n, k, n_exp, rng);
                auto wts = random_floats(size_t(n * k), rng, 0.0f, 1.0f);
                auto y0 = random_floats(size_t(n * d), rng);
                auto y = run_moe(ex, m, x, ids, wts, y0, k, 0, n, 0);
                std::vector<int64_t> all(static_cast<size_t>(n));
                std::iota(all.begin(), all.end(), 0);
                check_against_ref(m, act, x, ids, wts, y0, k, y, all, packed ? Path::TMM : Path::PROMPT);
            }
        }
    }
}

// A mixed step: its decode tokens equal an all-decode run and its prompt tokens an all-prompt
// run, bit for bit; and each prompt token equals itself alone (batch invariance of the path).
TEST(CudaMoe, MixedStepTakesEachTokensPath) {
    REQUIRE_GPU();
    std::mt19937 rng(36);
    // 7 decode tokens take the grouped kernels; 3 with the warp kernels forced take the fold
    // kernels (no grouping, combine in the down pass), the 87 prompt tokens the combine after;
    // then the same with packed experts, whose decode rows take the tensor cores (tmv.cuh).
    struct Case {
        int64_t n_dec;
        bool warp, packed;
    };
    for (const Case& cs :
         {Case{7, false, false}, Case{3, true, false}, Case{3, false, true}, Case{7, false, true}})
        for (GgmlType t : {GgmlType::MXFP4, GgmlType::Q8_0}) {
            const int64_t n_dec = cs.n_dec;
            SCOPED_TRACE(std::string(type_name(t)) + " n_dec " + std::to_string(n_dec) +
                         (cs.packed ? " packed" : ""));
            WarpKernels wk(cs.warp);
            const int64_t d = 128, n_ff = 96, n = 90;
            const int n_exp = 6, k = 2;
            const MoeData m = make_experts(t, d, n_ff, n_exp, true, 0.3f, rng);
            DevExperts ex(m, MoeAct::SWIGLU_OAI, cs.packed);
            auto x = random_floats(size_t(n * d), rng);
            auto ids = make_ids(Routing::RANDOM, n, k, n_exp, rng);
            auto wts = random_floats(size_t(n * k), rng, 0.0f, 1.0f);
            auto y0 = random_floats(size_t(n * d), rng);
            auto mixed = run_moe(ex, m, x, ids, wts, y0, k, 0, n, n_dec);
            auto dec = run_moe(ex, m, x, ids, wts, y0, k, 0, n);
            auto pr = run_moe(ex, m, x, ids, wts, y0, k, 0, n, 0);
            for (int64_t i = 0; i < n; ++i)
                for (int64_t c = 0; c < d; ++c) {
                    const float want = i < n_dec ? dec[size_t(i * d + c)] : pr[size_t(i * d + c)];
                    ASSERT_TRUE(same_value(mixed[size_t(i * d + c)], want) && !std::isnan(want))
                        << "token " << i << " col " << c;
                }
            for (int64_t i : {int64_t(7), int64_t(40), int64_t(89)}) {
                auto y1 = run_moe(ex, m, x, ids, wts, y0, k, i, 1, 0);
                for (int64_t c = 0; c < d; ++c)
                    ASSERT_TRUE(same_value(pr[size_t(i * d + c)], y1[size_t(c)])) << "alone, token " << i;
            }
        }
}

// An expert id outside [0, n_expert) cannot throw on the device: its token's row becomes NaN
// and the other tokens are untouched, on every path (grouped, folded, prompt).
TEST(CudaMoe, OutOfRangeExpertGivesNaN) {
    REQUIRE_GPU();
    std::mt19937 rng(37);
    const int64_t d = 128, n_ff = 96, n = 3;
    const int n_exp = 6, k = 2;
    const MoeData m = make_experts(GgmlType::MXFP4, d, n_ff, n_exp, true, 0.3f, rng);
    DevExperts plain(m, MoeAct::SWIGLU_OAI), packed(m, MoeAct::SWIGLU_OAI, true);
    auto x = random_floats(size_t(n * d), rng);
    auto wts = random_floats(size_t(n * k), rng, 0.1f, 1.0f);
    auto y0 = random_floats(size_t(n * d), rng);
    for (int32_t bad : {-1, n_exp, 1 << 20})
        for (int variant = 0; variant < 3; ++variant)  // CUDA cores, warp kernels, packed (tensor cores)
            for (int64_t n_decode : {kAllDecode, int64_t(0)}) {
                const bool warp = variant == 1;
                DevExperts& ex = variant == 2 ? packed : plain;
                SCOPED_TRACE("id " + std::to_string(bad) + (warp ? " warp" : "") +
                             (variant == 2 ? " packed" : "") + (n_decode ? "" : " prompt"));
                WarpKernels wk(warp);
                auto ids = make_ids(Routing::RANDOM, n, k, n_exp, rng);
                ids[size_t(1 * k + 1)] = bad;
                auto y = run_moe(ex, m, x, ids, wts, y0, k, 0, n, n_decode);
                for (int64_t c = 0; c < d; ++c) ASSERT_TRUE(std::isnan(y[size_t(d + c)])) << "col " << c;
                for (int64_t i : {int64_t(0), int64_t(2)}) {
                    auto y1 = run_moe(ex, m, x, ids, wts, y0, k, i, 1, n_decode == 0 ? 0 : kAllDecode);
                    for (int64_t c = 0; c < d; ++c)
                        ASSERT_TRUE(same_value(y[size_t(i * d + c)], y1[size_t(c)]) &&
                                    !std::isnan(y1[size_t(c)]))
                            << "token " << i << " col " << c;
                }
            }
}

// ---- The decode path on tensor cores (tmv.cuh): experts in the DEVICE layout, as loaded.

// Against the reference with tmv_error_bound: 1 and 4 tokens (the fold kernels), 5 and 13 (the
// grouped kernels; one expert's 39 pairs under ONE_EXPERT take passes of 8 and 4), both
// activations, with and without biases; n_ff = 160 has 5 blocks, so the last range is empty.
TEST(CudaMoeTmv, MatchesReference) {
    REQUIRE_GPU();
    std::mt19937 rng(41);
    for (GgmlType t : {GgmlType::MXFP4, GgmlType::Q8_0})
        for (MoeAct act : {MoeAct::SWIGLU_OAI, MoeAct::SWIGLU}) {
            const int64_t d = 96, n_ff = 160;
            const int n_exp = 8, k = 3;
            const bool biases = act == MoeAct::SWIGLU_OAI;
            const MoeData m = make_experts(t, d, n_ff, n_exp, biases, 0.3f, rng);
            DevExperts ex(m, act, true);
            for (int64_t n : {1, 4, 5, 13})
                for (Routing r : {Routing::RANDOM, Routing::ONE_EXPERT}) {
                    SCOPED_TRACE(std::string(type_name(t)) +
                                 (act == MoeAct::SWIGLU ? " swiglu" : " swiglu_oai") + " tokens " +
                                 std::to_string(n) + " routing " + std::to_string(int(r)));
                    auto x = random_floats(size_t(n * d), rng);
                    auto ids = make_ids(r, n, k, n_exp, rng);
                    auto wts = random_floats(size_t(n * k), rng, 0.0f, 1.0f);
                    auto y0 = random_floats(size_t(n * d), rng);
                    auto y = run_moe(ex, m, x, ids, wts, y0, k, 0, n);
                    std::vector<int64_t> all(static_cast<size_t>(n));
                    std::iota(all.begin(), all.end(), 0);
                    check_against_ref(m, act, x, ids, wts, y0, k, y, all, Path::TMV);
                }
        }
}

// Inputs of very different magnitudes per token (the split's exponent): 1e-30, 1, 3e4 and 1e30
// times the random rows, against the reference, on the decode and the prompt path.
TEST(CudaMoeTmv, ActivationScalesAndZeroRows) {
    REQUIRE_GPU();
    std::mt19937 rng(42);
    const int64_t d = 128, n_ff = 64, n = 5;
    const int n_exp = 4, k = 2;
    const MoeData m = make_experts(GgmlType::MXFP4, d, n_ff, n_exp, true, 0.3f, rng);
    DevExperts ex(m, MoeAct::SWIGLU_OAI, true);
    auto x = random_floats(size_t(n * d), rng);
    const float scale[n] = {1e-30f, 1.0f, 3e4f, 1e30f, 0.0f};
    for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < d; ++c) x[size_t(i * d + c)] *= scale[i];
    auto ids = make_ids(Routing::RANDOM, n, k, n_exp, rng);
    auto wts = random_floats(size_t(n * k), rng, 0.0f, 1.0f);
    auto y0 = random_floats(size_t(n * d), rng);
    for (int64_t n_decode : {kAllDecode, int64_t(0)}) {  // decode (tmv.cuh), prompt (tmm.cuh)
        SCOPED_TRACE(n_decode ? "decode" : "prompt");
        auto y = run_moe(ex, m, x, ids, wts, y0, k, 0, n, n_decode);
        check_against_ref(m, MoeAct::SWIGLU_OAI, x, ids, wts, y0, k, y, {0, 1, 2, 4},
                          n_decode ? Path::TMV : Path::TMM);
        // 1e30: the gate saturates at the clamp (limit 7), up too: finite outputs.
        for (int64_t c = 0; c < d; ++c) ASSERT_TRUE(std::isfinite(y[size_t(3 * d + c)])) << "col " << c;
    }
}

// Batch invariance on tensor cores: a batch of 37 (grouped, passes of 8) against each token
// alone (fold) and against batches of 3 (fold) and 9 (grouped), bit for bit.
void check_tmv_moe_batch_invariance(std::mt19937& rng) {
    for (GgmlType t : {GgmlType::MXFP4, GgmlType::Q8_0}) {
        SCOPED_TRACE(type_name(t));
        const int64_t d = 160, n_ff = 96, n = 37;  // down: 10 tiles of 16 rows
        const int n_exp = 6, k = 2;
        const MoeData m = make_experts(t, d, n_ff, n_exp, true, 0.3f, rng);
        DevExperts ex(m, MoeAct::SWIGLU_OAI, true);
        auto x = random_floats(size_t(n * d), rng);
        auto ids = make_ids(Routing::RANDOM, n, k, n_exp, rng);
        auto wts = random_floats(size_t(n * k), rng, 0.0f, 1.0f);
        auto y0 = random_floats(size_t(n * d), rng);
        auto y = run_moe(ex, m, x, ids, wts, y0, k, 0, n);
        for (int64_t i = 0; i < n; ++i) {
            auto y1 = run_moe(ex, m, x, ids, wts, y0, k, i, 1);
            for (int64_t c = 0; c < d; ++c)
                ASSERT_TRUE(same_value(y[size_t(i * d + c)], y1[size_t(c)]) && !std::isnan(y1[size_t(c)]))
                    << "token " << i << " col " << c;
        }
        for (int64_t first : {int64_t(0), int64_t(20)})
            for (int64_t len : {int64_t(3), int64_t(9)}) {
                auto yb = run_moe(ex, m, x, ids, wts, y0, k, first, len);
                for (int64_t i = 0; i < len; ++i)
                    for (int64_t c = 0; c < d; ++c)
                        ASSERT_TRUE(same_value(y[size_t((first + i) * d + c)], yb[size_t(i * d + c)]))
                            << "batch of " << len << " at " << first << ", token " << i << " col " << c;
            }
    }
}

TEST(CudaMoeTmv, BatchInvariantBitForBit) {
    REQUIRE_GPU();
    std::mt19937 rng(43);
    check_tmv_moe_batch_invariance(rng);
}

// gpt-oss-20b's expert shapes on tensor cores: 64 tokens, three checked against the reference and
// their solo runs on the decode and the prompt path; an out-of-range expert id gives its token
// NaN, the other tokens untouched.
TEST(CudaMoeTmv, GptOss20bShapeAndBadIds) {
    REQUIRE_GPU();
    std::mt19937 rng(44);
    const int64_t d = 2880, n_ff = 2880, n = 64;
    const int n_exp = 32, k = 4;
    const MoeData m = make_experts(GgmlType::MXFP4, d, n_ff, n_exp, true, 0.05f, rng);
    DevExperts ex(m, MoeAct::SWIGLU_OAI, true);
    auto x = random_floats(size_t(n * d), rng);
    auto ids = distinct_ids(n, k, n_exp, rng);
    auto wts = random_floats(size_t(n * k), rng, 0.0f, 0.5f);
    auto y0 = random_floats(size_t(n * d), rng);
    std::vector<float> y;  // the decode path (tmv.cuh), then the prompt path (tmm.cuh) on the same step
    ASSERT_NO_FATAL_FAILURE(
        check_both_paths(ex, m, x, ids, wts, y0, k, n, {0, 31, 63}, Path::TMV, Path::TMM, y));
    for (int32_t bad : {-1, n_exp})
        for (int64_t len : {int64_t(3), int64_t(9)}) {  // folded, grouped
            SCOPED_TRACE("id " + std::to_string(bad) + " tokens " + std::to_string(len));
            auto ids2 = ids;
            ids2[size_t(1 * k + 2)] = bad;
            auto yb = run_moe(ex, m, x, ids2, wts, y0, k, 0, len);
            for (int64_t c = 0; c < d; ++c) ASSERT_TRUE(std::isnan(yb[size_t(d + c)])) << "col " << c;
            for (int64_t i = 0; i < len; ++i)
                for (int64_t c = 0; i != 1 && c < d; ++c)
                    ASSERT_TRUE(same_value(yb[size_t(i * d + c)], y[size_t(i * d + c)])) << "token " << i;
        }
}

TEST(CudaMoe, ScratchSizing) {
    StepLimits dense;
    dense.max_tokens = 128, dense.n_embd = 64;
    EXPECT_EQ(moe_scratch_bytes(dense), 0u) << "a model without experts needs no MoE scratch";
    StepLimits l = dense;
    l.n_expert = 32, l.n_expert_used = 4, l.n_ff = 2880, l.n_embd = 2880;
    // at least G and O for every (token, choice) pair
    EXPECT_GE(moe_scratch_bytes(l), size_t(128 * 4) * (2880 + 2880) * sizeof(float));
}

TEST(CudaMoe, TooSmallScratchIsAnError) {
    REQUIRE_GPU();
    std::mt19937 rng(34);
    const MoeData m = make_experts(GgmlType::Q8_0, 64, 32, 4, false, 0.3f, rng);
    DevExperts ex(m, MoeAct::SWIGLU);
    DevBuf dx(64 * 4 * 2), dy(64 * 4 * 2), di(4 * 2 * 2), dw(4 * 2 * 2), scratch(256);
    try {
        moe_ffn(make_tensor(dy.get(), GgmlType::F32, 64, 2), make_tensor(dx.get(), GgmlType::F32, 64, 2),
                make_tensor(di.get(), GgmlType::I32, 2, 2), make_tensor(dw.get(), GgmlType::F32, 2, 2),
                ex.ffn, scratch.get(), 256, kAllDecode, nullptr);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::INTERNAL);
    }
}

}  // namespace
}  // namespace wo::cuda::test
