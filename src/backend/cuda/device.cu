// CUDA device discovery and a toolchain self-test kernel.
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/cuda/device.h"
#include "util/error.h"

namespace wo::cuda {
namespace {

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw Error(Code::CUDA_ERROR, std::string(what) + ": " + cudaGetErrorString(e));
}

__global__ void saxpy(int n, float a, const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

}  // namespace

int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver" error
        return 0;
    }
    return n;
}

DeviceInfo device_info(int device) {
    cudaDeviceProp p{};
    check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
    return {p.name, p.major * 10 + p.minor, p.multiProcessorCount, p.totalGlobalMem};
}

float saxpy_selftest(int device, int n) {
    check(cudaSetDevice(device), "cudaSetDevice");
    std::vector<float> x(n), y(n);
    for (int i = 0; i < n; ++i) { x[i] = 0.5f * i; y[i] = 1.0f - i; }
    float *dx = nullptr, *dy = nullptr;
    check(cudaMalloc(&dx, n * sizeof(float)), "cudaMalloc");
    check(cudaMalloc(&dy, n * sizeof(float)), "cudaMalloc");
    check(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    check(cudaMemcpy(dy, y.data(), n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    saxpy<<<(n + 255) / 256, 256>>>(n, 2.0f, dx, dy);
    check(cudaGetLastError(), "saxpy launch");
    std::vector<float> out(n);
    check(cudaMemcpy(out.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
    cudaFree(dx);
    cudaFree(dy);
    float err = 0;
    for (int i = 0; i < n; ++i) err = std::fmax(err, std::fabs(out[i] - (2.0f * x[i] + y[i])));
    return err;
}

}  // namespace wo::cuda
