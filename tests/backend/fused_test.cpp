// The fused ops (attn_in, router_topk, rms_norm_matmul) on every backend equal their
// compositions of primitives bit for bit: a model must compute the same thing whether or not the
// backend fuses (the default bodies in backend.cpp are those compositions).
#include "backend/harness.h"

namespace wo::test {
namespace {

using Fused = BackendTest;
WO_ALL_BACKENDS(Fused);

std::vector<uint8_t> raw(Backend& be, const Tensor& t) {
    std::vector<uint8_t> v(tensor_bytes(t.type, t.ne[0], t.ne[1], t.ne[2]));
    be.download(v.data(), t, v.size());
    return v;
}

struct Yarn {
    RopeParams p;
    Dev inv;
    Yarn(Backend& be, int n_head) {
        p.mode = RopeMode::NEOX, p.n_dims = 64, p.head_dim = 64, p.n_head = n_head, p.freq_base = 150000;
        p.scaling = RopeScaling::YARN, p.factor = 32, p.orig_ctx = 4096;
        const auto h = rope_inv_freq(p);
        inv = dev_f32(be, h, static_cast<int64_t>(h.size()));
        p.inv_freq = inv.t;
    }
};

// attn_in against matmul(s) + rope + kv_store, on two identical layers of one cache.
void check_attn_in(Backend& be, GgmlType type, bool fused_qkv, bool with_rope, const std::string& what) {
    const int64_t d = 256, n_head = 8, n_kv = 2, hd = 64, q_w = n_head * hd, kv_w = n_kv * hd, n = 7;
    KvCacheDesc desc;
    desc.n_slots = 2, desc.n_ctx = 64, desc.max_step_tokens = 8;
    desc.kv_dim = {kv_w, kv_w};
    desc.window = {0, 0};
    const auto layers = be.make_kv_cache(desc);
    for (const KvLayer& L : layers) {  // poison both caches the same way
        Dev view;
        view.be = &be;
        view.t = L.k;
        view.poison();
        view.t = L.v;
        view.poison();
    }
    Yarn rq(be, static_cast<int>(n_head)), rk(be, static_cast<int>(n_kv));
    auto wqkv = make_weight(be, type, d, q_w + 2 * kv_w, 1, 1);
    auto wq = make_weight(be, type, d, q_w, 1, 2), wk = make_weight(be, type, d, kv_w, 1, 3),
         wv = make_weight(be, type, d, kv_w, 1, 4);
    Dev bq = dev_f32(be, randn(q_w, 5), q_w), bk = dev_f32(be, randn(kv_w, 6), kv_w), bv = dev_f32(be, randn(kv_w, 7), kv_w);
    QkvWeights w;
    if (fused_qkv) {
        w.qkv = &wqkv->t;
    } else {
        w.q = &wq->t, w.k = &wk->t, w.v = &wv->t, w.q_b = &bq.t, w.k_b = &bk.t, w.v_b = &bv.t;
    }
    Dev x = dev_f32(be, randn(static_cast<size_t>(d * n), 8), d, n);
    const std::vector<int32_t> pos = {5, 6, 7, 8, 0, 1, 2}, slot = {1, 1, 1, 1, 0, 0, 0};
    Dev posd = dev_i32(be, pos), slotd = dev_i32(be, slot), tok = dev_i32(be, std::vector<int32_t>(7, 0));
    Dev seqs(be, GgmlType::I32, 4, 2);
    seqs.upload(std::vector<int32_t>{1, 5, 4, 0, 0, 0, 3, 4});
    StepTensors st;
    st.n = n, st.n_seq = 2, st.tokens = tok.t, st.pos = posd.t, st.slot = slotd.t, st.seqs = seqs.t;

    // q, k, v: column ranges of one [q+k+v, n] buffer (what the fused path requires), poisoned.
    Dev a = dev_nan(be, q_w + 2 * kv_w, n), b = dev_nan(be, q_w + 2 * kv_w, n);
    auto split = [&](Dev& buf, int64_t i) {
        return i == 0 ? buf.t.col_range(0, q_w) : buf.t.col_range(q_w + (i - 1) * kv_w, kv_w);
    };
    be.attn_in(split(a, 0), split(a, 1), split(a, 2), x.t, w, layers[0], st, with_rope ? &rq.p : nullptr,
               with_rope ? &rk.p : nullptr);
    // The composition, spelled out here.
    if (fused_qkv) {
        be.matmul(b.t, x.t, wqkv->t, nullptr);
    } else {
        be.matmul(split(b, 0), x.t, wq->t, &bq.t);
        be.matmul(split(b, 1), x.t, wk->t, &bk.t);
        be.matmul(split(b, 2), x.t, wv->t, &bv.t);
    }
    if (with_rope) {
        be.rope(split(b, 0), posd.t, rq.p);
        be.rope(split(b, 1), posd.t, rk.p);
    }
    be.kv_store(layers[1], split(b, 1), split(b, 2), posd.t, slotd.t);
    const auto fa = a.f32();
    for (float f : fa) ASSERT_FALSE(std::isnan(f)) << what << ": q/k/v not all written";
    EXPECT_TRUE(bits_equal(fa, b.f32())) << what << ": q|k|v";
    EXPECT_EQ(raw(be, layers[0].k), raw(be, layers[1].k)) << what << ": cached keys";
    EXPECT_EQ(raw(be, layers[0].v), raw(be, layers[1].v)) << what << ": cached values";
}

TEST_P(Fused, AttnInEqualsMatmulRopeKvStore) {
    check_attn_in(*be, GgmlType::Q8_0, false, true, "q/k/v with biases + YaRN");
    check_attn_in(*be, GgmlType::MXFP4, false, true, "MXFP4 q/k/v");
    check_attn_in(*be, GgmlType::F16, true, true, "fused qkv + rope");
    check_attn_in(*be, GgmlType::Q4_K, true, false, "fused qkv, no rope (gpt2)");
}

TEST_P(Fused, RouterTopkEqualsMatmulThenTopkSoftmax) {
    const int64_t d = 2880, n_exp = 32, n = 33;
    const int k = 4;
    auto w = make_weight(*be, GgmlType::F32, d, n_exp, 1, 1);
    Dev bias = dev_f32(*be, randn(n_exp, 2), n_exp), x = dev_f32(*be, randn(static_cast<size_t>(d * n), 3), d, n);
    Dev ids_a(*be, GgmlType::I32, k, n), ids_b(*be, GgmlType::I32, k, n);
    ids_a.poison(), ids_b.poison();
    Dev wa = dev_nan(*be, k, n), wb = dev_nan(*be, k, n), la = dev_nan(*be, n_exp, n), lb = dev_nan(*be, n_exp, n);
    be->router_topk(ids_a.t, wa.t, la.t, x.t, w->t, &bias.t, k);
    be->matmul(lb.t, x.t, w->t, &bias.t);
    be->topk_softmax(ids_b.t, wb.t, lb.t, k);
    const auto ia = ids_a.i32();
    for (int32_t e : ia) ASSERT_TRUE(e >= 0 && e < n_exp) << e;
    EXPECT_EQ(ia, ids_b.i32());
    EXPECT_TRUE(bits_equal(wa.f32(), wb.f32()));
}

TEST_P(Fused, RmsNormMatmulEqualsRmsNormThenMatmul) {
    for (const GgmlType type : {GgmlType::F32, GgmlType::Q8_0, GgmlType::Q6_K, GgmlType::MXFP4}) {
        const int64_t d = 512, n_out = 67, n = 7;
        auto w = make_weight(*be, type, d, n_out, 1, 4);
        Dev norm = dev_f32(*be, randn(d, 5, 0.1f, 1.0f), d), x = dev_f32(*be, randn(static_cast<size_t>(d * n), 6), d, n);
        Dev bias = dev_f32(*be, randn(n_out, 7), n_out);
        for (const bool with_bias : {false, true}) {
            Dev ya = dev_nan(*be, d, n), yb = dev_nan(*be, d, n), oa = dev_nan(*be, n_out, n), ob = dev_nan(*be, n_out, n);
            be->rms_norm_matmul(oa.t, ya.t, x.t, norm.t, 1e-5f, w->t, with_bias ? &bias.t : nullptr);
            be->rms_norm(yb.t, x.t, norm.t, 1e-5f);
            be->matmul(ob.t, yb.t, w->t, with_bias ? &bias.t : nullptr);
            const auto o = oa.f32();
            for (float f : o) ASSERT_FALSE(std::isnan(f));
            EXPECT_TRUE(bits_equal(ya.f32(), yb.f32())) << type_name(type) << ": the normalized rows";
            EXPECT_TRUE(bits_equal(o, ob.f32())) << type_name(type) << (with_bias ? " bias" : "");
        }
    }
}

}  // namespace
}  // namespace wo::test
