// The scheduler on test doubles (fake_model.h): event order, stop reasons, UTF-8 hold-back,
// stop strings, chunked prefill interleaved with decoding, cancellation, seeded sampling alone
// vs batched, step failures, capacity and load failures.
#include <gtest/gtest.h>

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
        engine = std::make_unique<Engine>(o, [this, chain](const EngineOptions&) {
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

TEST(Scheduler, QueueLimitAndDuplicateIds) {
    // Never started: jobs stay queued.
    Engine e({.n_parallel = 1, .max_queue = 1}, [](const EngineOptions&) -> LoadedModel { throw Error(Code::INTERNAL, "unused"); });
    e.submit(req("a", {1}, 1));
    try {
        e.submit(req("b", {1}, 1));
        FAIL();
    } catch (const Error& err) {
        EXPECT_EQ(err.code(), Code::QUEUE_FULL);
    }
    Engine e2({.max_queue = 4}, [](const EngineOptions&) -> LoadedModel { throw Error(Code::INTERNAL, "unused"); });
    e2.submit(req("a", {1}, 1));
    EXPECT_THROW(e2.submit(req("a", {1}, 1)), Error);
}

TEST(Scheduler, LoadFailureFailsQueuedJobsWithModelLoadFailed) {
    Engine e({}, [](const EngineOptions&) -> LoadedModel {
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
    EXPECT_LE(at.size(), 3u);
    for (size_t i = 1; i < at.size(); ++i) EXPECT_GE(at[i] - at[i - 1], 250.0);
}

}  // namespace
}  // namespace wo::test
