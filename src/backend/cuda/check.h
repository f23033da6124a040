// CUDA error checking shared by the backend and the kernel files: every failing call becomes
// Error(CUDA_ERROR, "<call>: <reason>"), and an error that poisons the context (a fault inside a
// kernel) is remembered so the backend can report itself unhealthy.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace wo::cuda {

// Throws Error(CUDA_ERROR) naming `call` unless e == cudaSuccess.
void check(cudaError_t e, const char* call);
// Checks the launch of `kernel` just queued (cudaGetLastError).
void check_launch(const char* kernel);
// True once an unrecoverable (sticky) error was seen in this process: every later CUDA call on
// the context fails, so the worker must be restarted.
bool sticky_error();

// Diagnostics, never for results: WO_CUDA_SKIP=name,name,... drops every launch() of the kernels
// so named (launch()'s `what`), so that a bench's step time without them, against the default,
// is their cost inside the step's chain (their outputs go stale: the tokens are garbage).
// launch_skipped: whether `what` is dropped; set_launch_skip (tests) replaces the list, returns
// the old one.
bool launch_skipped(const char* what);
std::string set_launch_skip(const std::string& names);

// Blocks of `threads` covering n items, capped so a grid-stride loop covers the rest.
inline unsigned grid_for(int64_t n, int threads) {
    const int64_t b = (n + threads - 1) / threads;
    return static_cast<unsigned>(b < 1 ? 1 : (b > (1 << 20) ? (1 << 20) : b));
}

}  // namespace wo::cuda
