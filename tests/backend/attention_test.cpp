// kv_store + attention and make_kv_cache on every backend: GQA 64/8 heads of 64 and small
// shapes, sinks, sliding windows on ring caches whose positions wrap several times, several
// slots with a prefill chunk and decode tokens in one step; a double reference over the values
// the cache holds; batch invariance.
#include <map>

#include "backend/harness.h"

namespace wo::test {
namespace {

// What the cache holds for a value of this element type (the reference uses exactly that).
float stored(GgmlType t, float v) {
    if (t == GgmlType::F16) return quant::f16_to_f32(quant::f32_to_f16(v));
    if (t == GgmlType::BF16) return quant::bf16_to_f32(quant::f32_to_bf16(v));
    return v;
}

std::vector<float> download_cache(Backend& be, const Tensor& t) {
    const size_t n = static_cast<size_t>(t.ne[0] * t.ne[1] * t.ne[2]);
    std::vector<float> out(n);
    if (t.type == GgmlType::F32) {
        be.download(out.data(), t, n * 4);
        return out;
    }
    std::vector<uint16_t> h(n);
    be.download(h.data(), t, n * 2);
    for (size_t i = 0; i < n; ++i)
        out[i] = t.type == GgmlType::F16 ? quant::f16_to_f32(h[i]) : quant::bf16_to_f32(h[i]);
    return out;
}

struct Seq {
    int slot, first, count;
};

// A step's per-token tensors in backend memory, and its queries.
struct StepData {
    std::vector<int32_t> pos, slot;
    std::vector<float> q;
    Dev q_d, pos_d, slot_d, tok_d;
    int64_t n = 0;
};

// One attention layer's cache on a backend, with the host truth of every (slot, position) stored.
class Rig {
public:
    Rig(Backend& be, int n_head, int n_kv, int hd, int n_slots, int n_ctx, int max_step, int window, bool sinks)
        : be_(be), n_head_(n_head), n_kv_(n_kv), hd_(hd) {
        KvCacheDesc d;
        d.n_slots = n_slots, d.n_ctx = n_ctx, d.max_step_tokens = max_step;
        d.kv_dim = {n_kv * hd};
        d.window = {window};
        kv_ = be.make_kv_cache(d).at(0);
        p_ = AttnParams{n_head, n_kv, hd, static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd))), window, nullptr};
        if (sinks) {
            sinks_host_ = randn(static_cast<size_t>(n_head), 99, 1.5f);
            sinks_ = dev_f32(be, sinks_host_, n_head);
            p_.sinks = &sinks_.t;
        }
    }
    Rig(const Rig&) = delete;
    const KvLayer& kv() const { return kv_; }

    // Uploads the step's tokens and queries, and stores its keys and values.
    StepData store(const std::vector<Seq>& seqs, uint32_t seed) {
        StepData s;
        for (const Seq& q : seqs)
            for (int j = 0; j < q.count; ++j) s.pos.push_back(q.first + j), s.slot.push_back(q.slot);
        s.n = static_cast<int64_t>(s.pos.size());
        const int64_t kvd = static_cast<int64_t>(n_kv_) * hd_;
        s.q = randn(static_cast<size_t>(s.n * n_head_ * hd_), 3 * seed, 1.0f);
        // Keys with a common direction per head, so some scores are large and softmax is peaked.
        auto k = randn(static_cast<size_t>(s.n * kvd), 3 * seed + 1, 1.0f);
        for (size_t i = 0; i < k.size(); ++i) k[i] += (i % 7 == 0) ? 2.0f : 0.0f;
        const auto v = randn(static_cast<size_t>(s.n * kvd), 3 * seed + 2, 1.0f);
        s.q_d = dev_f32(be_, s.q, n_head_ * hd_, s.n);
        s.pos_d = dev_i32(be_, s.pos);
        s.slot_d = dev_i32(be_, s.slot);
        s.tok_d = dev_i32(be_, std::vector<int32_t>(static_cast<size_t>(s.n), 0));
        Dev kd = dev_f32(be_, k, kvd, s.n), vd = dev_f32(be_, v, kvd, s.n);
        be_.kv_store(kv_, kd.t, vd.t, s.pos_d.t, s.slot_d.t);
        for (int64_t i = 0; i < s.n; ++i) {
            auto& hk = k_[{s.slot[i], s.pos[i]}];
            auto& hv = v_[{s.slot[i], s.pos[i]}];
            hk.resize(static_cast<size_t>(kvd)), hv.resize(static_cast<size_t>(kvd));
            for (int64_t c = 0; c < kvd; ++c) {
                hk[c] = stored(kv_.k.type, k[static_cast<size_t>(i * kvd + c)]);
                hv[c] = stored(kv_.v.type, v[static_cast<size_t>(i * kvd + c)]);
            }
        }
        be_.sync();  // the host vectors k and v go away with this scope
        return s;
    }

    // Attention for tokens [i0, i0 + c) of a stored step (a sub-batch is described afresh).
    std::vector<float> attend(const StepData& s, int64_t i0, int64_t c) {
        std::vector<int32_t> seqs;  // rows of (slot, first position, count, first token index)
        for (int64_t i = i0; i < i0 + c; ++i) {
            if (i == i0 || s.slot[i] != s.slot[i - 1])
                seqs.insert(seqs.end(), {s.slot[i], s.pos[i], 0, static_cast<int32_t>(i - i0)});
            seqs[seqs.size() - 2] += 1;
        }
        const int64_t n_seq = static_cast<int64_t>(seqs.size() / 4);
        Dev sq(be_, GgmlType::I32, 4, n_seq);
        sq.upload(seqs);
        StepTensors st;
        st.n = c, st.n_seq = n_seq;
        st.tokens = s.tok_d.t.col_range(i0, c);
        st.pos = s.pos_d.t.col_range(i0, c);
        st.slot = s.slot_d.t.col_range(i0, c);
        st.seqs = sq.t;
        Dev out = dev_nan(be_, static_cast<int64_t>(n_head_) * hd_, c);
        be_.attention(out.t, s.q_d.t.row_range(i0, c), kv_, st, p_);
        return out.f32();
    }

    // The reference for tokens [i0, i0 + c) and the check of `got` against it.
    ::testing::AssertionResult check(const StepData& s, int64_t i0, int64_t c, const std::vector<float>& got) const {
        const bool half = kv_.k.type != GgmlType::F32;
        const double u_q = half ? kEps16 : 0.0;       // q rounded for an f16 tensor-core q·k
        const double u_p = half ? kEps16 : kEps32;    // softmax weights rounded for the p·v product
        const int group = n_head_ / n_kv_;
        const int64_t width = static_cast<int64_t>(n_head_) * hd_;
        std::vector<double> want, tol;
        for (int64_t i = i0; i < i0 + c; ++i)
            for (int h = 0; h < n_head_; ++h) {
                const int ps = s.pos[i], sl = s.slot[i];
                const int j0 = p_.window > 0 ? std::max(0, ps - p_.window + 1) : 0;
                const int64_t off = static_cast<int64_t>(h / group) * hd_;
                const float* q = s.q.data() + i * width + static_cast<int64_t>(h) * hd_;
                std::vector<double> sc, mag;
                double m = -INFINITY, delta = 0;
                for (int j = j0; j <= ps; ++j) {
                    const std::vector<float>& k = k_.at({sl, j});
                    double d = 0, a = 0;
                    for (int e = 0; e < hd_; ++e) {
                        const double pr = static_cast<double>(q[e]) * k[static_cast<size_t>(off + e)];
                        d += pr, a += std::fabs(pr);
                    }
                    d *= p_.scale, a *= p_.scale;
                    sc.push_back(d);
                    m = std::max(m, d);
                    delta = std::max(delta, a * (2 * std::sqrt(static_cast<double>(hd_)) * kEps32 + u_q) +
                                                kEps32 * std::fabs(d));
                }
                const double sink = p_.sinks ? sinks_host_[static_cast<size_t>(h)] : -INFINITY;
                m = std::max(m, sink);
                double z = p_.sinks ? std::exp(sink - m) : 0.0;
                for (double& v : sc) v = std::exp(v - m), z += v;
                const double len = static_cast<double>(sc.size());
                for (int e = 0; e < hd_; ++e) {
                    double o = 0, A = 0;
                    for (int j = j0; j <= ps; ++j) {
                        const double vj = v_.at({sl, j})[static_cast<size_t>(off + e)], pj = sc[j - j0] / z;
                        o += pj * vj, A += pj * std::fabs(vj);
                    }
                    want.push_back(o);
                    tol.push_back(A * (std::expm1(2 * delta) + (8 + 2 * std::sqrt(len)) * u_p) + 1e-37);
                }
            }
        return near_all(got, want, tol,
                        half ? "k/v stored in half precision (the reference uses those values); q and the softmax "
                               "weights may enter f16 products: rel 2^-11 on each score and weight"
                             : "fp32 q·k over head_dim (~2·sqrt(hd)·eps·Σ|q·k|); a score error Δ moves the softmax "
                               "weights by <= e^{2Δ}-1; fp32 sum of len weighted values (~2·sqrt(len)·eps)");
    }

    // Stores and attends a whole step, then checks it.
    // Stores a step, then checks its attention under each role split (Backend::set_decode_rows:
    // every row decode, every row prompt, the first row decode): a backend may run the roles on
    // different kernels (the CUDA one does), each must be right.
    void step(const std::vector<Seq>& seqs, uint32_t seed, const std::string& what) {
        const StepData s = store(seqs, seed);
        for (const int64_t n_dec : {INT64_MAX, int64_t(0), int64_t(1)}) {
            be_.set_decode_rows(n_dec);
            const auto got = attend(s, 0, s.n);
            EXPECT_TRUE(check(s, 0, s.n, got)) << what << ", decode rows " << (n_dec == INT64_MAX ? -1 : n_dec);
        }
        be_.set_decode_rows(INT64_MAX);
    }

