// CUDA device discovery. The CUDA backend proper lands with its own issue; this is the seam
// that proves CUDA code builds (WORKER_CUDA) and lets tests skip cleanly without a GPU.
#pragma once
#include <string>

namespace wo::cuda {

struct DeviceInfo {
    std::string name;
    int sm = 0;              // compute capability major*10 + minor
    int multiprocessors = 0;
    size_t total_bytes = 0;
};

int device_count();                // 0 when no driver or no device (never throws)
DeviceInfo device_info(int device);  // throws Error(CUDA_ERROR)
// Runs a trivial kernel (y = a*x + y over n floats) and returns max |error|: a smoke test of
// the toolchain, driver and sm_90 code generation.
float saxpy_selftest(int device, int n);

}  // namespace wo::cuda
