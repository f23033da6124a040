// What the standalone probes (bench/*.cu, built by scripts/gpu-check's PROBE=1 with a plain nvcc
// line) share: CK(call) exits with the CUDA error's text when a runtime call fails.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define CK(x)                                                             \
    do {                                                                  \
        cudaError_t e_ = (x);                                             \
        if (e_ != cudaSuccess) {                                          \
            std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); \
            std::exit(1);                                                 \
        }                                                                 \
    } while (0)
