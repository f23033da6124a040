// Job event channel.
#include "engine/job.h"

namespace wo {

const char* stop_reason_name(StopReason r) {
    switch (r) {
        case StopReason::MAX_TOKENS: return "MAX_TOKENS";
        case StopReason::EOS: return "EOS";
        case StopReason::STOP_SEQUENCE: return "STOP_SEQUENCE";
        case StopReason::CONTEXT_FULL: return "CONTEXT_FULL";
    }
    return "MAX_TOKENS";
}

JobEvent JobEvent::error(Code c, std::string message) {
    JobEvent e;
    e.kind = Kind::Error;
    e.code = c;
    e.message = std::move(message);
    return e;
}

JobEvent JobEvent::token(std::string text, std::vector<int32_t> ids, std::vector<TokenLogprob> logprobs) {
    JobEvent e;
    e.kind = Kind::Token;
    e.text = std::move(text);
    e.tokens = std::move(ids);
    e.logprobs = std::move(logprobs);
    return e;
}

JobEvent JobEvent::end(StopReason r, std::string matched) {
    JobEvent e;
    e.kind = Kind::End;
    e.stop_reason = r;
    e.stop_matched = std::move(matched);
    return e;
}

JobEvent JobEvent::started(std::string at) {
    JobEvent e;
    e.kind = Kind::Started;
    e.started_at = std::move(at);
    return e;
}

JobEvent JobEvent::metrics(int tokens_out, double decode_time_ms, uint64_t vram_bytes) {
    JobEvent e;
    e.kind = Kind::Metrics;
    e.tokens_out = tokens_out;
    e.decode_time_ms = decode_time_ms;
    e.vram_bytes = vram_bytes;
    return e;
}

void Job::push(JobEvent e) {
    {
        std::lock_guard lock(mu_);
        if (e.kind == JobEvent::Kind::End || e.kind == JobEvent::Kind::Error) finished_ = true;
        events_.push_back(std::move(e));
    }
    cv_.notify_all();
}

std::optional<JobEvent> Job::pop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
    JobEvent e = std::move(events_.front());
    events_.pop_front();
    return e;
}

}  // namespace wo
