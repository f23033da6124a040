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

// RoPE parameters with their inv_freq table in backend memory: YaRN NEOX over the whole head
// (gpt-oss), or plain NORM over part of it (n_dims < head_dim: the rest passes through).
struct Rope {
    RopeParams p;
    Dev inv;
    Rope(Backend& be, int n_head, bool yarn) {
        p.head_dim = 64, p.n_head = n_head;
        if (yarn) {
            p.mode = RopeMode::NEOX, p.n_dims = 64, p.freq_base = 150000;
            p.scaling = RopeScaling::YARN, p.factor = 32, p.orig_ctx = 4096;
        } else {
            p.mode = RopeMode::NORM, p.n_dims = 32, p.freq_base = 10000;
        }
        const auto h = rope_inv_freq(p);
        inv = dev_f32(be, h, static_cast<int64_t>(h.size()));
        p.inv_freq = inv.t;
    }
};

struct AttnCase {
    GgmlType type;
    bool fused_qkv;
    bool rope_q, rope_k;
    bool yarn;   // else NORM over half the head
    int window;  // > 0: a sliding-window layer (a ring of window + max_step_tokens rows)
    std::string what;
};

constexpr int64_t kAllDecode = INT64_MAX;

// attn_in against matmul(s) + rope + kv_store, on two identical layers of one cache, with the
// step's first n_dec rows decode rows (the rest prompt rows).
void check_attn_in(Backend& be, const AttnCase& c, int64_t n_dec) {
    const std::string what = c.what + " (" + (n_dec == kAllDecode ? "all" : std::to_string(n_dec)) + " decode rows)";
    const int64_t d = 256, n_head = 8, n_kv = 2, hd = 64, q_w = n_head * hd, kv_w = n_kv * hd, n = 7;
    KvCacheDesc desc;
    desc.n_slots = 2, desc.n_ctx = 64, desc.max_step_tokens = 8;
    desc.kv_dim = {kv_w, kv_w};
    desc.window = {c.window, c.window};
    const auto layers = be.make_kv_cache(desc);
    for (const KvLayer& L : layers) {  // poison both caches the same way
        Dev view;
        view.be = &be;
        view.t = L.k;
        view.poison();
        view.t = L.v;
        view.poison();
    }
    const auto k_poisoned = raw(be, layers[0].k);
    Rope rq(be, static_cast<int>(n_head), c.yarn), rk(be, static_cast<int>(n_kv), c.yarn);
    auto wqkv = make_weight(be, c.type, d, q_w + 2 * kv_w, 1, 1);
    auto wq = make_weight(be, c.type, d, q_w, 1, 2), wk = make_weight(be, c.type, d, kv_w, 1, 3),
         wv = make_weight(be, c.type, d, kv_w, 1, 4);
    Dev bq = dev_f32(be, randn(q_w, 5), q_w), bk = dev_f32(be, randn(kv_w, 6), kv_w), bv = dev_f32(be, randn(kv_w, 7), kv_w);
    QkvWeights w;
    if (c.fused_qkv) {
        w.qkv = &wqkv->t;
    } else {
        w.q = &wq->t, w.k = &wk->t, w.v = &wv->t, w.q_b = &bq.t, w.k_b = &bk.t, w.v_b = &bv.t;
    }
    Dev x = dev_f32(be, randn(static_cast<size_t>(d * n), 8), d, n);
    // Decode-like rows of slot 1, then a prompt chunk of slot 0; on a window layer the positions
    // lie past the ring (12 rows), so the stores wrap.
    const std::vector<int32_t> pos = c.window > 0 ? std::vector<int32_t>{40, 41, 42, 43, 9, 10, 11}
                                                  : std::vector<int32_t>{5, 6, 7, 8, 0, 1, 2};
    const std::vector<int32_t> slot = {1, 1, 1, 1, 0, 0, 0};
    Dev posd = dev_i32(be, pos), slotd = dev_i32(be, slot), tok = dev_i32(be, std::vector<int32_t>(7, 0));
    Dev seqs(be, GgmlType::I32, 4, 2);
    seqs.upload(std::vector<int32_t>{1, pos[0], 4, 0, 0, pos[4], 3, 4});
    StepTensors st;
    st.n = n, st.n_seq = 2, st.tokens = tok.t, st.pos = posd.t, st.slot = slotd.t, st.seqs = seqs.t;

    // q, k, v: column ranges of one [q+k+v, n] buffer (what the fused path requires), poisoned.
    Dev a = dev_nan(be, q_w + 2 * kv_w, n), b = dev_nan(be, q_w + 2 * kv_w, n);
    auto split = [&](Dev& buf, int64_t i) {
        return i == 0 ? buf.t.col_range(0, q_w) : buf.t.col_range(q_w + (i - 1) * kv_w, kv_w);
    };
    be.set_decode_rows(n_dec);
    be.attn_in(split(a, 0), split(a, 1), split(a, 2), x.t, w, layers[0], st, c.rope_q ? &rq.p : nullptr,
               c.rope_k ? &rk.p : nullptr);
    // The composition, spelled out here.
    if (c.fused_qkv) {
        be.matmul(b.t, x.t, wqkv->t, nullptr);
    } else {
        be.matmul(split(b, 0), x.t, wq->t, &bq.t);
        be.matmul(split(b, 1), x.t, wk->t, &bk.t);
        be.matmul(split(b, 2), x.t, wv->t, &bv.t);
    }
    if (c.rope_q) be.rope(split(b, 0), posd.t, rq.p);
    if (c.rope_k) be.rope(split(b, 1), posd.t, rk.p);
    be.kv_store(layers[1], split(b, 1), split(b, 2), posd.t, slotd.t);
    be.set_decode_rows(kAllDecode);
    const auto fa = a.f32();
    for (float f : fa) ASSERT_FALSE(std::isnan(f)) << what << ": q/k/v not all written";
    EXPECT_TRUE(bits_equal(fa, b.f32())) << what << ": q|k|v";
    const auto ka = raw(be, layers[0].k), va = raw(be, layers[0].v);
    EXPECT_EQ(ka, raw(be, layers[1].k)) << what << ": cached keys";
    EXPECT_EQ(va, raw(be, layers[1].v)) << what << ": cached values";
    EXPECT_NE(ka, k_poisoned) << what << ": no key stored (the comparison above proves nothing)";
}

