// Continuous batching: every step decodes one token for each generating slot and feeds prompt
// chunks of newly admitted jobs in the same forward; the model samples on the backend. The host
// submits step N+1 before it reads step N's ids (when the backend runs asynchronously), then
// detokenizes (UTF-8 safe), applies stop strings and pushes events. A job that ends at step N
// may have one more token computed in step N+1: it is dropped, never emitted. Runs on the
// engine's thread, which alone touches the model.
#include <algorithm>
#include <optional>
#include <span>

#include "engine/engine.h"
#include "engine/logprobs.h"
#include "engine/stop_matcher.h"
#include "util/log.h"

namespace wo {

using Clock = std::chrono::steady_clock;

namespace {
double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

struct Engine::Slot {
    int id = 0;
    std::shared_ptr<Job> job;
    std::vector<int32_t> tokens;  // prompt + generated
    int n_prompt = 0;
    int n_past = 0;   // positions submitted to the model (cached, or in a step in flight)
    int n_sched = 0;  // tokens a submitted step samples for this job (n_gen once all are read)
    int n_gen = 0;    // sampled tokens the host has read
    int refs = 0;     // steps in flight that hold this slot: it is not reused before they end
    uint64_t gen = 0; // which job the slot holds, so a late result of a finished job is dropped
    std::optional<StreamDecoder> decoder;
    std::optional<StopMatcher> stop;
    std::vector<int32_t> unsent;  // ids generated since the last Token event
    std::vector<TokenLogprob> unsent_lp;  // their log-probabilities, when requested
    Clock::time_point admitted, last_token, last_metrics;

    bool active() const { return job != nullptr; }
    bool prefilling() const { return n_past < n_prompt; }
};

// One submitted step: who was fed, and whether their token is sampled.
struct Engine::InFlight {
    struct Fed {
        Slot* slot;
        uint64_t gen;
        bool sample;
    };
    std::vector<Fed> fed;
};

void Engine::schedule_loop() {
    std::vector<Slot> slots(static_cast<size_t>(options_.n_parallel));
    for (size_t i = 0; i < slots.size(); ++i) slots[i].id = static_cast<int>(i);
    std::deque<InFlight> flight;
    const int depth = std::max(1, options_.pipeline_depth > 0 ? options_.pipeline_depth
                                                              : loaded_.model->pipeline_depth());
    for (;;) {
        {
            std::unique_lock lock(mu_);
            const bool busy = !flight.empty() ||
                              std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return s.active(); });
            cv_.wait(lock, [&] { return stopping_ || busy || !queue_.empty(); });
            if (stopping_) break;
        }
        check_jobs(slots);
        admit(slots);
        // Submit the next step before reading the last one's ids, so the device never waits
        // for the host's detokenizing and streaming.
        bool submitted = false;
        if (static_cast<int>(flight.size()) < depth) submitted = submit_step(slots, flight);
        if (!flight.empty() && (!submitted || static_cast<int>(flight.size()) >= depth)) {
            InFlight f = std::move(flight.front());
            flight.pop_front();
            complete_step(f);
        }
    }
    // Shutdown: steps in flight end first (their results are dropped), then every job still
    // known ends with CANCELLED.
    for (InFlight& f : flight) {
        try {
            loaded_.model->wait();
        } catch (const std::exception&) {
        }
        for (auto& fd : f.fed) fd.slot->refs--;
    }
    for (Slot& s : slots)
        if (s.active()) finish(s, JobEvent::error(Code::CANCELLED, "worker shutting down"));
    std::lock_guard lock(mu_);
    for (auto& j : queue_)
        j->push(JobEvent::error(Code::CANCELLED, "worker shutting down"));
    queue_.clear();
    active_.clear();
}

void Engine::admit(std::vector<Slot>& slots) {
    for (Slot& s : slots) {
        if (s.active() || s.refs > 0) continue;
        std::shared_ptr<Job> job;
        {
            std::lock_guard lock(mu_);
            while (!queue_.empty() && !job) {
                job = queue_.front();
                queue_.pop_front();
                if (job->cancelled()) {  // cancelled while waiting: never takes a slot
                    active_.erase(job->request.job_id);
                    job->push(JobEvent::error(Code::CANCELLED, "cancelled while queued"));
                    metrics_.count(Outcome::cancelled);
                    job.reset();
                }
            }
            metrics_.queue_depth = static_cast<int64_t>(queue_.size());
        }
        if (!job) return;
        const GenerateRequest& r = job->request;
        if (static_cast<int>(r.prompt.size()) > info_.n_ctx) {  // queued before the context was known
            {
                std::lock_guard lock(mu_);
                active_.erase(r.job_id);
            }
            job->push(JobEvent::error(Code::INVALID_REQUEST, "prompt: " + std::to_string(r.prompt.size()) + " tokens exceed the context of " +
                                  std::to_string(info_.n_ctx)));
            metrics_.count(Outcome::error);
            continue;
        }
        loaded_.model->clear_slot(s.id);
        loaded_.model->set_sampling(s.id, r.sampling);
        s.job = job;
        s.gen++;
        s.tokens = r.prompt;
        s.n_prompt = static_cast<int>(r.prompt.size());
        s.n_past = s.n_sched = s.n_gen = 0;
        s.decoder.emplace(*loaded_.tokenizer);
        s.stop.emplace(r.stop);
        s.unsent.clear();
        s.unsent_lp.clear();
        s.admitted = s.last_metrics = Clock::now();
        metrics_.busy_slots++;
        metrics_.tokens_in += r.prompt.size();
        log::info("execute_start", {{"job_id", r.job_id}, {"correlation_id", r.correlation_id}, {"slot", s.id},
                                    {"prompt_tokens", r.prompt.size()}, {"max_tokens", r.max_tokens},
                                    {"seed", r.sampling.seed}, {"queued_ms", ms_between(job->submitted, s.admitted)}});
        job->push(JobEvent::started(utc_now_rfc3339()));
    }
}

