// Per-op GPU time (WO_CUDA_PROFILE=1): every backend op is bracketed by two CUDA events and, at
// exit, a table of total time by op name (weight type and shape for the matrix products) goes to
// stderr, longest first. Steps then run eagerly (no graphs), so launch gaps show up in small ops:
// compare the total with a graph-replayed step's wall time. How bench/NOTES.md's breakdowns are made.
#pragma once
#include <cuda_runtime.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace wo::cuda {

class OpProfile {
public:
    explicit OpProfile(cudaStream_t s) : stream_(s) {}
    ~OpProfile();  // prints the table
    void begin(std::string name);
    void end();

private:
    void drain();  // waits for the recorded events and adds their times up
    struct Rec {
        std::string name;
        cudaEvent_t a, b;
    };
    struct Sum {
        double ms = 0;
        long calls = 0;
    };
    cudaStream_t stream_;
    std::vector<Rec> pending_;
    std::vector<std::pair<cudaEvent_t, cudaEvent_t>> free_;
    std::map<std::string, Sum> sums_;
};

// RAII bracket; a no-op when p is null.
class OpScope {
public:
    OpScope(OpProfile* p, std::string name) : p_(p) {
        if (p_) p_->begin(std::move(name));
    }
    ~OpScope() {
        if (p_) p_->end();
    }
    OpScope(const OpScope&) = delete;
    OpScope& operator=(const OpScope&) = delete;

private:
    OpProfile* p_;
};

}  // namespace wo::cuda
