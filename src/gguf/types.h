// ggml tensor types as GGUF stores them: ids, names, block size and bytes per block.
// This is container knowledge (the reader needs it to validate sizes); the block layouts
// and the arithmetic on them live in src/quant/.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace wo {

// Values are the on-disk ggml_type ids; gaps are ids ggml has retired.
enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct TypeTraits {
    GgmlType type;
    std::string_view name;
    uint32_t block_size;   // elements per block (1 for plain types)
    uint32_t type_size;    // bytes per block
    bool supported;        // src/quant can dequantize it (worker-orcd loads it)
};

// nullopt for an id ggml does not define.
std::optional<TypeTraits> type_traits(uint32_t id);
const TypeTraits& traits(GgmlType t);
inline std::string_view type_name(GgmlType t) { return traits(t).name; }

// Bytes of a row of n elements; n must be a multiple of the block size (callers validate).
inline uint64_t row_bytes(GgmlType t, uint64_t n) {
    const TypeTraits& tr = traits(t);
    return n / tr.block_size * tr.type_size;
}

}  // namespace wo
