// The scheduler on test doubles (fake_model.h): event order, stop reasons, UTF-8 hold-back,
// stop strings, chunked prefill interleaved with decoding, cancellation, seeded sampling alone
// vs batched, step failures, capacity and load failures.
#include <gtest/gtest.h>

#include <set>

#include "engine/engine.h"
#include "engine/fake_model.h"

namespace wo::test {
namespace {

struct Run {
    std::vector<JobEvent> events;
    std::string text() const {
        std::string s;
        for (const auto& e : events)
            if (e.kind == JobEvent::Kind::Token) s += e.text;
        return s;
    }
    const JobEvent& last() const { return events.back(); }
};

Run drain(Job& j) {
    Run r;
    for (;;) {
        auto e = j.pop(std::chrono::milliseconds(5000));
        if (!e) {
            ADD_FAILURE() << "no event for 5 s";
            return r;
        }
        r.events.push_back(*e);
        if (e->kind == JobEvent::Kind::End || e->kind == JobEvent::Kind::Error) return r;
    }
}

struct Fixture {
    FakeModel* model = nullptr;
    std::unique_ptr<Engine> engine;
    explicit Fixture(EngineOptions o = {}, bool chain = true) {
        o.n_ctx = o.n_ctx ? o.n_ctx : 256;
        engine = std::make_unique<Engine>(o, [this, chain](const EngineOptions&, Progress&) {
            LoadedModel lm;
            auto m = std::make_unique<FakeModel>(chain);
            model = m.get();
            lm.model = std::move(m);
            lm.tokenizer = std::make_unique<FakeTokenizer>();
            lm.name = "fake";
            return lm;
        });
        engine->start();
        EXPECT_EQ(engine->wait_loaded(), Engine::State::Ready);
    }
};

GenerateRequest req(const std::string& id, std::vector<int32_t> prompt, int max_tokens, SamplingParams sp = {.temperature = 0}) {
    GenerateRequest r;
    r.job_id = id;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling = sp;
    return r;
}

TEST(Scheduler, GreedyChainEventsAndMaxTokens) {
    Fixture f;
    auto r = drain(*f.engine->submit(req("a", {1, 2, 3}, 5)));
    ASSERT_GE(r.events.size(), 3u);
    EXPECT_EQ(r.events[0].kind, JobEvent::Kind::Started);
    EXPECT_EQ(r.text(), "efghi");  // tokens 4..8
    EXPECT_EQ(r.last().kind, JobEvent::Kind::End);
    EXPECT_EQ(r.last().stop_reason, StopReason::MAX_TOKENS);
    EXPECT_EQ(r.last().tokens_out, 5);
    EXPECT_EQ(f.engine->slots_busy(), 0);
}

TEST(Scheduler, MultiByteCharacterIsHeldUntilCompleteAndEogEnds) {
    Fixture f;
    // 59 -> 60, 61, 62 (the bytes of U+4E2D), then 63 = end of generation.
    auto r = drain(*f.engine->submit(req("u", {58, 59}, 50)));
    std::vector<std::string> texts;
    for (const auto& e : r.events)
        if (e.kind == JobEvent::Kind::Token) texts.push_back(e.text);
    EXPECT_EQ(texts, std::vector<std::string>{"\xe4\xb8\xad"});
    EXPECT_EQ(r.last().stop_reason, StopReason::EOS);
    EXPECT_EQ(r.last().tokens_out, 4);  // the EOG token counts, but is never text
}

TEST(Scheduler, StopStringsAreNeverEmittedInPart) {
    Fixture f;
    auto stopped = req("s", {0}, 20);
    stopped.stop = {"de"};
    auto r = drain(*f.engine->submit(stopped));
    EXPECT_EQ(r.text(), "bc");
    EXPECT_EQ(r.last().stop_reason, StopReason::STOP_SEQUENCE);
    EXPECT_EQ(r.last().stop_matched, "de");

    // "dx" never matches: "d" is held back until "e" shows it is not the stop string.
    auto held = req("h", {0}, 5);
    held.stop = {"dx"};
    r = drain(*f.engine->submit(held));
    std::vector<std::string> texts;
    for (const auto& e : r.events)
        if (e.kind == JobEvent::Kind::Token) texts.push_back(e.text);
    EXPECT_EQ(texts, (std::vector<std::string>{"b", "c", "de", "f"}));
    EXPECT_EQ(r.last().stop_reason, StopReason::MAX_TOKENS);
}

// Text held back as a possible start of a stop string is released when the stream ends without
// the match completing, whatever ends it: the last characters are never lost.
TEST(Scheduler, HeldBackStopPrefixIsReleasedWhenTheStreamEnds) {
    Fixture f;
    // max_tokens 3 ends on "d", the first character of "dx".
    auto r1 = req("m", {0}, 3);
    r1.stop = {"dx"};
    auto r = drain(*f.engine->submit(r1));
    EXPECT_EQ(r.text(), "bcd");
    EXPECT_EQ(r.last().stop_reason, StopReason::MAX_TOKENS);
    EXPECT_EQ(r.last().tokens_out, 3);
    // The token ids of the held text go out with it.
    std::vector<int32_t> ids;
    for (const auto& e : r.events)
        if (e.kind == JobEvent::Kind::Token) ids.insert(ids.end(), e.tokens.begin(), e.tokens.end());
    EXPECT_EQ(ids, (std::vector<int32_t>{1, 2, 3}));

    // End of generation right after a held character: 57 'f', 58 'g', 59 'h', 60-62 U+4E2D,
    // 63 EOG. The stop string starts with U+4E2D, so the whole character is held, then released.
    auto r2 = req("e", {56}, 50);
    r2.stop = {"\xe4\xb8\xadx"};
    r = drain(*f.engine->submit(r2));
    EXPECT_EQ(r.text(), "fgh\xe4\xb8\xad");
    EXPECT_EQ(r.last().stop_reason, StopReason::EOS);

    // The context filling up right after "d" (n_ctx 3: the prompt and "b", "c" are fed, "d" is not).
    Fixture small({.n_ctx = 3});
    auto r3 = req("c", {0}, 50);
    r3.stop = {"dx"};
    r = drain(*small.engine->submit(r3));
    EXPECT_EQ(r.text(), "bcd");
    EXPECT_EQ(r.last().stop_reason, StopReason::CONTEXT_FULL);
}

TEST(Scheduler, LongPromptIsPrefilledInChunksWithoutStallingDecoding) {
    Fixture f({.n_parallel = 2, .prefill_chunk = 8});
    f.model->step_ms = 1;
    auto a = f.engine->submit(req("a", {1}, 200));
    // Wait until a is decoding (its first token is out), so its own prompt uses no budget.
    ASSERT_EQ(a->pop(std::chrono::milliseconds(5000))->kind, JobEvent::Kind::Started);
    ASSERT_EQ(a->pop(std::chrono::milliseconds(5000))->kind, JobEvent::Kind::Token);
    std::vector<int32_t> long_prompt(40, 5);
    auto b = f.engine->submit(req("b", long_prompt, 2));
    drain(*b);
    f.engine->cancel("a");
    drain(*a);
    // Every step that fed b's prompt also decoded a's next token, and fed at most 8 of b's.
    int prefill_steps = 0, fed = 0;
    for (const auto& step : f.model->steps()) {
        int b_tokens = 0;
        bool a_decoded = false;
        for (const auto& t : step) {
            if (t.slot == 1 && t.pos < 40) ++b_tokens;
            if (t.slot == 0) a_decoded = true;
        }
        if (b_tokens == 0) continue;
        ++prefill_steps;
        fed += b_tokens;
        EXPECT_LE(b_tokens, 8);
        EXPECT_TRUE(a_decoded) << "a stalled while b prefilled";
    }
    EXPECT_EQ(fed, 40);
    EXPECT_EQ(prefill_steps, 5) << "steps: " << f.model->steps().size();
}

TEST(Scheduler, CancelStopsWithinAStepAndFreesTheSlot) {
    Fixture f({.n_ctx = 100000, .n_parallel = 1});
    f.model->step_ms = 1;  // the chain reaches the EOG token after 62 steps: keep jobs alive
    auto a = f.engine->submit(req("a", {1}, 100000));
    ASSERT_EQ(a->pop(std::chrono::milliseconds(5000))->kind, JobEvent::Kind::Started);
    EXPECT_TRUE(f.engine->cancel("a"));
    auto r = drain(*a);
    EXPECT_EQ(r.last().kind, JobEvent::Kind::Error);
    EXPECT_EQ(r.last().code, Code::CANCELLED);
    EXPECT_FALSE(f.engine->cancel("a"));  // finished: nothing to cancel
    // The only slot serves the next job from position 0 (the fake checks the cache was cleared).
    auto b = drain(*f.engine->submit(req("b", {2, 3}, 3)));
    EXPECT_EQ(b.text(), "efg");
    // A job cancelled while queued never takes a slot.
    auto c = f.engine->submit(req("c", {1}, 100000));
    auto d = f.engine->submit(req("d", {1}, 2));
    f.engine->cancel("d");
    f.engine->cancel("c");
    EXPECT_EQ(drain(*d).last().code, Code::CANCELLED);
    EXPECT_EQ(drain(*c).last().code, Code::CANCELLED);
}

TEST(Scheduler, CancellingAQueuedJobEndsItAtOnceAndFreesItsPlace) {
    Fixture f({.n_ctx = 100000, .n_parallel = 1, .max_queue = 1});
    f.model->step_ms = 50;  // a runs for seconds (EOG after 62 steps), so q stays queued
    auto a = f.engine->submit(req("a", {1}, 100000));  // holds the only slot
    ASSERT_EQ(a->pop(std::chrono::milliseconds(5000))->kind, JobEvent::Kind::Started);
    auto q = f.engine->submit(req("q", {1}, 2));
    EXPECT_EQ(f.engine->metrics().queue_depth.load(), 1);
    EXPECT_THROW(f.engine->submit(req("over", {1}, 2)), Error);  // the queue of one is full
    EXPECT_TRUE(f.engine->cancel("q"));
    // Ended before the slot frees: the CANCELLED event is already there, the queue is empty,
    // and the id is free again.
    auto e = q->pop(std::chrono::milliseconds(0));
    ASSERT_TRUE(e.has_value());  // the only event: no Started, it never had a slot
    EXPECT_EQ(e->kind, JobEvent::Kind::Error);
    EXPECT_EQ(e->code, Code::CANCELLED);
    EXPECT_TRUE(q->finished());
    EXPECT_FALSE(q->pop(std::chrono::milliseconds(0)).has_value());
    EXPECT_EQ(f.engine->metrics().queue_depth.load(), 0);
    EXPECT_FALSE(f.engine->cancel("q"));
    auto q2 = f.engine->submit(req("q", {1}, 2));  // room again, same id
    EXPECT_EQ(f.engine->metrics().queue_depth.load(), 1);
    f.engine->cancel("a");
    EXPECT_EQ(drain(*a).last().code, Code::CANCELLED);
    EXPECT_EQ(drain(*q2).last().kind, JobEvent::Kind::End);
}

TEST(Scheduler, SameSeedSameTokensAloneOrBatched) {
    Fixture f({.n_parallel = 4}, /*chain=*/false);
    const SamplingParams sp{.temperature = 1.0f, .top_p = 0.9f, .seed = 99};
    const std::string alone = drain(*f.engine->submit(req("alone", {7, 8}, 30, sp))).text();
    std::vector<std::shared_ptr<Job>> jobs;
    for (int k = 0; k < 4; ++k) {
        SamplingParams other = sp;
        other.seed = k == 2 ? 99 : 1000 + k;  // job 2 repeats the solo request
        jobs.push_back(f.engine->submit(req("j" + std::to_string(k), k == 2 ? std::vector<int32_t>{7, 8} : std::vector<int32_t>{9, k}, 30, other)));
    }
    std::vector<std::string> texts;
    for (auto& j : jobs) texts.push_back(drain(*j).text());
    EXPECT_EQ(texts[2], alone);
    EXPECT_NE(texts[0], alone);
    bool batched = false;
    for (const auto& s : f.model->steps()) batched |= s.size() > 1;
    EXPECT_TRUE(batched);
}

TEST(Scheduler, ContextFullEndsTheSequence) {
    Fixture f({.n_ctx = 8});
    auto r = drain(*f.engine->submit(req("c", {1, 2, 3}, 100)));
    EXPECT_EQ(r.last().stop_reason, StopReason::CONTEXT_FULL);
    EXPECT_EQ(r.last().tokens_out, 6);  // 3 + 6 = 9 tokens: positions 0..7 fed, the last one not
    EXPECT_THROW(f.engine->submit(req("big", std::vector<int32_t>(9, 1), 1)), Error);
}

TEST(Scheduler, FailedStepFailsItsJobsAndServingContinues) {
    Fixture f({.n_parallel = 2});
    f.model->fail_at(static_cast<int>(f.model->steps().size()), Code::VRAM_OOM);
    auto r = drain(*f.engine->submit(req("oom", {1}, 5)));
    EXPECT_EQ(r.last().kind, JobEvent::Kind::Error);
    EXPECT_EQ(r.last().code, Code::VRAM_OOM);
    EXPECT_EQ(drain(*f.engine->submit(req("ok", {1}, 2))).text(), "cd");
    Metrics& m = f.engine->metrics();
    EXPECT_EQ(m.requests[static_cast<size_t>(Outcome::error)].load(), 1u);
    EXPECT_EQ(m.requests[static_cast<size_t>(Outcome::success)].load(), 1u);
    EXPECT_EQ(m.tokens_generated.load(), 2u);
    EXPECT_EQ(m.tokens_in.load(), 2u);
}

TEST(Scheduler, AnUnrecoverableDeviceErrorMakesTheEngineUnhealthy) {
    Fixture f;
    EXPECT_TRUE(f.engine->device_healthy());
    f.model->fail_at(static_cast<int>(f.model->steps().size()), Code::CUDA_ERROR);
    f.model->device_ok = false;  // what a GPU fault leaves behind
    auto r = drain(*f.engine->submit(req("fault", {1}, 5)));
    EXPECT_EQ(r.last().code, Code::CUDA_ERROR);
    EXPECT_FALSE(f.engine->device_healthy());
    EXPECT_EQ(f.engine->state(), Engine::State::Ready);  // loaded, but /health says unhealthy
}

TEST(Scheduler, QueueLimitAndDuplicateIds) {
    // Never started: jobs stay queued.
    Engine e({.n_parallel = 1, .max_queue = 1},
             [](const EngineOptions&, Progress&) -> LoadedModel { throw Error(Code::INTERNAL, "unused"); });
    e.submit(req("a", {1}, 1));
    try {
        e.submit(req("b", {1}, 1));
        FAIL();
    } catch (const Error& err) {
        EXPECT_EQ(err.code(), Code::QUEUE_FULL);
    }
    Engine e2({.max_queue = 4},
              [](const EngineOptions&, Progress&) -> LoadedModel { throw Error(Code::INTERNAL, "unused"); });
    e2.submit(req("a", {1}, 1));
    EXPECT_THROW(e2.submit(req("a", {1}, 1)), Error);
}

TEST(Scheduler, LoadFailureFailsQueuedJobsWithModelLoadFailed) {
    Engine e({}, [](const EngineOptions&, Progress&) -> LoadedModel {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        throw Error(Code::GGUF_INVALID, "bad magic at offset 0");
    });
    e.start();
    auto j = e.submit(req("early", {1}, 1));
    EXPECT_EQ(e.wait_loaded(), Engine::State::Failed);
    EXPECT_EQ(e.load_error_code(), Code::MODEL_LOAD_FAILED);
    EXPECT_NE(e.load_error().find("GGUF_INVALID: bad magic"), std::string::npos);
    auto r = drain(*j);
    EXPECT_EQ(r.last().code, Code::MODEL_LOAD_FAILED);
    try {
        e.submit(req("late", {1}, 1));
        FAIL();
    } catch (const Error& err) {
        EXPECT_EQ(err.code(), Code::MODEL_LOAD_FAILED);
    }
}

}  // namespace
}  // namespace wo::test

