// The MoE expert FFN with expert ids that stay on the device (kernels.h, Backend::moe_ffn).
//
// Four launches, all with grids fixed by the shapes (never by the routing), so the sequence is
// capturable in a CUDA graph:
//  1. group:   one CTA counts the (token, choice) pairs p = i*k + j per expert, scans the counts
//              into offsets and scatters the pair ids into `list`, grouped by expert (the order
//              inside a group is whatever the atomics give: it decides only where a pair's dot
//              is computed, never its value).
//  1b.         ... and lists the touched experts in id order (`active`, -1 after the last).
//  2. gate_up: grid (min(n_expert, pairs), n_ff/2): CTA x takes the x-th touched expert e (or
//              exits if fewer are touched); it owns 2 rows of gate and up and runs every pair of
//              e through them (passes of 8 tokens, weights re-read from L1/L2), then
//              G[p] = act(g + gb, u + ub).
//  3. down:    grid (min(n_expert, pairs), n_embd/2): O[p] = down_e · G[p] + db.
//  4. combine: y[i] += w[i][j] · O[i*k+j] for j = 0..k-1 in order, one thread per column.
// Every dot is cta_dots' (matvec.cuh), the same order as matmul; so a pair's result depends on
// nothing but its token and expert. An out-of-range expert id cannot throw on the device: its
// pair is left out of every group and contributes NaN to y in the combine.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/kernels.h"
#include "backend/cuda/matvec.cuh"

