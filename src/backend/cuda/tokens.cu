// resolve_tokens: a step's token ids on the device (-1 = the slot's last sampled id), recorded in
// the slot's history for the repetition penalty.
#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

__global__ void resolve_k(int32_t* tokens, const int32_t* in, const int32_t* pos, const int32_t* slot,
                          const int32_t* last_id, int32_t* history, int64_t hist_ld, int n_slots, int n_ctx,
                          int64_t n) {
    pdl_begin();
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const int32_t sl = slot[i], ps = pos[i];
    if (sl < 0 || sl >= n_slots || ps < 0 || ps >= n_ctx) __trap();  // broken invariant (the CPU aborts)
    const int32_t t = in[i] >= 0 ? in[i] : last_id[sl];
    tokens[i] = t;
    history[sl * hist_ld + ps] = t;
}

}  // namespace

void resolve_tokens(Tensor tokens, Tensor in, Tensor pos, Tensor slot, SlotState st, cudaStream_t s) {
    const int64_t n = in.cols();
    WO_CHECK(tokens.cols() >= n && pos.cols() >= n && slot.cols() >= n, "resolve_tokens shapes");
    if (n == 0) return;
    launch("resolve_k", resolve_k, static_cast<unsigned>((n + 255) / 256), 256, 0, s,
           static_cast<int32_t*>(tokens.data), i32_of(in), i32_of(pos), i32_of(slot), i32_of(st.last_id),
           static_cast<int32_t*>(st.history.data), static_cast<int64_t>(st.history.nb1 / sizeof(int32_t)),
           static_cast<int>(st.history.rows()), static_cast<int>(st.history.cols()), n);
    check_launch("resolve_tokens");
}

}  // namespace wo::cuda
