// libFuzzer target for the safetensors header parser: any input either parses or throws
// Error(CONVERT_FAILED); every tensor of a parsed file lies inside the input and its byte count
// matches dtype x shape, and its float elements can be read.
#include <cstdint>
#include <cstdlib>

#include "convert/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const auto tensors = wo::convert::parse_safetensors(data, size, "fuzz.safetensors");
        float sink = 0;
        for (const auto& t : tensors) {
            if (t.data < data || t.data + t.n_bytes > data + size) std::abort();
            if (t.is_float() && t.numel > 0) sink += t.at(0) + t.at(t.numel - 1);
        }
        (void)sink;
    } catch (const wo::Error& e) {
        if (e.code() != wo::Code::CONVERT_FAILED) std::abort();
    }
    return 0;
}
