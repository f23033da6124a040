// What attention.cu (the CUDA-core kernel) and attention_mma.cu (prompt rows on tensor cores)
// share: the launch arguments.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"
#include "backend/cuda/util.cuh"

namespace wo::cuda {

template <typename C>
struct AttnArgs {
    Rows out, q;
    const C *k, *v;
    int64_t row_ld, slot_ld;  // in elements
    int n_rows, n_slots;
    const int32_t *pos, *slot;
    int n_head, group, hd;
    float scale;
    int window;
    const float* sinks;
    bool vec;    // key rows allow 16-byte loads
    int64_t i0;  // the launch's first token (rows [i0, i0 + gridDim.x / n_head))
    // Decode rows on tensor cores: also the split of `out`'s rows for the next tensor-core product
    // (tmv_split's layout and bits at n_head * hd columns), when not null.
    uint4* split_xs = nullptr;
    float* split_xm = nullptr;
};

// Queues prompt rows [i0, i0 + rows) of `a` on tensor cores (attention_mma.cu) if the shapes
// allow it (head_dim 64, 16-byte cache rows, at most 64 query heads per KV head); false: the
// caller runs them on the CUDA-core kernel. WO_CUDA_FA=0: always false.
bool attention_mma_rows(const AttnArgs<__half>& a, int64_t i0, int64_t rows, cudaStream_t s);
// The decode rows [0, rows) of `a` on tensor cores, split over the keys (attention_mma.cu), if
// the shapes allow it (as above, at most 16 query heads per KV head) and `scratch` holds their
// partial states; false: the caller runs them on the CUDA-core kernel.
bool attention_mma_decode_rows(const AttnArgs<__half>& a, int64_t rows, void* scratch, size_t bytes,
                               cudaStream_t s);

}  // namespace wo::cuda
