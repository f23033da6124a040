// Prometheus text exposition (format 0.0.4) of the worker's metrics.
#include "engine/metrics.h"

#include <cmath>
#include <sstream>

namespace wo {

namespace {

std::string num(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    std::ostringstream os;
    os.precision(12);
    os << v;
    return os.str();
}

std::string with(const std::string& labels, const std::string& extra) {
    if (labels.empty()) return "{" + extra + "}";
    if (extra.empty()) return "{" + labels + "}";
    return "{" + labels + "," + extra + "}";
}

// Latency buckets in ms, from sub-millisecond CPU steps to multi-minute generations.
std::vector<double> ms_buckets(double lo, int n) {
    std::vector<double> b;
    for (int i = 0; i < n; ++i) b.push_back(lo * std::pow(2.0, i));
    return b;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
    std::lock_guard lock(mu_);
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    counts_[i]++;
    sum_ += v;
    n_++;
}

std::string Histogram::render(const std::string& name, const std::string& help, const std::string& labels) const {
    std::lock_guard lock(mu_);
    std::string s = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    uint64_t cum = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
        cum += counts_[i];
        const double le = i < bounds_.size() ? bounds_[i] : INFINITY;
        s += name + "_bucket" + with(labels, "le=\"" + num(le) + "\"") + " " + std::to_string(cum) + "\n";
    }
    s += name + "_sum" + with(labels, "") + " " + num(sum_) + "\n";
    s += name + "_count" + with(labels, "") + " " + std::to_string(n_) + "\n";
    return s;
}

Metrics::Metrics()
    : requests{}, inference_ms(ms_buckets(10, 16)), ttft_ms(ms_buckets(1, 16)), inter_token_ms(ms_buckets(0.5, 14)) {}

std::string Metrics::render(const std::string& labels, uint64_t vram_bytes, double uptime_s, int slots_total) const {
    std::string s;
    auto gauge = [&](const std::string& name, const std::string& help, const std::string& type, double v) {
        s += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
        s += name + with(labels, "") + " " + num(v) + "\n";
    };
    gauge("worker_vram_bytes", "Bytes of model weights and KV cache resident on the backend (host bytes on CPU)", "gauge",
          static_cast<double>(vram_bytes));
    static const char* outcomes[] = {"success", "error", "cancelled", "timeout"};
    s += "# HELP worker_requests_total Finished generation requests by outcome\n# TYPE worker_requests_total counter\n";
    for (size_t i = 0; i < 4; ++i)
        s += "worker_requests_total" + with(labels, std::string("outcome=\"") + outcomes[i] + "\"") + " " +
             std::to_string(requests[i].load()) + "\n";
    gauge("worker_tokens_in_total", "Prompt tokens admitted", "counter", static_cast<double>(tokens_in.load()));
    gauge("worker_tokens_generated_total", "Tokens generated", "counter", static_cast<double>(tokens_generated.load()));
    // The M0 haiku test reads tokens_out_total; same value under that name.
    gauge("tokens_out_total", "Alias of worker_tokens_generated_total", "counter",
          static_cast<double>(tokens_generated.load()));
    s += inference_ms.render("worker_inference_duration_ms", "Time from admission to a slot to the end of a job", labels);
    s += ttft_ms.render("worker_time_to_first_token_ms", "Time from request to first generated token", labels);
    s += inter_token_ms.render("worker_inter_token_ms", "Time between consecutive generated tokens of a job", labels);
    gauge("worker_queue_depth", "Jobs waiting for a slot", "gauge", static_cast<double>(queue_depth.load()));
    gauge("worker_slots_busy", "Slots running a job", "gauge", static_cast<double>(busy_slots.load()));
    gauge("worker_slots_total", "Slots (serve --parallel)", "gauge", slots_total);
    gauge("worker_uptime_seconds", "Seconds since the process started", "gauge", uptime_s);
    return s;
}

}  // namespace wo
