// Process counters and histograms the scheduler records and GET /metrics renders in the
// Prometheus text format. Labels stay low-cardinality: outcome only, never a job id.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace wo {

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);  // upper bounds, ascending; +Inf is implied
    void observe(double v);
    // `name_bucket{le=..}`, `name_sum`, `name_count` lines with a HELP/TYPE header.
    std::string render(const std::string& name, const std::string& help, const std::string& labels) const;

private:
    std::vector<double> bounds_;
    mutable std::mutex mu_;
    std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = +Inf
    double sum_ = 0;
    uint64_t n_ = 0;
};

enum class Outcome { success, error, cancelled, timeout };

struct Metrics {
    Metrics();
    std::array<std::atomic<uint64_t>, 4> requests;  // by Outcome
    std::atomic<uint64_t> tokens_in{0}, tokens_generated{0};
    std::atomic<int64_t> queue_depth{0}, busy_slots{0};
    Histogram inference_ms, ttft_ms, inter_token_ms;

    void count(Outcome o) { requests[static_cast<size_t>(o)]++; }
    // The whole exposition; `labels` (e.g. component="worker-orcd",worker_id="w1") go on every
    // sample so a scraper can tell workers apart.
    std::string render(const std::string& labels, uint64_t vram_bytes, double uptime_s, int slots_total) const;
};

}  // namespace wo