private:
    Backend& be_;
    int n_head_, n_kv_, hd_;
    KvLayer kv_;
    AttnParams p_;
    std::vector<float> sinks_host_;
    Dev sinks_;
    std::map<std::pair<int, int>, std::vector<float>> k_, v_;  // (slot, pos) -> as stored
};

using Attention = BackendTest;
WO_ALL_BACKENDS(Attention);

// 2 query heads share 1 kv head (GQA), head_dim 2. Keys at pos 0, 1, 2; the query at pos 2.
struct AttnCase {
    std::vector<float> q{0, 0, 0, 0, 0, 0, 0, 0, 0.6931472f * 2, 0, 0, 1.0986123f * 2};
    std::vector<float> k{100, 0, 1, 0, 0, 1};
    std::vector<float> v{1000, 1000, 4, 0, 0, 8};
    std::vector<float> sinks{0.6931472f, 0.0f};
    AttnParams p{2, 1, 2, 0.5f, 2, nullptr};
    bool with_sinks = true;
    std::vector<float> out, kc, vc;  // results: attention output and the cache after the step
    void run(Backend& be) {
        KvCacheDesc d;
        d.n_slots = 1, d.n_ctx = 8, d.max_step_tokens = 3, d.kv_dim = {2}, d.window = {0};
        const KvLayer kv = be.make_kv_cache(d).at(0);
        Dev sd = dev_f32(be, sinks, 2);
        if (with_sinks) p.sinks = &sd.t;
        Dev qd = dev_f32(be, q, 4, 3), kd = dev_f32(be, k, 2, 3), vd = dev_f32(be, v, 2, 3);
        Dev pos = dev_i32(be, {0, 1, 2}), slot = dev_i32(be, {0, 0, 0}), tok = dev_i32(be, {0, 0, 0});
        Dev seqs(be, GgmlType::I32, 4, 1);
        seqs.upload(std::vector<int32_t>{0, 0, 3, 0});
        Dev o = dev_nan(be, 4, 3);
        be.kv_store(kv, kd.t, vd.t, pos.t, slot.t);
        StepTensors st;
        st.n = 3, st.n_seq = 1, st.tokens = tok.t, st.pos = pos.t, st.slot = slot.t, st.seqs = seqs.t;
        be.attention(o.t, qd.t, kv, st, p);
        out = o.f32();
        kc = download_cache(be, kv.k);
        vc = download_cache(be, kv.v);
        p.sinks = nullptr;
    }
};