namespace wo::cuda {
namespace {

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// Scratch layout for n_exp experts and n_pairs pairs.
struct MoeScratch {
    size_t counts = 0, offsets = 0, active = 0, list = 0, g = 0, o = 0, total = 0;
    MoeScratch(int64_t n_exp, int64_t n_pairs, int64_t n_ff, int64_t d) {
        size_t at = 0;
        counts = at, at += align256(sizeof(int32_t) * size_t(n_exp));
        active = at, at += align256(sizeof(int32_t) * size_t(n_exp + 1));
        offsets = at, at += align256(sizeof(int32_t) * size_t(n_exp + 1));
        list = at, at += align256(sizeof(int32_t) * size_t(n_pairs));
        g = at, at += align256(sizeof(float) * size_t(n_pairs) * size_t(n_ff));
        o = at, at += align256(sizeof(float) * size_t(n_pairs) * size_t(d));
        total = at;
    }
};

struct GroupArgs {
    const uint8_t* ids;
    size_t ids_nb1;
    int k, n_exp;
    int64_t n_pairs;
    int32_t *counts, *offsets, *active, *list;
};

// One CTA; shared memory: 2 * n_exp ints (counts, then cursors).
__global__ void group_kernel(GroupArgs a) {
    extern __shared__ int32_t sh[];
    int32_t* cnt = sh;
    int32_t* cur = sh + a.n_exp;
    for (int e = threadIdx.x; e < a.n_exp; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (int64_t p = threadIdx.x; p < a.n_pairs; p += blockDim.x) {
        const int32_t e = reinterpret_cast<const int32_t*>(a.ids + size_t(p / a.k) * a.ids_nb1)[p % a.k];
        if (e >= 0 && e < a.n_exp) atomicAdd(&cnt[e], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t run = 0, n_active = 0;
        for (int e = 0; e < a.n_exp; ++e) {
            cur[e] = run;
            a.offsets[e] = run;
            a.counts[e] = cnt[e];
            run += cnt[e];
            if (cnt[e] > 0) a.active[n_active++] = e;
        }
        a.offsets[a.n_exp] = run;
        for (int e = n_active; e < a.n_exp; ++e) a.active[e] = -1;  // CTAs past the active ones exit
    }
    __syncthreads();
    for (int64_t p = threadIdx.x; p < a.n_pairs; p += blockDim.x) {
        const int32_t e = reinterpret_cast<const int32_t*>(a.ids + size_t(p / a.k) * a.ids_nb1)[p % a.k];
        if (e >= 0 && e < a.n_exp) a.list[atomicAdd(&cur[e], 1)] = int32_t(p);
    }
}

struct ExpertArgs {
    // weights of the pass (gate_up: w = gate, w2 = up; down: w only), per expert at e * nb2
    const uint8_t *w, *w2;
    size_t nb1, nb2, nb1_2, nb2_2;
    const float *bias, *bias2;  // [n_out, n_exp] F32 or null
    size_t bias_nb1, bias2_nb1;
    int64_t n_in, n_out;
    // input row of pair p: x + (p / x_div) * x_nb1 (x_div = k for the token rows, 1 for G)
    const uint8_t* x;
    size_t x_nb1;
    int x_div;
    bool xvec;
    float* out;  // [n_out] per pair, row p at out + p * n_out
    const int32_t *counts, *offsets, *active, *list;
    MoeAct act;
    float alpha, limit;
};

__device__ __forceinline__ float silu_mul(float g, float u) {
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}
// backend/cpu/row.h swiglu_oai_1, with std::min / std::clamp's NaN behaviour (a NaN passes).
__device__ __forceinline__ float swiglu_oai(float g, float u, float alpha, float limit) {
    g = limit < g ? limit : g;
    u = u < -limit ? -limit : (limit < u ? limit : u);
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(__fmul_rn(-alpha, g)))), __fadd_rn(u, 1.0f));
}

template <GgmlType T, bool P, int NT, bool GATE_UP>
__device__ __forceinline__ void expert_pass(const ExpertArgs& a, int e, int64_t r0, const int32_t* pairs, float* sh) {
    const uint8_t* w[kWarpRows];
    const uint8_t* w2[kWarpRows];
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r) {
        const size_t row = size_t(r0 + r < a.n_out ? r0 + r : a.n_out - 1);
        w[r] = a.w + size_t(e) * a.nb2 + row * a.nb1;
        w2[r] = GATE_UP ? a.w2 + size_t(e) * a.nb2_2 + row * a.nb1_2 : nullptr;
    }
    const float* x[NT];
    int32_t p[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        p[t] = pairs[t];
        x[t] = reinterpret_cast<const float*>(a.x + size_t(p[t] / a.x_div) * a.x_nb1);
    }
    const float g = cta_dots<T, P, kWarpRows, NT>(w, a.n_in, x, a.xvec, sh);
    float u = 0.0f;
    if constexpr (GATE_UP) u = cta_dots<T, P, kWarpRows, NT>(w2, a.n_in, x, a.xvec, sh);
    const int lane = threadIdx.x & 31;
    if (threadIdx.x < 32 && lane < kWarpRows * NT) {
        const int64_t row = r0 + lane / NT;
        const int t = lane % NT;
        if (row < a.n_out) {
            // As the CPU's matmul_rows: s = dot + bias (or + 0).
            const float v = __fadd_rn(g, a.bias ? a.bias[size_t(e) * a.bias_nb1 / 4 + row] : 0.0f);
            float res = v;
            if constexpr (GATE_UP) {
                const float uu = __fadd_rn(u, a.bias2 ? a.bias2[size_t(e) * a.bias2_nb1 / 4 + row] : 0.0f);
                res = a.act == MoeAct::SWIGLU_OAI ? swiglu_oai(v, uu, a.alpha, a.limit) : silu_mul(v, uu);
            }
            a.out[size_t(p[t]) * size_t(a.n_out) + size_t(row)] = res;
        }
    }
}

// blockIdx.x = rank among the step's active experts, blockIdx.y = block of kWarpRows output rows;
// the CTA's warps split each row's units (matvec.cuh).
template <GgmlType T, bool P, bool GATE_UP>
__global__ void __launch_bounds__(kBlockThreads) expert_kernel(ExpertArgs a) {
    __shared__ float sh[kSplit * kWarpRows * 8];
    const int e = a.active[blockIdx.x];
    if (e < 0) return;  // the whole CTA: no thread reaches a barrier
    const int32_t cnt = a.counts[e];
    const int64_t r0 = int64_t(blockIdx.y) * kWarpRows;
    const int32_t* pairs = a.list + a.offsets[e];
    int32_t t0 = 0;
    for (; t0 + 8 <= cnt; t0 += 8) expert_pass<T, P, 8, GATE_UP>(a, e, r0, pairs + t0, sh);
    if (t0 + 4 <= cnt) expert_pass<T, P, 4, GATE_UP>(a, e, r0, pairs + t0, sh), t0 += 4;
    if (t0 + 2 <= cnt) expert_pass<T, P, 2, GATE_UP>(a, e, r0, pairs + t0, sh), t0 += 2;
    if (t0 < cnt) expert_pass<T, P, 1, GATE_UP>(a, e, r0, pairs + t0, sh);
}

