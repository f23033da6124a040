// CUDA error checking (check.h).
#include <atomic>
#include <string>

#include "backend/cuda/check.h"
#include "util/error.h"

namespace wo::cuda {
namespace {

std::atomic<bool> g_sticky{false};

// Errors after which the context is unusable (CUDA runtime docs: "the process must be
// terminated and relaunched").
bool is_sticky(cudaError_t e) {
    switch (e) {
        case cudaErrorIllegalAddress:
        case cudaErrorLaunchFailure:
        case cudaErrorHardwareStackError:
        case cudaErrorIllegalInstruction:
        case cudaErrorMisalignedAddress:
        case cudaErrorInvalidAddressSpace:
        case cudaErrorInvalidPc:
        case cudaErrorAssert:
        case cudaErrorECCUncorrectable:
        case cudaErrorLaunchTimeout:
        case cudaErrorUnknown:
            return true;
        default:
            return false;
    }
}

}  // namespace

void check(cudaError_t e, const char* call) {
    if (e == cudaSuccess) return;
    if (is_sticky(e))
        g_sticky = true;
    else
        cudaGetLastError();  // a recoverable error must not be reported again by the next call
    throw Error(Code::CUDA_ERROR, std::string(call) + ": " + cudaGetErrorString(e));
}

void check_launch(const char* kernel) {
    const cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return;
    if (is_sticky(e)) g_sticky = true;
    throw Error(Code::CUDA_ERROR, std::string("launch of ") + kernel + ": " + cudaGetErrorString(e));
}

bool sticky_error() { return g_sticky.load(); }

}  // namespace wo::cuda