TEST_P(Attention, WindowAndSinks) {
    AttnCase c;
    c.run(*be);
    // Window 2 hides key 0 from the query at pos 2. Head 0: scaled scores (ln2, 0), sink ln2
    // (unscaled): weights 2, 1 over 2+1+2 -> (2·v1 + v2)/5.
    EXPECT_NEAR(c.out[8], 1.6f, 1e-5);
    EXPECT_NEAR(c.out[9], 1.6f, 1e-5);
    // Head 1: scores (0, ln3), sink 0: weights 1, 3 over 1+3+1 -> (v1 + 3·v2)/5.
    EXPECT_NEAR(c.out[10], 0.8f, 1e-5);
    EXPECT_NEAR(c.out[11], 4.8f, 1e-5);
}

TEST_P(Attention, WithoutSinkOrWindow) {
    AttnCase c;
    c.p.window = 0;
    c.with_sinks = false;
    c.q[8] = 0;  // head 0 now scores key 0 at 0 too: uniform over 3 keys
    c.run(*be);
    EXPECT_NEAR(c.out[8], (1000 + 4 + 0) / 3.0f, 1e-3);
    EXPECT_NEAR(c.out[9], (1000 + 0 + 8) / 3.0f, 1e-3);
    // The first token sees only itself.
    EXPECT_NEAR(c.out[0], 1000, 1e-3);
    // The step's keys landed in the cache at their positions.
    EXPECT_EQ(c.kc[2 * 2 + 1], 1.0f);
    EXPECT_EQ(c.vc[2 * 1 + 0], 4.0f);
}

