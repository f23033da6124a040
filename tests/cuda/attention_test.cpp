// kv_store + attention of the CUDA backend (F16 cache) against the CPU reference (F32 cache fed
// the same F16-rounded keys and values), over multi-step schedules: prefill chunks, batched
// decode, sliding-window rings smaller than the context, sinks, GQA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cuda_test_util.h"
#include "quant/fp16.h"

namespace wo::test {
namespace {

struct AttnCase {
    const char* name;
    int n_head, n_kv, hd, window;
    bool sinks;
    int n_ctx, max_step;
    std::vector<int> lens;  // tokens per slot over the whole run
    int chunk;              // most tokens of one slot per step
    int decode = 3;         // then this many steps of one token per slot (batched decode)
};

float f16_round(float v) { return quant::f16_to_f32(quant::f32_to_f16(v)); }

void run_case(const AttnCase& c) {
    Pair P;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE(std::string(c.name) + ", seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int n_slots = static_cast<int>(c.lens.size()), kv_dim = c.n_kv * c.hd, qd = c.n_head * c.hd;
    KvCacheDesc d;
    d.n_slots = n_slots, d.n_ctx = c.n_ctx, d.max_step_tokens = c.max_step;
    d.kv_dim = {kv_dim};
    d.window = {c.window};
    const KvLayer kc = P.cpu->make_kv_cache(d)[0], kg = P.gpu->make_kv_cache(d)[0];
    // Split-KV scratch as the engine reserves it, so head_dim 64 takes the decode kernel on tensor
    // cores (attention_mma.cu). It holds max_step rows: steps of several slots have more decode
    // rows than that and go through it in batches, which must not change a row's bits.
    StepLimits lim;
    lim.max_tokens = lim.max_out_rows = c.max_step, lim.max_width = qd;
    P.gpu->reserve_scratch(lim);
    ASSERT_EQ(kc.n_rows, kg.n_rows);
    ASSERT_EQ(kg.k.type, GgmlType::F16);
    if (c.window > 0) {
        ASSERT_LT(kg.n_rows, c.n_ctx) << "the ring must be smaller than the context";
    }
    for (const KvLayer& L : {kc, kg}) {  // rows never written compare equal at the end
        Backend& b = L.k.type == GgmlType::F16 ? *P.gpu : *P.cpu;
        b.zero(L.k);
        b.zero(L.v);
    }
    Twin sinks = P.f32(randn(c.n_head, rng, 2.0f), c.n_head);
    AttnParams ap;
    ap.n_head = c.n_head, ap.n_head_kv = c.n_kv, ap.head_dim = c.hd, ap.window = c.window;
    ap.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    std::vector<int> done(static_cast<size_t>(n_slots), 0), lens = c.lens;
    int decode_left = c.decode;
    for (int step = 0;; ++step) {
        std::vector<int32_t> pos, slot, seqs;
        for (int s = 0; s < n_slots; ++s) {
            const int m = std::min(c.chunk, lens[static_cast<size_t>(s)] - done[static_cast<size_t>(s)]);
            if (m <= 0) continue;
            seqs.insert(seqs.end(), {s, done[static_cast<size_t>(s)], m, static_cast<int32_t>(pos.size())});
            for (int j = 0; j < m; ++j) pos.push_back(done[static_cast<size_t>(s)] + j), slot.push_back(s);
            done[static_cast<size_t>(s)] += m;
        }
        if (pos.empty()) {
            if (decode_left-- == 0) break;
            for (int& l : lens) ++l;
            continue;
        }
        const int64_t n = static_cast<int64_t>(pos.size());
        std::vector<float> k = randn(kv_dim * n, rng), v = randn(kv_dim * n, rng), kr = k, vr = v;
        for (float& x : kr) x = f16_round(x);  // the CPU reference sees what the F16 cache holds
        for (float& x : vr) x = f16_round(x);
        Twin Kc = P.f32(kr, kv_dim, n), Vc = P.f32(vr, kv_dim, n), Kg = P.f32(k, kv_dim, n),
             Vg = P.f32(v, kv_dim, n);
        Twin Ps = P.i32(pos, n), Sl = P.i32(slot, n),
             Sq = P.i32(seqs, 4, static_cast<int64_t>(seqs.size() / 4));
        Twin Q = P.f32(randn(qd * n, rng, 2.0f), qd, n), O = P.nan(qd, n);
        StepTensors sc, sg;
        sc.n = sg.n = n;
        sc.n_seq = sg.n_seq = static_cast<int64_t>(seqs.size() / 4);
        sc.pos = Ps.c, sc.slot = Sl.c, sc.seqs = Sq.c;
        sg.pos = Ps.g, sg.slot = Sl.g, sg.seqs = Sq.g;
        P.cpu->kv_store(kc, Kc.c, Vc.c, Ps.c, Sl.c);
        P.gpu->kv_store(kg, Kg.g, Vg.g, Ps.g, Sl.g);
        AttnParams pc = ap, pg = ap;
        if (c.sinks) pc.sinks = &sinks.c, pg.sinks = &sinks.g;
        P.cpu->attention(O.c, Q.c, kc, sc, pc);
        // f32 softmax computed two ways (online rescaling per 128 keys vs max-then-sum), expf
        // ulps and summation order over up to n_ctx keys: ~1e-6 relative on each weight, on
        // outputs that are convex mixtures of N(0,1) values. Every row as a decode row (16 warps
        // per head), then as a prompt row (8 warps).
        for (const int64_t n_dec : {INT64_MAX, int64_t(0)}) {
            P.gpu->set_decode_rows(n_dec);
            P.gpu->attention(O.g, Q.g, kg, sg, pg);
            const auto got = P.rows_gpu(O.g);
            // Decode rows on tensor cores (head_dim 64) leave the split of their output for the
            // product after them (the merge's split, tmv_split's bits).
            if (n_dec != 0 && c.hd == 64 && c.n_head / c.n_kv <= 16 && n <= std::min(c.max_step, 256) &&
                !std::getenv("WO_CUDA_NORM_SPLIT") &&
                !std::getenv("WO_CUDA_FA") && !std::getenv("WO_CUDA_TMV"))
                expect_product_reads_the_split(P, O.g, qd, n, rng, "attention step " + std::to_string(step));
            expect_close(
                got, P.rows_cpu(O.c), 1e-5, 2e-5,
                "attention step " + std::to_string(step) + (n_dec == 0 ? ", prompt rows" : ", decode rows"));
            // The step's last row alone gives the same bits in its role (batch invariance).
            StepTensors one = sg;
            auto last = [&](Tensor t) {  // element n - 1 of an I32 [n] vector
                t.data = static_cast<int32_t*>(t.data) + (n - 1);
                t.ne[0] = 1;
                return t;
            };
            one.n = 1, one.pos = last(sg.pos), one.slot = last(sg.slot);
            Twin O1 = P.nan(qd, 1);
            P.gpu->attention(O1.g, Q.g.row_range(n - 1, 1), kg, one, pg);
            const auto alone = P.rows_gpu(O1.g);
            size_t diff = 0;
            for (int64_t e = 0; e < qd; ++e) {
                const float x = got[size_t((n - 1) * qd + e)], y = alone[size_t(e)];
                diff += std::memcmp(&x, &y, sizeof x) != 0;
            }
            EXPECT_EQ(diff, 0u) << "step " << step << (n_dec == 0 ? " prompt" : " decode")
                                << ": last row alone";
        }
        P.gpu->set_decode_rows(INT64_MAX);
    }
    // The F16 cache holds exactly the rounded values the CPU cache holds.
    const size_t cells = static_cast<size_t>(kv_dim) * kg.n_rows * n_slots;
    std::vector<uint16_t> gk(cells);
    std::vector<float> ck(cells);
    P.gpu->download(gk.data(), kg.k, cells * 2);
    P.cpu->download(ck.data(), kc.k, cells * 4);
    size_t bad = 0;
    for (size_t i = 0; i < cells; ++i) bad += quant::f16_to_f32(gk[i]) != ck[i] && ck[i] == ck[i];
    EXPECT_EQ(bad, 0u) << "kv_store cells differing from the CPU cache";
}

TEST(CudaAttention, GptOssWindowRingWithSinksOverManySteps) {
    REQUIRE_GPU();
    // 64 heads / 8 kv heads, head_dim 64, window 128: the ring holds 128 + 64 rows of 1024.
    run_case({"gpt-oss window", 64, 8, 64, 128, true, 1024, 64, {300, 250, 5}, 64});
}

TEST(CudaAttention, GptOssFullLayerPrefill128ThenDecode) {
    REQUIRE_GPU();
    run_case({"gpt-oss full 128", 64, 8, 64, 0, true, 512, 128, {128, 129, 131}, 128});
}

TEST(CudaAttention, Prefill2048Tokens) {
    REQUIRE_GPU();
    run_case({"prefill 2048", 16, 2, 64, 0, false, 2052, 2048, {2048}, 2048});
}

TEST(CudaAttention, BatchedDecodeOfSevenSlots) {
    REQUIRE_GPU();
    // 7 sequences of different lengths, then decode steps of one token per slot.
    run_case({"decode 7", 32, 8, 128, 0, false, 600, 256, {300, 1, 17, 256, 299, 64, 130}, 256});
}

TEST(CudaAttention, OddHeadDimAndNoGqa) {
    REQUIRE_GPU();
    run_case({"hd 80, mha", 6, 6, 80, 0, false, 200, 32, {77, 150}, 32});
    run_case({"hd 256, window 5", 4, 2, 256, 5, true, 100, 3, {40}, 3});
}

}  // namespace
}  // namespace wo::test
