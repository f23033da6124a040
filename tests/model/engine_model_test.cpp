// A real model behind the serving engine, on the backend WO_TEST_BACKEND names (the CPU unless
// scripts/gpu-check says cuda): seeded streams batched together equal their solo runs, and a
// prompt several times the sliding window, prefilled in chunks through the window rings, gives
// the same continuation as one whole prefill and as token-by-token feeding.
#include <gtest/gtest.h>

#include <cstdlib>

#include "engine/engine.h"
#include "model/tiny_models.h"
#include "tokenizer/tokenizer.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wo {
namespace {

std::string backend() {
    const char* b = std::getenv("WO_TEST_BACKEND");
    return b && *b ? b : "cpu";
}

std::unique_ptr<Engine> engine_for(const std::string& arch, EngineOptions o) {
    auto bytes = std::make_shared<std::vector<uint8_t>>(test::tiny_gguf({.arch = arch, .vocab = true}));
    o.backend = backend();
    if (!o.n_ctx) o.n_ctx = 512;
    auto e = std::make_unique<Engine>(o, [bytes](const EngineOptions& eo, Progress&) {
        LoadedModel lm;
        lm.file = std::make_shared<const gguf::File>(gguf::File::parse(bytes->data(), bytes->size()));
        lm.tokenizer = load_tokenizer(*lm.file);
        LoadOptions lo;
        lo.backend = eo.backend;
        lo.n_threads = 2;
        lm.model = load_model(lm.file, lo);
        lm.name = "tiny";
        return lm;
    });
    e->start();
    EXPECT_EQ(e->wait_loaded(), Engine::State::Ready) << e->load_error();
    return e;
}

std::vector<int32_t> ids_of(Job& j) {
    std::vector<int32_t> ids;
    for (;;) {
        auto e = j.pop(std::chrono::milliseconds(30000));
        if (!e) {
            ADD_FAILURE() << "no event for 30 s";
            return ids;
        }
        if (e->kind == JobEvent::Kind::Token) ids.insert(ids.end(), e->tokens.begin(), e->tokens.end());
        if (e->kind == JobEvent::Kind::Error) ADD_FAILURE() << e->message;
        if (e->kind == JobEvent::Kind::End || e->kind == JobEvent::Kind::Error) return ids;
    }
}

GenerateRequest request(int k, std::vector<int32_t> prompt, int n, SamplingParams p) {
    GenerateRequest r;
    r.job_id = "j" + std::to_string(k);
    r.prompt = std::move(prompt);
    r.max_tokens = n;
    r.sampling = p;
    return r;
}

class EngineModel : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineModel, ThirtyTwoSeededStreamsEqualTheirSoloRuns) {
    auto params = [](int k) {
        SamplingParams p{.temperature = 0.8f, .top_k = k % 3 ? 20 : 0, .top_p = k % 2 ? 0.9f : 1.0f,
                         .min_p = k % 4 == 3 ? 0.02f : 0.0f, .repetition_penalty = k % 5 == 0 ? 1.2f : 1.0f};
        p.seed = 77 + static_cast<uint64_t>(k);
        return p;
    };
    auto prompt = [](int k) { return std::vector<int32_t>{1 + k, 40 + 2 * k, 7, 100 + k}; };
    std::vector<std::vector<int32_t>> solo;
    {
        auto e = engine_for(GetParam(), {.n_parallel = 1});
        for (int k = 0; k < 32; ++k) solo.push_back(ids_of(*e->submit(request(k, prompt(k), 10, params(k)))));
    }
    auto e = engine_for(GetParam(), {.n_parallel = 32});
    std::vector<std::shared_ptr<Job>> jobs;
    for (int k = 0; k < 32; ++k) jobs.push_back(e->submit(request(k, prompt(k), 10, params(k))));
    int distinct_first = 0;
    for (int k = 0; k < 32; ++k) {
        const auto ids = ids_of(*jobs[static_cast<size_t>(k)]);
        EXPECT_EQ(ids, solo[static_cast<size_t>(k)]) << "stream " << k;
        EXPECT_FALSE(ids.empty());
        distinct_first += k > 0 && ids != solo[0];
    }
    EXPECT_GT(distinct_first, 20) << "streams differ from each other";
}

TEST_P(EngineModel, LongPromptInChunksThroughTheWindowRingsMatchesOneWholePrefill) {
    if (GetParam() == "gpt2") GTEST_SKIP() << "the tiny GPT-2 has 32 positions";
    std::vector<int32_t> prompt;
    for (int i = 0; i < 150; ++i) prompt.push_back((i * 37 + 11) % 250);
    const SamplingParams greedy{.temperature = 0.0f};
    auto e1 = engine_for(GetParam(), {.n_parallel = 1, .prefill_chunk = 512});
    const auto whole = ids_of(*e1->submit(request(0, prompt, 16, greedy)));
    auto e2 = engine_for(GetParam(), {.n_parallel = 2, .prefill_chunk = 13});
    const auto chunked = ids_of(*e2->submit(request(1, prompt, 16, greedy)));
    auto e3 = engine_for(GetParam(), {.n_parallel = 1, .prefill_chunk = 1});
    const auto single = ids_of(*e3->submit(request(2, prompt, 16, greedy)));
    ASSERT_FALSE(whole.empty());
    EXPECT_EQ(chunked, whole);
    EXPECT_EQ(single, whole);
}

INSTANTIATE_TEST_SUITE_P(Archs, EngineModel, ::testing::Values("gpt-oss", "llama", "gpt2"),
                         [](const auto& i) { return i.param == "gpt-oss" ? std::string("gpt_oss") : i.param; });

}  // namespace
}  // namespace wo
