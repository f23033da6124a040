// A generation job as the engine sees it: the request (prompt already tokenized), and the
// channel of events the scheduler thread pushes and an HTTP writer drains.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backend/sampling.h"
#include "engine/logprobs.h"
#include "util/error.h"

namespace wo {

struct GenerateRequest {
    std::string job_id;
    std::string correlation_id;
    std::vector<int32_t> prompt;  // token ids, 1..n_ctx of them
    SamplingParams sampling;
    int max_tokens = 2048;
    std::vector<std::string> stop;  // stop strings, matched on the decoded text
    // Test-only (serve --enable-test-faults): the step that would run this job throws this
    // code instead, so error paths that need a GPU fault or a timeout can be reached.
    std::optional<Code> inject_fault;
    // Number of top entries to report with each generated token's log-probability
    // (engine/logprobs.h); -1 = no log-probabilities.
    int logprobs = -1;
    // Test-only (serve --enable-test-faults): the first generated tokens are these ids instead
    // of sampled ones, so a test can make a random model emit an exact harmony tool call.
    std::vector<int32_t> script;
    // Generate max_tokens even past an end-of-generation token (bench --mixed: fixed lengths).
    bool ignore_eos = false;
};

// Why a sequence ended normally. Errors (including CANCELLED) end with an Error event.
enum class StopReason { MAX_TOKENS, EOS, STOP_SEQUENCE, CONTEXT_FULL };
const char* stop_reason_name(StopReason r);

struct JobEvent {
    enum class Kind { Started, Token, Metrics, End, Error };
    Kind kind = Kind::Error;
    std::string text;             // Token: complete UTF-8, never part of a stop string
    std::vector<int32_t> tokens;  // Token: ids generated since the previous Token event
    std::vector<TokenLogprob> logprobs;  // Token: one per id in `tokens` when requested
    int tokens_out = 0;           // Metrics/End: tokens generated so far
    double decode_time_ms = 0;    // Metrics/End: since the job entered a slot
    uint64_t vram_bytes = 0;      // Metrics
    StopReason stop_reason = StopReason::MAX_TOKENS;  // End
    std::string stop_matched;     // End with STOP_SEQUENCE
    Code code = Code::INTERNAL;   // Error
    std::string message;          // Error
    std::string started_at;       // Started: RFC 3339 UTC

    static JobEvent error(Code c, std::string message);
    static JobEvent token(std::string text, std::vector<int32_t> ids, std::vector<TokenLogprob> logprobs = {});
    static JobEvent end(StopReason r, std::string matched = {});
    static JobEvent started(std::string at);
    static JobEvent metrics(int tokens_out, double decode_time_ms, uint64_t vram_bytes);
};

class Job {
public:
    explicit Job(GenerateRequest r) : request(std::move(r)), submitted(std::chrono::steady_clock::now()) {}

    const GenerateRequest request;
    const std::chrono::steady_clock::time_point submitted;

    // Asks the scheduler to stop the job; it ends with an Error(CANCELLED) event within a step.
    void cancel() { cancelled_ = true; }
    bool cancelled() const { return cancelled_; }

    void push(JobEvent e);
    // Next event, or nullopt after `timeout` with none (the writer uses the pause to check
    // its connection).
    std::optional<JobEvent> pop(std::chrono::milliseconds timeout);
    bool finished() const { return finished_; }  // a terminal event was pushed

private:
    std::atomic<bool> cancelled_{false};
    std::atomic<bool> finished_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<JobEvent> events_;
};

}  // namespace wo