void Engine::finish(Slot& s, const JobEvent& terminal) {
    const auto now = Clock::now();
    const GenerateRequest& r = s.job->request;
    JobEvent e = terminal;
    e.tokens_out = s.n_gen;
    e.decode_time_ms = ms_between(s.admitted, now);
    Outcome outcome = Outcome::success;
    if (e.kind == JobEvent::Kind::Error)
        outcome = e.code == Code::CANCELLED ? Outcome::cancelled
                  : e.code == Code::INFERENCE_TIMEOUT ? Outcome::timeout
                                                      : Outcome::error;
    metrics_.count(outcome);
    metrics_.inference_ms.observe(e.decode_time_ms);
    nlohmann::json f = {{"job_id", r.job_id}, {"correlation_id", r.correlation_id}, {"slot", s.id},
                        {"tokens_out", s.n_gen}, {"decode_time_ms", e.decode_time_ms}};
    if (e.kind == JobEvent::Kind::End) {
        f["stop_reason"] = stop_reason_name(e.stop_reason);
        log::info("execute_end", f);
    } else {
        f["code"] = std::string(code_name(e.code));
        f["message"] = e.message;
        (e.code == Code::CANCELLED ? log::info : log::warn)("execute_end", f);
    }
    // Free everything before the terminal event: a client that sees it may at once find the
    // slot free and reuse the job id.
    {
        std::lock_guard lock(mu_);
        active_.erase(r.job_id);
    }
    loaded_.model->clear_slot(s.id);  // frees the slot's cached positions for the next job
    std::shared_ptr<Job> job = std::move(s.job);
    s.decoder.reset();
    s.stop.reset();
    metrics_.busy_slots--;
    job->push(std::move(e));
}

void Engine::check_jobs(std::vector<Slot>& slots) {
    const auto now = Clock::now();
    // Cancellation, timeouts and injected faults are checked before any work: a cancelled job
    // never costs another forward.
    for (Slot& s : slots) {
        if (!s.active()) continue;
        const GenerateRequest& r = s.job->request;
        if (s.job->cancelled())
            finish(s, JobEvent::error(Code::CANCELLED, "cancelled"));
        else if (options_.timeout_ms > 0 && ms_between(s.admitted, now) > static_cast<double>(options_.timeout_ms))
            finish(s, JobEvent::error(Code::INFERENCE_TIMEOUT, "inference exceeded " + std::to_string(options_.timeout_ms) + " ms"));
        else if (r.inject_fault)
            finish(s, JobEvent::error(*r.inject_fault, "injected fault (serve --enable-test-faults)"));
    }
}

void Engine::fail_step(const InFlight& f, const std::exception& e) {
    // A failed step poisons every sequence in it (a device fault is not per sequence).
    const auto* we = dynamic_cast<const Error*>(&e);
    Code c = we ? we->code() : Code::INTERNAL;
    if (c == Code::CONTEXT_OVERFLOW || c == Code::INVALID_REQUEST || c == Code::INVALID_ARGUMENT) c = Code::INTERNAL;
    for (const auto& fd : f.fed)
        if (fd.slot->active() && fd.slot->gen == fd.gen) finish(*fd.slot, JobEvent::error(c, e.what()));
}

