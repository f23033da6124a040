// wo::Error: the one exception type that crosses module boundaries, with a stable code.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>

namespace wo {

// Stable codes: they appear in CLI output (`error: CODE: message`), SSE `error` events and logs.
// Never renumber or rename one; add new codes at the end.
enum class Code {
    INTERNAL,
    INVALID_ARGUMENT,   // a CLI or API caller passed something unusable
    IO_ERROR,           // a file could not be opened, read or written
    GGUF_INVALID,       // a GGUF file is malformed (the message names what and where)
    DTYPE_UNSUPPORTED,  // a tensor type the code cannot handle
    ARCH_UNSUPPORTED,   // general.architecture names no registered model
    MODEL_LOAD_FAILED,  // metadata or tensors inconsistent with the architecture
    TOKENIZER_INVALID,  // tokenizer data missing or malformed
    CONVERT_FAILED,     // HF checkpoint could not be converted
    INSUFFICIENT_VRAM,
    VRAM_OOM,
    CUDA_ERROR,
    INVALID_REQUEST,
    CONTEXT_OVERFLOW,
    INFERENCE_TIMEOUT,
    CANCELLED,
    QUEUE_FULL,
};

std::string_view code_name(Code c);

class Error : public std::runtime_error {
public:
    Error(Code code, const std::string& message) : std::runtime_error(message), code_(code) {}
    Code code() const noexcept { return code_; }

private:
    Code code_;
};

// Programmer errors (broken invariants), not bad input: abort with file:line.
[[noreturn]] void check_failed(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace wo

#define WO_CHECK(cond, ...)                                                       \
    do {                                                                          \
        if (!(cond)) ::wo::check_failed(#cond, __FILE__, __LINE__, std::string{__VA_ARGS__}); \
    } while (0)