struct CombineArgs {
    uint8_t* y;
    size_t y_nb1;
    const uint8_t *ids, *wts;
    size_t ids_nb1, wts_nb1;
    const float* o;
    int64_t d;
    int k, n_exp;
};

// blockIdx.y = token; y[c] += w[j] * O[i*k+j][c] for j in order (the CPU's loop, same roundings).
__global__ void combine_kernel(CombineArgs a) {
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= a.d) return;
    const int64_t i = blockIdx.y;
    const int32_t* ids = reinterpret_cast<const int32_t*>(a.ids + size_t(i) * a.ids_nb1);
    const float* wts = reinterpret_cast<const float*>(a.wts + size_t(i) * a.wts_nb1);
    float* y = reinterpret_cast<float*>(a.y + size_t(i) * a.y_nb1) + c;
    float acc = *y;
    for (int j = 0; j < a.k; ++j) {
        const int32_t e = ids[j];
        const float o = (e >= 0 && e < a.n_exp) ? a.o[(size_t(i) * a.k + j) * size_t(a.d) + size_t(c)]
                                                : __int_as_float(0x7FC00000);
        acc = __fadd_rn(acc, __fmul_rn(wts[j], o));
    }
    *y = acc;
}

}  // namespace

size_t moe_scratch_bytes(const StepLimits& l) {
    if (l.n_expert <= 0 || l.n_expert_used <= 0) return 0;
    return MoeScratch(l.n_expert, l.max_tokens * l.n_expert_used, l.n_ff, l.n_embd).total;
}