namespace wo::test {
namespace {

TEST(Scheduler, MetricsEventsComeAtMostEvery250ms) {
    Fixture f;
    f.model->step_ms = 10;  // the chain from 0 reaches the EOG token 63 after ~630 ms
    auto r = drain(*f.engine->submit(req("m", {0}, 100)));
    std::vector<double> at;
    for (const auto& e : r.events)
        if (e.kind == JobEvent::Kind::Metrics) {
            at.push_back(e.decode_time_ms);
            EXPECT_EQ(e.vram_bytes, 1024u);  // the fake's weights + KV
            EXPECT_GT(e.tokens_out, 0);
        }
    EXPECT_EQ(r.last().stop_reason, StopReason::EOS);
    ASSERT_GE(at.size(), 1u);
    // ~630 ms gives at most 3 events, but a busy machine stretches the run: bound the count by
    // the run's own duration (the spacing below is the real check).
    EXPECT_LE(at.size(), static_cast<size_t>(r.last().decode_time_ms / 250.0) + 1);
    for (size_t i = 1; i < at.size(); ++i) EXPECT_GE(at[i] - at[i - 1], 250.0);
}

}  // namespace
}  // namespace wo::test

namespace wo::test {
namespace {

// The host reads step N's ids after submitting step N+1 (pipeline depth 2): what the jobs see
// must not change, and a job that ends at step N must not emit what step N+1 computed for it.
class Pipelined : public ::testing::TestWithParam<int> {};

TEST_P(Pipelined, ChainStopStringAndEogAreExactlyAsUnpipelined) {
    Fixture f({.n_parallel = 2, .pipeline_depth = GetParam()});
    auto a = f.engine->submit(req("a", {1, 2, 3}, 5));
    GenerateRequest rb = req("b", {57}, 50);
    rb.stop = {"fg"};  // chain 58.. decodes to "ghi..." (id % 26): no match, runs to EOG 63
    auto b = f.engine->submit(std::move(rb));
    GenerateRequest rc = req("c", {2}, 50);
    rc.stop = {"ef"};  // chain 3,4,5 -> "def": stops after 'f' with "d" emitted
    auto ra = drain(*a), rbr = drain(*b);
    auto c = f.engine->submit(std::move(rc));
    auto rcr = drain(*c);
    EXPECT_EQ(ra.text(), "efghi");
    EXPECT_EQ(ra.last().tokens_out, 5);
    EXPECT_EQ(rbr.last().stop_reason, StopReason::EOS);
    EXPECT_EQ(rbr.last().tokens_out, 6);  // 58 59 60 61 62 63
    EXPECT_EQ(rcr.text(), "d");
    EXPECT_EQ(rcr.last().stop_reason, StopReason::STOP_SEQUENCE);
    EXPECT_EQ(rcr.last().tokens_out, 3);
}

TEST_P(Pipelined, ThirtyTwoSeededStreamsEqualTheirSoloRuns) {
    auto params = [](int k) {
        SamplingParams p{.temperature = 0.7f + 0.05f * (k % 5), .top_k = k % 3 == 0 ? 0 : 5 + k,
                         .top_p = k % 2 ? 0.9f : 1.0f, .min_p = k % 4 == 1 ? 0.05f : 0.0f,
                         .repetition_penalty = k % 3 == 2 ? 1.3f : 1.0f};
        p.seed = 1000 + static_cast<uint64_t>(k);
        return p;
    };
    auto prompt = [](int k) { return std::vector<int32_t>{k % 60, (3 * k + 1) % 60, 5}; };
    std::vector<std::string> solo;
    std::vector<std::vector<int32_t>> solo_ids;
    {
        Fixture f({.n_parallel = 1, .pipeline_depth = GetParam()}, /*chain=*/false);
        for (int k = 0; k < 32; ++k) {
            auto r = drain(*f.engine->submit(req("s" + std::to_string(k), prompt(k), 12, params(k))));
            solo.push_back(r.text());
            std::vector<int32_t> ids;
            for (auto& e : r.events) ids.insert(ids.end(), e.tokens.begin(), e.tokens.end());
            solo_ids.push_back(ids);
        }
    }
    Fixture f({.n_parallel = 32, .pipeline_depth = GetParam()}, /*chain=*/false);
    std::vector<std::shared_ptr<Job>> jobs;
    for (int k = 0; k < 32; ++k) jobs.push_back(f.engine->submit(req("b" + std::to_string(k), prompt(k), 12, params(k))));
    std::set<std::vector<int32_t>> distinct;
    for (int k = 0; k < 32; ++k) {
        auto r = drain(*jobs[static_cast<size_t>(k)]);
        std::vector<int32_t> ids;
        for (auto& e : r.events) ids.insert(ids.end(), e.tokens.begin(), e.tokens.end());
        EXPECT_EQ(ids, solo_ids[static_cast<size_t>(k)]) << "stream " << k;
        EXPECT_EQ(r.text(), solo[static_cast<size_t>(k)]) << "stream " << k;
        distinct.insert(ids);
    }
    EXPECT_GT(distinct.size(), 20u) << "the streams are not all alike";
    size_t widest = 0;
    for (const auto& s : f.model->steps()) widest = std::max(widest, s.size());
    EXPECT_GE(widest, 16u) << "the streams were batched";
}

INSTANTIATE_TEST_SUITE_P(Depth, Pipelined, ::testing::Values(1, 2),
                         [](const auto& info) { return "depth" + std::to_string(info.param); });

}  // namespace
}  // namespace wo::test
