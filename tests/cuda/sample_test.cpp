// The CUDA sampling op draws exactly the CPU reference's ids (backend/cpu/sample.cpp) from the
// same logits, history, parameters and seeds: every filter combination, n_vocab 201,088 and
// small, ties, NaN and -inf logits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cuda_test_util.h"

namespace wo::test {
namespace {

// CLUSTER_FIRST / CLUSTER_LAST: every token far below a cluster of 48 ids at the start / end of
// the vocabulary, so the survivors and the draw's crossing sit in the first / last of the CUDA
// op's 64 slices (and the top-k / top-p cuts fall inside one slice).
enum class Logits { NORMAL, TIED, PEAKED, CLUSTER_FIRST, CLUSTER_LAST };

// Runs every combination of filters (one row each, `per_call` rows per sample() call) and
// compares ids and last_id with the CPU op.
void sweep(int64_t V, Logits kind, uint32_t seed) {
    SCOPED_TRACE("V " + std::to_string(V) + ", kind " + std::to_string(static_cast<int>(kind)) + ", seed " +
                 std::to_string(seed));
    Pair P;
    std::mt19937 rng(seed);
    std::vector<SamplingParams> combos;
    for (float t : {0.0f, 0.7f, 1.0f, 1.6f})
        for (int k : {0, 1, 40, 5000})
            for (float tp : {1.0f, 0.9f, 0.5f, 0.0f})
                for (float mp : {0.0f, 0.05f})
                    for (float pen : {1.0f, 1.3f}) {
                        SamplingParams p;
                        p.temperature = t, p.top_k = k, p.top_p = tp, p.min_p = mp,
                        p.repetition_penalty = pen;
                        p.seed = (static_cast<uint64_t>(rng()) << 32) | rng();
                        combos.push_back(p);
                    }
    const int n_rows = static_cast<int>(combos.size());  // one slot per row
    const int n_ctx = 512;
    StepLimits lim;
    lim.max_out_rows = n_rows, lim.n_vocab = V, lim.max_tokens = n_rows;
    P.gpu->reserve_scratch(lim);
    std::vector<float> l = randn(V * n_rows, rng, 3.0f);
    for (size_t i = 0; i < l.size(); ++i) {
        if (kind == Logits::TIED) l[i] = std::round(l[i]);        // thousands of exact ties
        if (kind == Logits::PEAKED && i % V == 17) l[i] = 40.0f;  // one dominant token
        const int64_t c = static_cast<int64_t>(i) % V;
        if ((kind == Logits::CLUSTER_FIRST && c >= 48) || (kind == Logits::CLUSTER_LAST && c < V - 48))
            l[i] -= 60.0f;
        if (rng() % 1000 == 0) l[i] = std::nanf("");              // NaN: never drawn
        if (rng() % 1000 == 1) l[i] = -INFINITY;
    }
    std::vector<int32_t> hist(static_cast<size_t>(n_ctx) * n_rows), pos(n_rows), slot(n_rows);
    for (auto& h : hist) h = static_cast<int32_t>(rng() % 64 == 0 ? rng() % V : rng() % 50);  // repeats
    for (int r = 0; r < n_rows; ++r) slot[r] = r, pos[r] = static_cast<int32_t>(rng() % n_ctx);
    Twin L = P.f32(l, V, n_rows), H = P.i32(hist, n_ctx, n_rows), Ps = P.i32(pos, n_rows),
         S = P.i32(slot, n_rows);
    Twin Pr = P.make(GgmlType::I32, combos.data(), 8, n_rows);
    Twin last = P.i32(std::vector<int32_t>(n_rows, -5), n_rows),
         ids = P.i32(std::vector<int32_t>(n_rows, -6), n_rows);
    SlotState sc{last.c, H.c, Pr.c}, sg{last.g, H.g, Pr.g};
    // Two calls of half the rows each on the GPU (blocks loop over rows either way).
    P.cpu->sample(ids.c, L.c, S.c, Ps.c, sc);
    const int half = n_rows / 2;
    P.gpu->sample(ids.g.row_range(0, 1), L.g.row_range(0, half), S.g, Ps.g, sg);
    Tensor ig = ids.g, sg2 = S.g, pg2 = Ps.g;
    ig.data = static_cast<int32_t*>(ig.data) + half;
    sg2.data = static_cast<int32_t*>(sg2.data) + half;
    pg2.data = static_cast<int32_t*>(pg2.data) + half;
    P.gpu->sample(ig, L.g.row_range(half, n_rows - half), sg2, pg2, sg);
    std::vector<int32_t> ic(n_rows), lc(n_rows);
    P.cpu->download(ic.data(), ids.c, n_rows * 4);
    P.cpu->download(lc.data(), last.c, n_rows * 4);
    const std::vector<int32_t> igv = P.get_gpu<int32_t>(ids.g, n_rows),
                               lg = P.get_gpu<int32_t>(last.g, n_rows);
    int bad = 0;
    for (int r = 0; r < n_rows; ++r) {
        const SamplingParams& p = combos[static_cast<size_t>(r)];
        if (igv[r] != ic[r] && ++bad <= 10)
            ADD_FAILURE() << "row " << r << ": cuda " << igv[r] << ", cpu " << ic[r] << " (T "
                          << p.temperature << ", top_k " << p.top_k << ", top_p " << p.top_p << ", min_p "
                          << p.min_p << ", penalty " << p.repetition_penalty << ")";
        EXPECT_EQ(lg[r], ic[r]) << "last_id of slot " << r;
        EXPECT_EQ(lc[r], ic[r]);
    }
    EXPECT_EQ(bad, 0) << "rows drawing a different id";
}

TEST(CudaSample, SameIdsAsCpuOnTheFullVocabulary) {
    REQUIRE_GPU();
    for (int rep = 0; rep < 3; ++rep) sweep(201088, Logits::NORMAL, fresh_seed());
}

TEST(CudaSample, SameIdsAsCpuWithTiesAndAPeak) {
    REQUIRE_GPU();
    sweep(201088, Logits::TIED, fresh_seed());
    sweep(201088, Logits::PEAKED, fresh_seed());
}

TEST(CudaSample, SameIdsAsCpuWhenTheMassSitsInTheFirstOrLastSlice) {
    REQUIRE_GPU();
    for (int64_t V : {201088, 4099})
        for (Logits k : {Logits::CLUSTER_FIRST, Logits::CLUSTER_LAST}) sweep(V, k, fresh_seed());
}

TEST(CudaSample, SameIdsAsCpuOnAVocabularyNotDivisibleBySixtyFour) {
    REQUIRE_GPU();
    sweep(100003, Logits::NORMAL, fresh_seed());
    sweep(100003, Logits::TIED, fresh_seed());
}

TEST(CudaSample, SameIdsAsCpuOnSmallVocabularies) {
    REQUIRE_GPU();
    for (int64_t V : {1, 2, 37, 63, 64, 65, 1000, 4099})
        for (Logits k : {Logits::NORMAL, Logits::TIED}) sweep(V, k, fresh_seed());
}

}  // namespace
}  // namespace wo::test
