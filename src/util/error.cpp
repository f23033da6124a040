// Code names and the invariant-failure path.
#include "util/error.h"

#include <cstdio>
#include <cstdlib>

namespace wo {

std::string_view code_name(Code c) {
    switch (c) {
        case Code::INTERNAL: return "INTERNAL";
        case Code::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
        case Code::IO_ERROR: return "IO_ERROR";
        case Code::GGUF_INVALID: return "GGUF_INVALID";
        case Code::DTYPE_UNSUPPORTED: return "DTYPE_UNSUPPORTED";
        case Code::ARCH_UNSUPPORTED: return "ARCH_UNSUPPORTED";
        case Code::MODEL_LOAD_FAILED: return "MODEL_LOAD_FAILED";
        case Code::TOKENIZER_INVALID: return "TOKENIZER_INVALID";
        case Code::CONVERT_FAILED: return "CONVERT_FAILED";
        case Code::INSUFFICIENT_VRAM: return "INSUFFICIENT_VRAM";
        case Code::VRAM_OOM: return "VRAM_OOM";
        case Code::CUDA_ERROR: return "CUDA_ERROR";
        case Code::INVALID_REQUEST: return "INVALID_REQUEST";
        case Code::CONTEXT_OVERFLOW: return "CONTEXT_OVERFLOW";
        case Code::INFERENCE_TIMEOUT: return "INFERENCE_TIMEOUT";
        case Code::CANCELLED: return "CANCELLED";
        case Code::QUEUE_FULL: return "QUEUE_FULL";
    }
    return "INTERNAL";
}

void check_failed(const char* expr, const char* file, int line, const std::string& msg) {
    std::fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, expr, msg.empty() ? "" : ": ",
                 msg.c_str());
    std::abort();
}

}  // namespace wo
