// The CUDA backend's fused op attn_in (one rope + kv_store kernel after the projections) and
// router_topk (the default body's two ops) inside a captured step: graph replays must equal the
// composed primitives run eagerly, bit for bit, call after call. tests/backend/fused_test.cpp
// covers the shapes, weight types and decode/prompt splits on every backend.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "cuda_test_util.h"

namespace wo::test {
namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(CudaFused, ReplayedFusedOpsEqualEagerComposition) {
    REQUIRE_GPU();
    if (const char* g = std::getenv("WO_CUDA_GRAPHS"); g && std::string(g) == "0") GTEST_SKIP() << "graphs off";
    Pair P;
    Backend& g = *P.gpu;
    std::mt19937 rng(11);
    const int64_t d = 2880, n_exp = 32, n = 6, da = 256, n_head = 4, n_kv = 2, hd = 64;
    const int k = 4;
    // Router: F32 weight and bias as gpt-oss stores them.
    const auto wr = randn(size_t(d * n_exp), rng, 0.05f);
    const Tensor w_router = g.weight(wr.data(), GgmlType::F32, d, n_exp, 1, "router");
    Twin bias = P.f32(randn(size_t(n_exp), rng), n_exp);
    Twin x = P.f32(randn(size_t(d * n), rng), d, n);
    Twin ids_a = P.i32(std::vector<int32_t>(size_t(k * n), -1), k, n), ids_b = P.i32(std::vector<int32_t>(size_t(k * n), -1), k, n);
    Twin wa = P.nan(k, n), wb = P.nan(k, n), la = P.nan(n_exp, n), lb = P.nan(n_exp, n);
    // Attention input: separate q/k/v, YaRN-free NEOX rope, one window layer pair in the cache.
    const auto wq_h = randn(size_t(da * n_head * hd), rng, 0.1f), wk_h = randn(size_t(da * n_kv * hd), rng, 0.1f),
               wv_h = randn(size_t(da * n_kv * hd), rng, 0.1f);
    const Tensor wq = g.weight(wq_h.data(), GgmlType::F32, da, n_head * hd, 1, "q"),
                 wk = g.weight(wk_h.data(), GgmlType::F32, da, n_kv * hd, 1, "k"),
                 wv = g.weight(wv_h.data(), GgmlType::F32, da, n_kv * hd, 1, "v");
    QkvWeights qkv;
    qkv.q = &wq, qkv.k = &wk, qkv.v = &wv;
    Twin xa = P.f32(randn(size_t(da * n), rng), da, n);
    Twin qa = P.nan(n_head * hd, n), ka = P.nan(n_kv * hd, n), va = P.nan(n_kv * hd, n);
    Twin qb = P.nan(n_head * hd, n), kb = P.nan(n_kv * hd, n), vb = P.nan(n_kv * hd, n);
    KvCacheDesc desc;
    desc.n_slots = int(n), desc.n_ctx = 64, desc.max_step_tokens = 1;
    desc.kv_dim = {int(n_kv * hd), int(n_kv * hd)};
    desc.window = {8, 8};  // rings of 9 rows: positions below wrap
    const auto layers = g.make_kv_cache(desc);
    for (const KvLayer& L : layers) g.zero(L.k), g.zero(L.v);
    RopeParams rq;
    rq.mode = RopeMode::NEOX, rq.n_dims = int(hd), rq.head_dim = int(hd), rq.n_head = int(n_head), rq.freq_base = 150000;
    const auto inv = rope_inv_freq(rq);
    Twin inv_t = P.f32(inv, int64_t(inv.size()));
    rq.inv_freq = inv_t.g;
    RopeParams rk = rq;
    rk.n_head = int(n_kv);
    std::vector<int32_t> sl(size_t(n), 0), ps(size_t(n), 0);
    for (int64_t i = 0; i < n; ++i) sl[size_t(i)] = int32_t(i);
    Twin slot = P.i32(sl, n), pos = P.i32(ps, n), tok = P.i32(std::vector<int32_t>(size_t(n), 0), n);
    StepTensors st;
    st.n = n, st.n_seq = n, st.tokens = tok.g, st.pos = pos.g, st.slot = slot.g;

    auto raw = [&](const Tensor& t) {
        std::vector<uint8_t> v(tensor_bytes(t.type, t.ne[0], t.ne[1], t.ne[2]));
        g.download(v.data(), t, v.size());
        return v;
    };
    g.set_decode_rows(4);  // rows 4, 5 are prompt rows: both paths in one step
    for (int call = 0; call < 5; ++call) {  // warm-up, capture + launch, then replays
        const auto xv = randn(size_t(d * n), rng), xav = randn(size_t(da * n), rng);
        for (int64_t i = 0; i < n; ++i) ps[size_t(i)] = int32_t(3 * call + 7 * i);
        g.upload(x.g, xv.data(), xv.size() * 4);
        g.upload(xa.g, xav.data(), xav.size() * 4);
        g.upload(pos.g, ps.data(), ps.size() * 4);
        g.run_step(7, [&] {
            g.attn_in(qa.g, ka.g, va.g, xa.g, qkv, layers[0], st, &rq, &rk);
            for (int rep = 0; rep < 2; ++rep) g.router_topk(ids_a.g, wa.g, la.g, x.g, w_router, &bias.g, k);
        });
        g.matmul(qb.g, xa.g, wq, nullptr);
        g.matmul(kb.g, xa.g, wk, nullptr);
        g.matmul(vb.g, xa.g, wv, nullptr);
        g.rope(qb.g, pos.g, rq);
        g.rope(kb.g, pos.g, rk);
        g.kv_store(layers[1], kb.g, vb.g, pos.g, slot.g);
        g.matmul(lb.g, x.g, w_router, &bias.g);
        g.topk_softmax(ids_b.g, wb.g, lb.g, k);
        const auto ia = P.get_gpu<int32_t>(ids_a.g, size_t(k * n));
        for (int32_t e : ia) ASSERT_TRUE(e >= 0 && e < n_exp) << "call " << call << ": id " << e;
        EXPECT_EQ(ia, P.get_gpu<int32_t>(ids_b.g, size_t(k * n))) << "call " << call;
        EXPECT_TRUE(same_bits(P.rows_gpu(wa.g), P.rows_gpu(wb.g))) << "call " << call << ": weights";
        EXPECT_TRUE(same_bits(P.rows_gpu(la.g), P.rows_gpu(lb.g))) << "call " << call << ": logits";
        EXPECT_TRUE(same_bits(P.rows_gpu(qa.g), P.rows_gpu(qb.g))) << "call " << call << ": q";
        EXPECT_EQ(raw(layers[0].k), raw(layers[1].k)) << "call " << call << ": cached keys";
        EXPECT_EQ(raw(layers[0].v), raw(layers[1].v)) << "call " << call << ": cached values";
    }
    g.set_decode_rows(INT64_MAX);
    EXPECT_EQ(dynamic_cast<cuda::CudaBackend&>(g).graphs_captured(), 1);
}

}  // namespace
}  // namespace wo::test