TEST_P(Fused, AttnInEqualsMatmulRopeKvStore) {
    const std::vector<AttnCase> cases = {
        {GgmlType::Q8_0, false, true, true, true, 0, "q/k/v with biases + YaRN"},
        {GgmlType::MXFP4, false, true, true, true, 0, "MXFP4 q/k/v"},
        {GgmlType::MXFP4, false, true, true, true, 4, "MXFP4 q/k/v, window layer (ring)"},
        {GgmlType::F16, true, true, true, true, 0, "fused qkv + rope"},
        {GgmlType::F32, false, true, true, false, 0, "NORM rope over half the head"},
        {GgmlType::F32, false, true, true, false, 4, "NORM rope over half the head, window layer"},
        {GgmlType::BF16, false, false, true, true, 0, "rope on k only (rq null)"},
        {GgmlType::Q8_0, false, true, false, true, 4, "rope on q only (rk null)"},
        {GgmlType::Q4_K, true, false, false, true, 0, "fused qkv, no rope (gpt2)"},
    };
    for (const AttnCase& c : cases)
        for (const int64_t n_dec : {kAllDecode, int64_t(0), int64_t(4), int64_t(1)}) check_attn_in(*be, c, n_dec);
}

// router_topk against matmul + topk_softmax: ids, weights and the logits (the model taps them),
// by weight type, expert count, bias and the decode/prompt split of the rows.
TEST_P(Fused, RouterTopkEqualsMatmulThenTopkSoftmax) {
    const int k = 4;
    const int64_t n = 33;
    for (const GgmlType type : {GgmlType::F32, GgmlType::BF16, GgmlType::Q8_0, GgmlType::MXFP4, GgmlType::Q4_K}) {
        const int64_t d = type == GgmlType::Q4_K ? 2816 : 2880;  // K types: whole 256-blocks
        Dev x = dev_f32(*be, randn(static_cast<size_t>(d * n), 3), d, n);
        for (const int64_t n_exp : {int64_t(32), int64_t(128), int64_t(5)}) {
            auto w = make_weight(*be, type, d, n_exp, 1, 1, 0.05f);
            Dev bias = dev_f32(*be, randn(static_cast<size_t>(n_exp), 2), n_exp);
            for (const bool with_bias : {true, false})
                for (const int64_t n_dec : {kAllDecode, int64_t(0), int64_t(5), int64_t(1)}) {
                    const std::string what = std::string(type_name(type)) + " " + std::to_string(n_exp) +
                                             " experts" + (with_bias ? " + bias, " : ", ") +
                                             (n_dec == kAllDecode ? "all" : std::to_string(n_dec)) + " decode rows";
                    const Tensor* b = with_bias ? &bias.t : nullptr;
                    Dev ids_a(*be, GgmlType::I32, k, n), ids_b(*be, GgmlType::I32, k, n);
                    ids_a.poison(), ids_b.poison();
                    Dev wa = dev_nan(*be, k, n), wb = dev_nan(*be, k, n), la = dev_nan(*be, n_exp, n),
                        lb = dev_nan(*be, n_exp, n);
                    be->set_decode_rows(n_dec);
                    // Twice: a fused kernel must leave whatever state it keeps ready for the next call.
                    for (int rep = 0; rep < 2; ++rep) be->router_topk(ids_a.t, wa.t, la.t, x.t, w->t, b, k);
                    be->matmul(lb.t, x.t, w->t, b);
                    be->topk_softmax(ids_b.t, wb.t, lb.t, k);
                    be->set_decode_rows(kAllDecode);
                    const auto ia = ids_a.i32();
                    for (int32_t e : ia) ASSERT_TRUE(e >= 0 && e < n_exp) << what << ": id " << e;
                    EXPECT_EQ(ia, ids_b.i32()) << what;
                    EXPECT_TRUE(bits_equal(wa.f32(), wb.f32())) << what << ": weights";
                    EXPECT_TRUE(bits_equal(la.f32(), lb.f32())) << what << ": logits";
                }
        }
    }
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
