// Element-wise, norm, RoPE, router and token ops of the CUDA backend against the CPU reference:
// fresh random inputs, NaN-poisoned outputs, odd and real shapes, one error bound per op (with
// the reason next to it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/check.h"
#include "cuda_test_util.h"

namespace wo::test {
namespace {

const int64_t kRows[] = {1, 7, 128, 2048};
const int64_t kWidths[] = {2880, 1001};  // gpt-oss n_embd, and odd

TEST(CudaOps, RmsNormMatchesCpu) {
    REQUIRE_GPU();
    Pair P;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (int64_t d : kWidths)
        for (int64_t n : kRows) {
            Twin x = P.f32(randn(d * n, rng, 3.0f), d, n), w = P.f32(randn(d, rng), d), y = P.nan(d, n);
            P.cpu->rms_norm(y.c, x.c, w.c, 1e-5f);
            P.gpu->rms_norm(y.g, x.g, w.g, 1e-5f);
            // Both sum squares in double; only the float rounding of 1/rms and the two products
            // can differ (a few ulp).
            expect_close(P.rows_gpu(y.g), P.rows_cpu(y.c), 1e-6, 1e-30, "rms_norm " + std::to_string(n));
        }
}

// WO_CUDA_SKIP (a timing diagnostic) drops the named kernels' launches and nothing else: with
// rms_norm_k listed the output keeps its poison while add_k still runs; with the list restored
// rms_norm writes it again.
TEST(CudaOps, SkippedLaunchesLeaveTheirOutputs) {
    REQUIRE_GPU();
    Pair P;
    std::mt19937 rng(7);
    const int64_t d = 64, n = 3;
    Twin x = P.f32(randn(d * n, rng), d, n), w = P.f32(randn(d, rng), d), y = P.nan(d, n);
    Twin a = P.f32(randn(d * n, rng), d, n), b = P.f32(randn(d * n, rng), d, n);
    const std::string old = cuda::set_launch_skip("tmv_split_kernel,rms_norm_k");
    EXPECT_TRUE(cuda::launch_skipped("rms_norm_k"));
    EXPECT_FALSE(cuda::launch_skipped("rms_norm"));
    P.gpu->rms_norm(y.g, x.g, w.g, 1e-5f);
    P.gpu->add(a.g, b.g);
    P.cpu->add(a.c, b.c);
    for (float v : P.rows_gpu(y.g)) ASSERT_TRUE(std::isnan(v));
    expect_close(P.rows_gpu(a.g), P.rows_cpu(a.c), 0, 0, "add");
    EXPECT_EQ(cuda::set_launch_skip(old), "tmv_split_kernel,rms_norm_k");
    EXPECT_FALSE(cuda::launch_skipped("rms_norm_k"));
    P.gpu->rms_norm(y.g, x.g, w.g, 1e-5f);
    for (float v : P.rows_gpu(y.g)) ASSERT_FALSE(std::isnan(v));
}

TEST(CudaOps, LayerNormMatchesCpu) {
    REQUIRE_GPU();
    Pair P;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (int64_t d : kWidths)
        for (int64_t n : kRows) {
            std::vector<float> xv = randn(d * n, rng, 2.0f);
            for (float& v : xv) v += 1.5f;  // a mean to subtract
            Twin x = P.f32(xv, d, n), w = P.f32(randn(d, rng), d), b = P.f32(randn(d, rng), d),
                 y = P.nan(d, n);
            P.cpu->layer_norm(y.c, x.c, w.c, b.c, 1e-5f);
            P.gpu->layer_norm(y.g, x.g, w.g, b.g, 1e-5f);
            // Mean and variance in double on both; the float products and the bias add round
            // alike, so a few ulp of the O(1) terms.
            expect_close(P.rows_gpu(y.g), P.rows_cpu(y.c), 1e-6, 1e-6, "layer_norm " + std::to_string(n));
        }
}

TEST(CudaOps, AddAndGetRowsAreExactOnStridedViews) {
    REQUIRE_GPU();
    Pair P;
    std::mt19937 rng(fresh_seed());
    for (int64_t n : kRows) {
        // y is a column range of a wider buffer (the strided views the models pass).
        Twin wide = P.f32(randn(3000 * n, rng), 3000, n), x = P.f32(randn(1001 * n, rng), 1001, n);
        Tensor yc = wide.c.col_range(1000, 1001), yg = wide.g.col_range(1000, 1001);
        P.cpu->add(yc, x.c);
        P.gpu->add(yg, x.g);
        // One float add per element: bit-identical.
        EXPECT_EQ(P.rows_gpu(wide.g), P.rows_cpu(wide.c)) << "add " << n;
        std::vector<int32_t> idx(static_cast<size_t>(n));
        for (auto& i : idx) i = static_cast<int32_t>(rng() % n);
        Twin ix = P.i32(idx, n), out = P.nan(1001, n);
        P.cpu->get_rows(out.c, yc, ix.c);
        P.gpu->get_rows(out.g, yg, ix.g);
        EXPECT_EQ(P.rows_gpu(out.g), P.rows_cpu(out.c)) << "get_rows " << n;  // copies: exact
    }
}

TEST(CudaOps, ActivationsMatchCpu) {
    REQUIRE_GPU();
    Pair P;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (int64_t n : kRows) {
        const int64_t d = 2880;
        std::vector<float> g = randn(d * n, rng, 4.0f), u = randn(d * n, rng, 4.0f);
        g[0] = std::nanf(""), u[1] = std::nanf("");  // NaN flows through as on the CPU
        Twin G = P.f32(g, d, n), U = P.f32(u, d, n), y1 = P.nan(d, n), y2 = P.nan(d, n);
        P.cpu->swiglu(y1.c, G.c, U.c);
        P.gpu->swiglu(y1.g, G.g, U.g);
        // expf differs by <= 2 ulp between CUDA and glibc; the divide and product add 1 ulp each.
        expect_close(P.rows_gpu(y1.g), P.rows_cpu(y1.c), 1e-6, 1e-30, "swiglu");
        P.cpu->swiglu_oai(y2.c, G.c, U.c, 1.702f, 7.0f);
        P.gpu->swiglu_oai(y2.g, G.g, U.g, 1.702f, 7.0f);
        expect_close(P.rows_gpu(y2.g), P.rows_cpu(y2.c), 1e-6, 1e-30, "swiglu_oai");  // same reason
        Twin x = P.f32(g, d, n);
        P.cpu->gelu(x.c);
        P.gpu->gelu(x.g);
        // tanhf differs by <= 2 ulp; where 1 + tanh cancels (v << 0) that is 2 ulp of 1 times
        // |v|/2 <= 10 absolute.
        expect_close(P.rows_gpu(x.g), P.rows_cpu(x.c), 1e-6, 3e-6, "gelu");
    }
}

TEST(CudaOps, RopeMatchesCpu) {
    REQUIRE_GPU();
    Pair P;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    struct Case {
        RopeMode mode;
        RopeScaling scaling;
        int n_dims, head_dim, n_head;
        float base;
    };
    const Case cases[] = {{RopeMode::NEOX, RopeScaling::YARN, 64, 64, 64, 150000.0f},    // gpt-oss
                          {RopeMode::NORM, RopeScaling::NONE, 128, 128, 32, 500000.0f},  // llama
                          {RopeMode::NEOX, RopeScaling::LINEAR, 32, 80, 5, 10000.0f}};  // partial rotary, odd
    for (const Case& c : cases)
        for (int64_t n : kRows) {
            RopeParams p;
            p.mode = c.mode, p.scaling = c.scaling, p.n_dims = c.n_dims, p.head_dim = c.head_dim,
            p.n_head = c.n_head;
            p.freq_base = c.base, p.factor = c.scaling == RopeScaling::NONE ? 1.0f : 32.0f, p.orig_ctx = 4096;
            const std::vector<float> inv = rope_inv_freq(p);
            Twin f = P.f32(inv, static_cast<int64_t>(inv.size()));
            const int64_t w = static_cast<int64_t>(c.head_dim) * c.n_head + 7;  // wider than the heads
            std::vector<int32_t> pos(static_cast<size_t>(n));
            for (auto& q : pos) q = static_cast<int32_t>(rng() % 131072);
            Twin ps = P.i32(pos, n), x = P.f32(randn(w * n, rng), w, n);
            RopeParams pc = p, pg = p;
            pc.inv_freq = f.c, pg.inv_freq = f.g;
            P.cpu->rope(x.c, ps.c, pc);
            P.gpu->rope(x.g, ps.g, pg);
            // Same f32 angle on both; cosf/sinf differ by <= 2 ulp and the GPU may fuse the
            // rotation into an FMA: a few ulp of |a|+|b| for N(0,1) inputs.
            expect_close(P.rows_gpu(x.g), P.rows_cpu(x.c), 1e-6, 2e-6, "rope " + std::to_string(n));
        }
}

TEST(CudaOps, TopkSoftmaxMatchesCpuWithTiesAndNaN) {
    REQUIRE_GPU();
    Pair P;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (int n_exp : {32, 128, 7})
        for (int k : {1, 4, 7})
            for (int64_t n : kRows) {
                if (k > n_exp) continue;
                std::vector<float> l = randn(n_exp * n, rng, 2.0f);
                for (size_t i = 0; i < l.size(); ++i) {
                    if (rng() % 5 == 0) l[i] = std::round(l[i]);  // ties between experts
                    if (rng() % 17 == 0) l[i] = std::nanf("");    // NaN ranks last
                }
                Twin L = P.f32(l, n_exp, n), W = P.nan(k, n);
                std::vector<int32_t> minus(static_cast<size_t>(k * n), -7);
                Twin I = P.i32(minus, k, n);
                P.cpu->topk_softmax(I.c, W.c, L.c, k);
                P.gpu->topk_softmax(I.g, W.g, L.g, k);
                std::vector<int32_t> ic(static_cast<size_t>(k * n));
                P.cpu->download(ic.data(), I.c, ic.size() * 4);
                EXPECT_EQ(P.get_gpu<int32_t>(I.g, ic.size()), ic)
                    << n_exp << " experts, k " << k << ", " << n;
                // expf <= 2 ulp apart, k terms summed in the same order, one divide.
                expect_close(P.rows_gpu(W.g), P.rows_cpu(W.c), 2e-6, 1e-30, "topk weights");
            }
}

TEST(CudaOps, ResolveTokensMatchesCpu) {
    REQUIRE_GPU();
    Pair P;
    std::mt19937 rng(fresh_seed());
    const int n_slots = 5, n_ctx = 64, n = 9;
    std::vector<int32_t> last = {11, 22, 33, 44, 55}, hist(n_slots * n_ctx, -3);
    std::vector<int32_t> in(n), pos(n), slot(n);
    for (int i = 0; i < n; ++i) {
        in[i] = rng() % 2 ? -1 : static_cast<int32_t>(rng() % 1000);
        slot[i] = i % n_slots;
        pos[i] = static_cast<int32_t>(i / n_slots * 7 + 3);
    }
    Twin L = P.i32(last, n_slots), H = P.i32(hist, n_ctx, n_slots), I = P.i32(in, n), Ps = P.i32(pos, n),
         S = P.i32(slot, n), T = P.i32(std::vector<int32_t>(n, -9), n);
    SlotState sc{L.c, H.c, {}}, sg{L.g, H.g, {}};
    P.cpu->resolve_tokens(T.c, I.c, Ps.c, S.c, sc);
    P.gpu->resolve_tokens(T.g, I.g, Ps.g, S.g, sg);
    std::vector<int32_t> tc(n), hc(hist.size());
    P.cpu->download(tc.data(), T.c, n * 4);
    P.cpu->download(hc.data(), H.c, hc.size() * 4);
    EXPECT_EQ(P.get_gpu<int32_t>(T.g, n), tc);
    EXPECT_EQ(P.get_gpu<int32_t>(H.g, hist.size()), hc);
}

}  // namespace
}  // namespace wo::test
