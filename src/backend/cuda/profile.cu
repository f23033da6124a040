#include "backend/cuda/profile.h"

#include <algorithm>
#include <cstdio>

namespace wo::cuda {

void OpProfile::begin(std::string name) {
    if (free_.empty()) {
        cudaEvent_t a, b;
        cudaEventCreate(&a);
        cudaEventCreate(&b);
        free_.push_back({a, b});
    }
    auto [a, b] = free_.back();
    free_.pop_back();
    cudaEventRecord(a, stream_);
    pending_.push_back({std::move(name), a, b});
}

void OpProfile::end() {
    cudaEventRecord(pending_.back().b, stream_);
    if (pending_.size() >= 4096) drain();
}

void OpProfile::drain() {
    if (pending_.empty()) return;
    cudaEventSynchronize(pending_.back().b);
    for (Rec& r : pending_) {
        float ms = 0;
        cudaEventElapsedTime(&ms, r.a, r.b);
        Sum& s = sums_[r.name];
        s.ms += ms;
        ++s.calls;
        free_.push_back({r.a, r.b});
    }
    pending_.clear();
}

OpProfile::~OpProfile() {
    drain();
    std::vector<std::pair<std::string, Sum>> rows(sums_.begin(), sums_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return x.second.ms > y.second.ms; });
    double total = 0;
    for (const auto& r : rows) total += r.second.ms;
    std::fprintf(stderr, "cuda op profile (events around each op, graphs off): %.1f ms in all\n", total);
    std::fprintf(stderr, "%10s %8s %9s %6s  %s\n", "total ms", "calls", "avg us", "%", "op");
    for (const auto& [name, s] : rows)
        std::fprintf(stderr, "%10.2f %8ld %9.1f %6.2f  %s\n", s.ms, s.calls, 1000.0 * s.ms / double(s.calls),
                     100.0 * s.ms / (total > 0 ? total : 1), name.c_str());
    for (auto [a, b] : free_) cudaEventDestroy(a), cudaEventDestroy(b);
}

}  // namespace wo::cuda
