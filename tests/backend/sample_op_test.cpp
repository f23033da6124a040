// The sample op on every backend against the sampling reference (backend/cpu/sample.cpp's
// sample_row, which defines the semantics: docs/sampling.md): every filter, many seeds, the
// 201,088 vocabulary of gpt-oss and small ones, the repetition penalty reading the history
// tensor up to each row's position, and last_id updated.
#include <algorithm>
#include <cstring>

#include "backend/cpu/sample.h"
#include "backend/harness.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wo::test {
namespace {

struct SampleIn {
    int64_t V = 0;
    int n_slots = 0, n_ctx = 0;
    std::vector<float> logits;           // [V, rows]
    std::vector<int32_t> slot, pos;      // per row
    std::vector<SamplingParams> params;  // per slot
    std::vector<int32_t> history;        // [n_ctx, n_slots]
};

// Runs the op and checks every id against sample_row over the same row, history and seed; returns
// the ids.
std::vector<int32_t> check_sample(Backend& be, const SampleIn& in, const std::string& what) {
    const int64_t rows = static_cast<int64_t>(in.slot.size());
    Dev logits = dev_f32(be, in.logits, in.V, rows), slot = dev_i32(be, in.slot), pos = dev_i32(be, in.pos);
    Dev hist(be, GgmlType::I32, in.n_ctx, in.n_slots), params(be, GgmlType::I32, sizeof(SamplingParams) / 4, in.n_slots);
    hist.upload(in.history);
    std::vector<int32_t> table(in.params.size() * sizeof(SamplingParams) / 4);
    std::memcpy(table.data(), in.params.data(), table.size() * 4);
    params.upload(table);
    Dev last(be, GgmlType::I32, in.n_slots), ids(be, GgmlType::I32, rows);
    last.poison();
    ids.poison();
    StepLimits lim;  // the model reserves op scratch once; here each call reserves what it needs
    lim.max_tokens = lim.max_out_rows = logits.t.rows();
    lim.n_vocab = logits.t.cols();
    be.reserve_scratch(lim);
    be.sample(ids.t, logits.t, slot.t, pos.t, SlotState{last.t, hist.t, params.t});
    const auto got = ids.i32(), got_last = last.i32();
    std::vector<int32_t> want_last(static_cast<size_t>(in.n_slots), kPoisonI32);
    for (int64_t r = 0; r < rows; ++r) {
        const int32_t s = in.slot[r], p = in.pos[r];
        const int32_t want = cpu::sample_row({in.logits.data() + r * in.V, static_cast<size_t>(in.V)},
                                             {in.history.data() + static_cast<int64_t>(s) * in.n_ctx, static_cast<size_t>(p) + 1},
                                             in.params[static_cast<size_t>(s)], static_cast<uint32_t>(p) + 1);
        const SamplingParams& sp = in.params[static_cast<size_t>(s)];
        EXPECT_EQ(got[r], want) << what << " row " << r << " (T " << sp.temperature << " top_k " << sp.top_k
                                << " top_p " << sp.top_p << " min_p " << sp.min_p << " penalty "
                                << sp.repetition_penalty << " seed " << sp.seed << " pos " << p << ")";
        want_last[static_cast<size_t>(s)] = got[r];
    }
    EXPECT_EQ(got_last, want_last) << what << ": last_id[slot] = the id drawn, other slots untouched";
    EXPECT_EQ(hist.i32(), in.history) << what << ": sample reads the history, never writes it";
    return got;
}

// Every filter alone and combined (seeds are set per row).
std::vector<SamplingParams> configs() {
    return {
        {.temperature = 0.0f},
        {.temperature = 0.0f, .repetition_penalty = 1.5f},
        {.temperature = 1.0f},
        {.temperature = 0.7f},
        {.temperature = 1.3f, .top_k = 40},
        {.top_k = 1},
        {.top_p = 0.9f},
        {.temperature = 0.8f, .top_p = 0.5f},
        {.min_p = 0.05f},
        {.repetition_penalty = 1.3f},
        {.repetition_penalty = 0.8f},
        {.temperature = 0.8f, .top_k = 50, .top_p = 0.95f, .min_p = 0.02f, .repetition_penalty = 1.1f},
        {.top_k = 200000},
        {.top_p = 0.999f},
        {.temperature = 2.0f, .min_p = 0.1f},
        {.temperature = 1.5f, .top_k = 3, .top_p = 0.7f},
    };
}

// Logits with a realistic shape: a broad normal body, a few strong candidates, exact ties among
// them, NaNs (never drawn) and a -inf.
std::vector<float> vocab_logits(int64_t V, int64_t rows, uint32_t seed) {
    auto l = randn(static_cast<size_t>(V * rows), seed, 2.0f);
    std::mt19937 rng(seed + 1);
    for (int64_t r = 0; r < rows; ++r) {
        float* row = l.data() + r * V;
        std::uniform_int_distribution<int64_t> pick(0, V - 1);
        for (int i = 0; i < std::min<int64_t>(20, V / 3); ++i) row[pick(rng)] = 6.0f + static_cast<float>(i % 5);
        if (V >= 8) {
            row[pick(rng)] = row[pick(rng)];  // a tie (possibly with a strong one)
            row[pick(rng)] = kNaN;
            row[pick(rng)] = -INFINITY;
        }
    }
    return l;
}

SampleIn make_input(int64_t V, int n_slots, int rows, uint32_t seed, int round) {
    SampleIn in;
    in.V = V, in.n_slots = n_slots, in.n_ctx = 64;
    in.logits = vocab_logits(V, rows, seed);
    const auto cf = configs();
    std::mt19937 rng(seed + 2);
    for (int s = 0; s < n_slots; ++s) {
        SamplingParams p = cf[static_cast<size_t>(s + round) % cf.size()];
        p.seed = (static_cast<uint64_t>(seed) << 32) ^ static_cast<uint64_t>(s * 7919 + round);
        in.params.push_back(p);
    }
    // Histories: half their tokens are strong candidates (of logits row s), so the penalty
    // changes outcomes.
    for (int s = 0; s < n_slots; ++s)
        for (int j = 0; j < in.n_ctx; ++j) {
            int32_t t = static_cast<int32_t>(rng() % V);
            if (s < rows && rng() % 2 == 0) {
                const float* row = in.logits.data() + static_cast<int64_t>(s) * V;
                for (int64_t id = 0; id < V; ++id)
                    if (row[(t + id) % V] >= 6.0f) {
                        t = static_cast<int32_t>((t + id) % V);
                        break;
                    }
            }
            in.history.push_back(t);
        }
    for (int r = 0; r < rows; ++r) {
        in.slot.push_back((r * 5 + round) % n_slots);  // rows in another order than slots
        in.pos.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(in.n_ctx)));
    }
    // A slot samples once per step: keep the slots of the rows distinct.
    std::vector<int32_t> seen;
    for (int32_t& s : in.slot) {
        while (std::find(seen.begin(), seen.end(), s) != seen.end()) s = (s + 1) % n_slots;
        seen.push_back(s);
    }
    return in;
}