bool Engine::submit_step(std::vector<Slot>& slots, std::deque<InFlight>& flight) {
    // One token per generating slot (the id its last step sampled, still on the device), then
    // prompt chunks up to the step budget.
    std::vector<BatchToken> batch;
    InFlight f;
    for (Slot& s : slots) {
        if (!s.active() || s.prefilling() || s.n_sched == 0) continue;
        if (s.n_sched >= s.job->request.max_tokens || s.n_past >= info_.n_ctx) continue;
        const auto& script = s.job->request.script;
        const size_t last = static_cast<size_t>(s.n_sched - 1);  // the draw this token feeds back
        batch.push_back({last < script.size() ? script[last] : kLastSampled, s.n_past, s.id, true, true});
        f.fed.push_back({&s, s.gen, true});
    }
    int budget = options_.prefill_chunk;  // prompt tokens this step, on top of the decode tokens
    std::vector<Slot*> waiting;
    for (Slot& s : slots)
        if (s.active() && s.prefilling()) waiting.push_back(&s);
    // Oldest first, so a later long prompt cannot starve an earlier one.
    std::sort(waiting.begin(), waiting.end(), [](Slot* a, Slot* b) { return a->admitted < b->admitted; });
    for (Slot* s : waiting) {
        if (budget <= 0) break;
        const int take = std::min(budget, s->n_prompt - s->n_past);
        for (int i = 0; i < take; ++i) {
            const int pos = s->n_past + i;
            batch.push_back({s->tokens[static_cast<size_t>(pos)], pos, s->id, pos + 1 == s->n_prompt});
        }
        f.fed.push_back({s, s->gen, s->n_past + take == s->n_prompt});
        budget -= take;
    }
    if (batch.empty()) return false;
    // Logits come back only for steps holding a request that wants log-probabilities.
    bool want_logits = false;
    for (const auto& fd : f.fed) want_logits |= fd.sample && fd.slot->job->request.logprobs >= 0;
    try {
        loaded_.model->submit(batch, want_logits);
    } catch (const std::exception& e) {
        fail_step(f, e);
        return true;
    }
    for (const BatchToken& t : batch) slots[static_cast<size_t>(t.slot)].n_past = t.pos + 1;
    for (auto& fd : f.fed) {
        fd.slot->refs++;
        if (fd.sample) fd.slot->n_sched++;
    }
    flight.push_back(std::move(f));
    return true;
}

void Engine::complete_step(InFlight& f) {
    StepResult res;
    try {
        res = loaded_.model->wait();
    } catch (const std::exception& e) {
        for (auto& fd : f.fed) fd.slot->refs--;
        fail_step(f, e);
        return;
    }
    for (auto& fd : f.fed) fd.slot->refs--;
    const Tokenizer& tok = *loaded_.tokenizer;
    size_t row = 0;
    const auto t_done = Clock::now();
    const size_t V = static_cast<size_t>(info_.vocab_size);
    for (auto& fd : f.fed) {
        if (!fd.sample) continue;
        const size_t r = row++;
        const int32_t sampled = res.ids.at(r);
        Slot& s = *fd.slot;
        if (!s.active() || s.gen != fd.gen) continue;  // the job ended while this step ran
        const GenerateRequest& req = s.job->request;
        // A test script (serve --enable-test-faults) overrides the device's draw; the next step
        // feeds the scripted id explicitly (submit_step).
        const int32_t id = s.n_gen < static_cast<int>(req.script.size()) ? req.script[static_cast<size_t>(s.n_gen)]
                                                                          : sampled;
        std::span<const float> lg;
        if (!res.logits.empty()) lg = std::span<const float>(res.logits.data() + r * V, V);
        s.tokens.push_back(id);
        s.n_gen++;
        metrics_.tokens_generated++;
        if (s.n_gen == 1)
            metrics_.ttft_ms.observe(ms_between(s.job->submitted, t_done));
        else
            metrics_.inter_token_ms.observe(ms_between(s.last_token, t_done));
        s.last_token = t_done;

        // `text`: what this token released before the end; whatever the decoder and the stop
        // matcher still hold is final now too.
        auto end_with = [&](StopReason why, std::string text) {
            if (!s.stop->matched()) {
                text += s.stop->push(s.decoder->flush());
                if (s.stop->matched()) why = StopReason::STOP_SEQUENCE;
                else text += s.stop->flush();
            }
            if (!text.empty() || !s.unsent.empty())
                s.job->push(JobEvent::token(std::move(text), std::move(s.unsent), std::move(s.unsent_lp)));
            s.unsent.clear();
            s.unsent_lp.clear();
            finish(s, JobEvent::end(why, s.stop->which()));
        };
        if (tok.is_eog(id) && !req.ignore_eos) {  // the end-of-generation token itself is never text
            end_with(StopReason::EOS, {});
            continue;
        }
        s.unsent.push_back(id);
        if (req.logprobs >= 0 && !lg.empty()) s.unsent_lp.push_back(token_logprobs(lg, id, req.logprobs));
        std::string text = s.stop->push(s.decoder->push(id));
        if (s.stop->matched()) {
            end_with(StopReason::STOP_SEQUENCE, std::move(text));
            continue;
        }
        if (!text.empty()) {
            s.job->push(JobEvent::token(std::move(text), std::move(s.unsent), std::move(s.unsent_lp)));
            s.unsent.clear();
            s.unsent_lp.clear();
        }
        if (s.n_gen >= s.job->request.max_tokens) {
            end_with(StopReason::MAX_TOKENS, {});
            continue;
        }
        // The next step would feed this token at position tokens.size()-1.
        if (static_cast<int>(s.tokens.size()) > info_.n_ctx) {
            end_with(StopReason::CONTEXT_FULL, {});
            continue;
        }
        if (ms_between(s.last_metrics, t_done) >= 250) {
            s.last_metrics = t_done;
            s.job->push(JobEvent::metrics(s.n_gen, ms_between(s.admitted, t_done), info_.weight_bytes + info_.kv_bytes));
        }
    }
}

}  // namespace wo
