// CUDA error checking (check.h).
#include <atomic>
#include <cstdlib>
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

std::string& skip_list() {
    static std::string v = [] {
        const char* e = std::getenv("WO_CUDA_SKIP");
        return e && *e ? "," + std::string(e) + "," : std::string();
    }();
    return v;
}

}  // namespace

bool launch_skipped(const char* what) {
    const std::string& v = skip_list();
    return !v.empty() && v.find("," + std::string(what) + ",") != std::string::npos;
}

std::string set_launch_skip(const std::string& names) {
    std::string old = skip_list();
    skip_list() = names.empty() ? std::string() : "," + names + ",";
    return old.empty() ? old : old.substr(1, old.size() - 2);
}

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