using Sample = BackendTest;
WO_ALL_BACKENDS(Sample);

TEST_P(Sample, GptOssVocabularyEveryFilterAgreesWithTheReference) {
    for (int round = 0; round < 2; ++round) {
        const SampleIn in = make_input(201088, 16, 16, 100 + static_cast<uint32_t>(round), round);
        check_sample(*be, in, "V 201088 round " + std::to_string(round));
    }
}

TEST_P(Sample, SmallVocabulariesManySeeds) {
    for (const int64_t V : {2, 7, 64, 1000})
        for (int round = 0; round < 6; ++round) {
            const SampleIn in = make_input(V, 48, 48, static_cast<uint32_t>(V * 10 + round), round);
            check_sample(*be, in, "V " + std::to_string(V) + " round " + std::to_string(round));
        }
}

// The penalty reads history[slot][0..pos] (the last fed token included) and nothing after it.
TEST_P(Sample, PenaltyReadsTheHistoryUpToThePosition) {
    SampleIn in;
    in.V = 64, in.n_slots = 2, in.n_ctx = 16;
    in.logits.assign(64 * 2, 0.0f);
    for (int r = 0; r < 2; ++r) in.logits[r * 64 + 10] = 5.0f, in.logits[r * 64 + 20] = 4.0f;
    in.params = {{.temperature = 0.0f, .repetition_penalty = 2.0f}, {.temperature = 0.0f, .repetition_penalty = 2.0f}};
    in.history.assign(32, 3);
    in.history[0 * 16 + 6] = 10;  // slot 0: 10 is its last fed token (pos 6); 20 only after it
    in.history[0 * 16 + 7] = 20;
    in.history[1 * 16 + 9] = 10;  // slot 1: 10 comes after its position 6: not seen
    in.slot = {0, 1};
    in.pos = {6, 6};
    // slot 0: 10 -> 2.5 < 4 (20 unseen) -> 20; slot 1: nothing seen -> 10.
    EXPECT_EQ(check_sample(*be, in, "penalty window"), (std::vector<int32_t>{20, 10}));
}

// The draw of a row depends on (seed, position) only: the same row at the same position in
// another slot, another batch row or a bigger batch gives the same id.
TEST_P(Sample, TheDrawDoesNotDependOnTheBatch) {
    SampleIn in = make_input(5000, 32, 32, 7, 0);
    for (auto& p : in.params) p = SamplingParams{.temperature = 0.9f, .top_k = 100, .top_p = 0.95f, .seed = 77};
    for (int r = 0; r < 32; ++r) {
        std::copy(in.logits.begin(), in.logits.begin() + 5000, in.logits.begin() + r * 5000);
        in.pos[static_cast<size_t>(r)] = 12;
        std::copy(in.history.begin(), in.history.begin() + 64, in.history.begin() + in.slot[r] * 64);
    }
    const auto ids = check_sample(*be, in, "32 identical rows");
    for (int r = 1; r < 32; ++r) EXPECT_EQ(ids[r], ids[0]) << r;
    SampleIn one = in;
    one.logits.resize(5000), one.slot = {5}, one.pos = {12};
    EXPECT_EQ(check_sample(*be, one, "alone"), (std::vector<int32_t>{ids[0]}));
}

}  // namespace
}  // namespace wo::test
