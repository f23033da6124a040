// Backend::prefetch on the GPU: one small kernel that asks the copy engines for the weights'
// bytes in L2 (bulk prefetches), spread over many SMs; the backend queues it off the step's
// chain (a side stream), so kernels that read the weights later find them there.
#include <cstdlib>
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

#ifndef WO_CUDA_PREFETCH_DEFAULT
#define WO_CUDA_PREFETCH_DEFAULT "none"
#endif

namespace wo::cuda {
namespace {

constexpr unsigned kPiece = 4096;  // bytes per bulk prefetch (one per thread)
constexpr int kThreads = 32;
constexpr int kRanges = 4;

struct Ranges {
    const uint8_t* p[kRanges];  // 16-byte aligned
    size_t n[kRanges];          // multiples of 16
    size_t piece0[kRanges + 1];  // range i: pieces [piece0[i], piece0[i + 1])
    int count;
};

// Piece i of the ranges by thread i.
__global__ void __launch_bounds__(kThreads) l2_prefetch_kernel(Ranges r) {
    size_t i = size_t(blockIdx.x) * kThreads + threadIdx.x;
    int k = 0;
    while (k < r.count && i >= r.piece0[k + 1]) ++k;
    if (k < r.count) {
        const size_t at = (i - r.piece0[k]) * kPiece, left = r.n[k] - at;
        prefetch_l2_bulk(r.p[k] + at, unsigned(left < kPiece ? left : kPiece));
    }
}

std::string& modes() {
    static std::string v = [] {
        const char* e = std::getenv("WO_CUDA_PREFETCH");
        return std::string(e ? e : WO_CUDA_PREFETCH_DEFAULT);
    }();
    return v;
}

}  // namespace

bool prefetch_on(const char* what) {
    return ("," + modes() + ",").find("," + std::string(what) + ",") != std::string::npos;
}

std::string set_prefetch_modes(const std::string& m) {
    std::string old = modes();
    modes() = m;
    return old;
}

void l2_prefetch(std::initializer_list<Tensor> ws, cudaStream_t s) {
    WO_CHECK(ws.size() <= size_t(kRanges), "cuda prefetch: at most 4 tensors");
    Ranges r{};
    for (const Tensor& w : ws) {
        if (!w.data || w.rows() == 0 || w.cols() == 0) continue;
        const auto b = reinterpret_cast<uintptr_t>(w.data);
        const uintptr_t end = b + (size_t(w.ne[2]) - 1) * w.nb2 + (size_t(w.ne[1]) - 1) * w.nb1 +
                              row_bytes(w.type, static_cast<uint64_t>(w.ne[0]));
        const uintptr_t p = (b + 15) & ~uintptr_t(15), n = end > p ? (end - p) & ~uintptr_t(15) : 0;
        if (n == 0) continue;
        r.p[r.count] = reinterpret_cast<const uint8_t*>(p), r.n[r.count] = n;
        r.piece0[r.count + 1] = r.piece0[r.count] + (n + kPiece - 1) / kPiece;
        ++r.count;
    }
    if (r.count == 0) return;
    const size_t ctas = (r.piece0[r.count] + kThreads - 1) / kThreads;
    l2_prefetch_kernel<<<dim3(unsigned(ctas)), dim3(kThreads), 0, s>>>(r);
    check_launch("l2_prefetch kernel launch");
}

}  // namespace wo::cuda