void moe_ffn(Tensor y, Tensor x, Tensor ids, Tensor weights, const MoeFfn& w, void* scratch,
             size_t scratch_bytes, cudaStream_t s) {
    const int64_t n = x.rows(), d = x.cols(), k = ids.cols();
    const int64_t n_ff = w.gate.rows(), n_exp = w.gate.mats();
    WO_CHECK(w.gate.cols() == d && w.up.cols() == d && w.up.rows() == n_ff && w.down.cols() == n_ff &&
                 w.down.rows() == d && w.up.mats() == n_exp && w.down.mats() == n_exp && y.cols() == d &&
                 y.rows() == n && ids.rows() >= n && weights.rows() >= n && weights.cols() == k &&
                 x.type == GgmlType::F32 && y.type == GgmlType::F32 && ids.type == GgmlType::I32 &&
                 weights.type == GgmlType::F32,
             "cuda moe_ffn shapes");
    WO_CHECK(w.gate.layout == w.up.layout && w.gate.nb1 == w.up.nb1, "cuda moe_ffn: gate and up layouts differ");
    if (n == 0 || k == 0) return;
    if (w.up.type != w.gate.type)
        throw Error(Code::DTYPE_UNSUPPORTED,
                    std::string("moe_ffn: gate (") + std::string(type_name(w.gate.type)) + ") and up (" +
                        std::string(type_name(w.up.type)) + ") experts of different types");
    WO_CHECK((n_ff + kWarpRows - 1) / kWarpRows <= 65535 && (d + kWarpRows - 1) / kWarpRows <= 65535 &&
                 n <= 65535,
             "cuda moe_ffn: grid limits");
    const int64_t n_pairs = n * k;
    const MoeScratch L(n_exp, n_pairs, n_ff, d);
    if (L.total > scratch_bytes)
        throw Error(Code::INTERNAL, "moe_ffn: scratch of " + std::to_string(scratch_bytes) + " bytes, " +
                                        std::to_string(L.total) + " needed (reserve with moe_scratch_bytes)");
    uint8_t* base = static_cast<uint8_t*>(scratch);
    auto* counts = reinterpret_cast<int32_t*>(base + L.counts);
    auto* offsets = reinterpret_cast<int32_t*>(base + L.offsets);
    auto* active = reinterpret_cast<int32_t*>(base + L.active);
    auto* list = reinterpret_cast<int32_t*>(base + L.list);
    auto* G = reinterpret_cast<float*>(base + L.g);
    auto* O = reinterpret_cast<float*>(base + L.o);

    GroupArgs ga{
        static_cast<const uint8_t*>(ids.data), ids.nb1, int(k), int(n_exp), n_pairs, counts, offsets, active, list};
    group_kernel<<<1, 1024, 2 * sizeof(int32_t) * size_t(n_exp), s>>>(ga);
    check_launch("moe group kernel launch");

    auto bias_ptr = [](const Tensor* b) { return b ? static_cast<const float*>(b->data) : nullptr; };
    auto bias_nb1 = [](const Tensor* b) { return b ? b->nb1 : size_t(0); };
    ExpertArgs gu{};
    gu.w = static_cast<const uint8_t*>(w.gate.data), gu.nb1 = w.gate.nb1, gu.nb2 = w.gate.nb2;
    gu.w2 = static_cast<const uint8_t*>(w.up.data), gu.nb1_2 = w.up.nb1, gu.nb2_2 = w.up.nb2;
    gu.bias = bias_ptr(w.gate_b), gu.bias_nb1 = bias_nb1(w.gate_b);
    gu.bias2 = bias_ptr(w.up_b), gu.bias2_nb1 = bias_nb1(w.up_b);
    gu.n_in = d, gu.n_out = n_ff;
    gu.x = static_cast<const uint8_t*>(x.data), gu.x_nb1 = x.nb1, gu.x_div = int(k),
    gu.xvec = aligned16(x.data, x.nb1);
    gu.out = G, gu.counts = counts, gu.offsets = offsets, gu.active = active, gu.list = list;
    gu.act = w.act, gu.alpha = w.alpha, gu.limit = w.limit;
    // At most min(n_exp, n_pairs) experts are touched: a decode step launches CTAs for those only
    // (the grid still depends on the token count alone, so the step stays capturable).
    const unsigned n_slots_exp = static_cast<unsigned>(std::min<int64_t>(n_exp, n_pairs));
    const dim3 grid_gu(n_slots_exp,
                       static_cast<unsigned>((n_ff + kWarpRows - 1) / kWarpRows));
    WO_CUDA_FOR_WEIGHT(w.gate, "moe_ffn gate/up",
                       (expert_kernel<kT, kP, true><<<grid_gu, kBlockThreads, 0, s>>>(gu)));
    check_launch("moe gate/up kernel launch");

    ExpertArgs dn = gu;
    dn.w = static_cast<const uint8_t*>(w.down.data), dn.nb1 = w.down.nb1, dn.nb2 = w.down.nb2;
    dn.w2 = nullptr, dn.bias2 = nullptr;
    dn.bias = bias_ptr(w.down_b), dn.bias_nb1 = bias_nb1(w.down_b);
    dn.n_in = n_ff, dn.n_out = d;
    dn.x = reinterpret_cast<const uint8_t*>(G), dn.x_nb1 = sizeof(float) * size_t(n_ff), dn.x_div = 1;
    dn.xvec = aligned16(G, dn.x_nb1);
    dn.out = O;
    const dim3 grid_dn(n_slots_exp,
                       static_cast<unsigned>((d + kWarpRows - 1) / kWarpRows));
    WO_CUDA_FOR_WEIGHT(w.down, "moe_ffn down",
                       (expert_kernel<kT, kP, false><<<grid_dn, kBlockThreads, 0, s>>>(dn)));
    check_launch("moe down kernel launch");

    CombineArgs ca{static_cast<uint8_t*>(y.data),
                   y.nb1,
                   static_cast<const uint8_t*>(ids.data),
                   static_cast<const uint8_t*>(weights.data),
                   ids.nb1,
                   weights.nb1,
                   O,
                   d,
                   int(k),
                   int(n_exp)};
    combine_kernel<<<dim3(static_cast<unsigned>((d + 255) / 256), static_cast<unsigned>(n)), 256, 0, s>>>(ca);
    check_launch("moe combine kernel launch");
}

}  // namespace wo::cuda