TEST_P(Attention, GqaPrefillChunkAndDecodeOfSeveralSlotsInOneStep) {
    Rig r(*be, 64, 8, 64, 3, 128, 40, 0, true);
    r.step({{0, 0, 33}}, 1, "prefill 33");
    r.step({{1, 0, 7}, {0, 33, 1}}, 2, "prefill 7 + decode");
    r.step({{0, 34, 1}, {1, 7, 1}, {2, 0, 5}}, 3, "two decodes + prefill 5");
    for (int t = 0; t < 3; ++t)
        r.step({{0, 35 + t, 1}, {1, 8 + t, 1}, {2, 5 + t, 1}}, 10 + t, "decode " + std::to_string(t));
}

TEST_P(Attention, SlidingWindowOnARingThatWraps) {
    // window 8, at most 5 tokens of a slot per step: a ring of 13 rows; slot 0 reaches position
    // 47 (three and a half turns), slot 1 lags behind, and some steps mix a chunk with a decode.
    Rig r(*be, 8, 2, 32, 2, 64, 5, 8, true);
    ASSERT_EQ(r.kv().n_rows, 13);
    int p0 = 0, p1 = 0;
    uint32_t seed = 20;
    while (p0 < 48) {
        const int c0 = p0 < 20 ? 5 : (p0 % 3 == 0 ? 3 : 1);
        std::vector<Seq> seqs = {{0, p0, c0}};
        if (seed % 2 == 0 && p1 < 30) {
            const int c1 = p1 < 10 ? 5 : 1;
            seqs.push_back({1, p1, c1});
            p1 += c1;
        }
        r.step(seqs, seed++, "slot 0 at " + std::to_string(p0));
        p0 += c0;
    }
}

TEST_P(Attention, GqaSlidingWindowWithSinksLikeGptOss) {
    Rig r(*be, 64, 8, 64, 2, 256, 8, 16, true);
    ASSERT_EQ(r.kv().n_rows, 24);
    r.step({{0, 0, 8}}, 1, "chunk");
    r.step({{0, 8, 8}, {1, 0, 3}}, 2, "chunk + chunk");
    for (int t = 0; t < 30; t += 3) r.step({{0, 16 + t, 3}, {1, 3 + t, 3}}, 3 + t, "past the window");
}

TEST_P(Attention, SmallShapes) {
    {
        Rig r(*be, 2, 2, 8, 1, 16, 16, 0, false);  // MHA, head_dim 8
        r.step({{0, 0, 5}}, 1, "MHA prefill");
        r.step({{0, 5, 1}}, 2, "MHA decode");
    }
    {
        Rig r(*be, 4, 1, 16, 2, 16, 4, 0, false);  // MQA
        r.step({{1, 0, 4}, {0, 0, 2}}, 3, "MQA");
        r.step({{0, 2, 1}, {1, 4, 1}}, 4, "MQA decode");
    }
    {
        Rig r(*be, 4, 2, 128, 1, 16, 4, 3, true);  // head_dim 128, window 3
        r.step({{0, 0, 4}}, 5, "hd 128");
        r.step({{0, 4, 4}}, 6, "hd 128 window");
    }
}

// A token's output must not depend on what else is in its step: decode tokens of 25 slots and a
// 7-token chunk of another (32 tokens), against each one alone and the chunk alone.
TEST_P(Attention, OneTokenAloneEqualsTheSameTokenInABatchOf32) {
    for (const int window : {0, 16}) {
        Rig r(*be, 16, 4, 64, 26, 64, 8, window, true);
        std::vector<int> len(26);
        uint32_t seed = 1;
        for (int s = 0; s < 26; ++s) {  // histories of different lengths, some past the window
            len[s] = 3 + (s * 7) % 29;
            for (int p = 0; p < len[s]; p += 8) r.store({{s, p, std::min(8, len[s] - p)}}, seed++);
        }
        std::vector<Seq> seqs;
        for (int s = 0; s < 25; ++s) seqs.push_back({s, len[s], 1});
        seqs.push_back({25, len[25], 7});
        const StepData st = r.store(seqs, 1000);
        ASSERT_EQ(st.n, 32);
        const auto all = r.attend(st, 0, 32);
        EXPECT_TRUE(r.check(st, 0, 32, all)) << "window " << window;
        const int64_t w = 16 * 64;
        for (const int64_t i : {0, 1, 12, 24}) {
            const auto one = r.attend(st, i, 1);
            EXPECT_TRUE(bits_equal(one, {all.begin() + i * w, all.begin() + (i + 1) * w}))
                << "window " << window << " token " << i;
        }
        const auto chunk = r.attend(st, 25, 7);
        EXPECT_TRUE(bits_equal(chunk, {all.begin() + 25 * w, all.end()})) << "window " << window << " chunk";
        // With roles, as the engine runs a mixed step: the 25 decode tokens lead and keep their
        // kernel, the chunk takes the prompt one, each equal to itself alone in its role.
        be->set_decode_rows(25);
        const auto mixed = r.attend(st, 0, 32);
        EXPECT_TRUE(r.check(st, 0, 32, mixed)) << "window " << window << " mixed roles";
        be->set_decode_rows(INT64_MAX);
        EXPECT_TRUE(bits_equal({mixed.begin(), mixed.begin() + 25 * w}, {all.begin(), all.begin() + 25 * w}))
            << "window " << window << " decode rows of the mixed step";
        be->set_decode_rows(0);
        const auto chunk_prompt = r.attend(st, 25, 7);
        be->set_decode_rows(INT64_MAX);
        EXPECT_TRUE(bits_equal(chunk_prompt, {mixed.begin() + 25 * w, mixed.end()}))
            << "window " << window << " prompt rows of the mixed step";
    }
}

// ---- make_kv_cache: ring sizes and the bytes it reports.
TEST_P(Attention, KvCacheRingSizesAndBytes) {
    KvCacheDesc d;
    d.n_slots = 3, d.n_ctx = 100, d.max_step_tokens = 16;
    d.kv_dim = {64, 512, 512, 64, 128};
    d.window = {0, 8, 128, 200, 84};
    const uint64_t before = be->kv_bytes();
    const auto layers = be->make_kv_cache(d);
    ASSERT_EQ(layers.size(), 5u);
    const int want_rows[] = {100, 24, 100, 100, 100};  // window + 16, at most n_ctx
    uint64_t bytes = 0;
    for (size_t i = 0; i < layers.size(); ++i) {
        const KvLayer& L = layers[i];
        EXPECT_EQ(L.n_rows, want_rows[i]) << i;
        EXPECT_TRUE(L.k.type == GgmlType::F32 || L.k.type == GgmlType::F16 || L.k.type == GgmlType::BF16) << i;
        EXPECT_EQ(L.v.type, L.k.type);
        for (const Tensor& t : {L.k, L.v}) {
            EXPECT_EQ(t.ne[0], d.kv_dim[i]);
            EXPECT_EQ(t.ne[1], L.n_rows);
            EXPECT_EQ(t.ne[2], 3);
        }
        bytes += 2 * tensor_bytes(L.k.type, d.kv_dim[i], L.n_rows, 3);
    }
    EXPECT_EQ(be->kv_bytes() - before, bytes);

    // max_step_tokens 0 still leaves the row a one-token step needs.
    KvCacheDesc one = d;
    one.max_step_tokens = 0;
    one.kv_dim = {64};
    one.window = {8};
    EXPECT_EQ(be->make_kv_cache(one).at(0).n_rows, 9);

    // gpt-oss-20b's shape: 24 layers, every other one a 128 window; 4096 context, 512-token steps.
    KvCacheDesc oss;
    oss.n_slots = 1, oss.n_ctx = 4096, oss.max_step_tokens = 512;
    for (int il = 0; il < 24; ++il) oss.kv_dim.push_back(512), oss.window.push_back(il % 2 == 0 ? 128 : 0);
    const uint64_t b0 = be->kv_bytes();
    const auto ol = be->make_kv_cache(oss);
    const uint64_t full = 24 * 2 * tensor_bytes(ol[0].k.type, 512, 4096, 1);
    EXPECT_EQ(be->kv_bytes() - b0, full / 2 + 12 * 2 * tensor_bytes(ol[0].k.type, 512, 640, 1));
}

}  // namespace
}  // namespace wo::test
