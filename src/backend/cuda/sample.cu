// The sampling op, exactly backend/cpu/sample.cpp's algorithm (docs/sampling.md): penalty ->
// temperature -> top-k -> top-p -> min-p -> inverse-CDF draw in id order with the counter-based
// uniform. One block per row (blocks loop over rows), nothing sorted: the top-k and top-p cuts
// are found by radix selection over the ranking (z desc, id asc), with weights summed in a
// fixed order so a row's draw is deterministic and independent of the batch.
//
// Per-block scratch: z (logits after penalty/temperature; -inf = dropped) and e (the unnormalized
// probabilities), each n_vocab floats.
#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/util.cuh"
#include "util/error.h"

namespace wo::cuda {
namespace {

constexpr int kT = 512;  // threads per block
constexpr int kW = kT / 32;
constexpr int kMaxBlocks = 64;  // blocks sharing the scratch (rows beyond loop)

struct Shared {
    double whist[kW][256];  // per-warp weight histograms (summed in a fixed order)
    double dred[kT];
    float fred[kT];
    int ired[kT];
    int cnt[256];
    double bsum[256];
    uint32_t prefix, mask;
    double base;        // cut_at: weight ranked before the current key prefix
    double scan_total;  // excl_scan's total
    int found;
};

// Ascending order of floats as unsigned keys (-0 folded onto +0: they compare equal as floats).
__device__ inline uint32_t okey(float f) {
    if (f == 0.0f) f = 0.0f;
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The block's (largest value, lowest id among its holders) from each thread's (bv, bi): exact,
// whatever the partition (max with the lowest-id tie-break is associative and commutative).
__device__ void block_argmax(float bv, int bi, Shared& S, float& best_v, int& best_id);

// Lowest id of the largest z over the row (all threads get it).
__device__ void argmax_lowest(const float* z, int V, Shared& S, float& best_v, int& best_id) {
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int i = threadIdx.x; i < V; i += kT) {
        const float v = z[i];
        if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
    }
    block_argmax(bv, bi, S, best_v, best_id);
}

__device__ void block_argmax(float bv, int bi, Shared& S, float& best_v, int& best_id) {
    S.fred[threadIdx.x] = bv;
    S.ired[threadIdx.x] = bi;
    __syncthreads();
    for (int s = kT / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            const float ov = S.fred[threadIdx.x + s];
            const int oi = S.ired[threadIdx.x + s];
            if (ov > S.fred[threadIdx.x] || (ov == S.fred[threadIdx.x] && oi < S.ired[threadIdx.x]))
                S.fred[threadIdx.x] = ov, S.ired[threadIdx.x] = oi;
        }
        __syncthreads();
    }
    best_v = S.fred[0];
    best_id = S.ired[0];
    __syncthreads();
}

// Exclusive prefix of per-thread values in thread order (one thread adds them in sequence, so
// the order is fixed); also returns the total.
__device__ double excl_scan(double v, Shared& S, double& total) {
    S.dred[threadIdx.x] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        double c = 0;
        for (int k = 0; k < kT; ++k) {
            const double x = S.dred[k];
            S.dred[k] = c;
            c += x;
        }
        S.scan_total = c;
    }
    __syncthreads();
    const double r = S.dred[threadIdx.x];
    total = S.scan_total;
    __syncthreads();
    return r;
}

__device__ int block_min_int(int v, Shared& S) {
    S.ired[threadIdx.x] = v;
    __syncthreads();
    for (int s = kT / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) S.ired[threadIdx.x] = min(S.ired[threadIdx.x], S.ired[threadIdx.x + s]);
        __syncthreads();
    }
    const int r = S.ired[0];
    __syncthreads();
    return r;
}
__device__ int block_max_int(int v, Shared& S) { return -block_min_int(-v, S); }

// Each thread's contiguous id range, so id-order walks are a per-thread walk plus one scan.
__device__ inline void chunk_of(int V, int& b, int& e) {
    const int c = (V + kT - 1) / kT;
    b = min(V, static_cast<int>(threadIdx.x) * c);
    e = min(V, b + c);
}

// The first surviving element (z > -inf) in ranking order (z desc, id asc) whose inclusive
// cumulative weight reaches `target` (weight e[i], or 1 when e is null). Returns false when
// the whole mass stays below it. On success keeps exactly the elements ranked at or before it
// (the others get z = -inf, e = 0).
__device__ bool cut_at(float* z, float* e, int V, double target, Shared& S) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (threadIdx.x == 0) S.prefix = 0, S.mask = 0, S.base = 0, S.found = 1;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int k = threadIdx.x; k < kW * 256; k += kT) (&S.whist[0][0])[k] = 0;
        for (int k = threadIdx.x; k < 256; k += kT) S.cnt[k] = 0;
        __syncthreads();
        const uint32_t prefix = S.prefix, mask = S.mask;
        for (int i0 = 0; i0 < V; i0 += kT) {
            const int i = i0 + threadIdx.x;
            bool act = false;
            int bin = 256;
            double w = 0;
            if (i < V) {
                const float zi = z[i];
                if (zi > -INFINITY) {
                    const uint32_t k = okey(zi);
                    if ((k & mask) == prefix) act = true, bin = (k >> shift) & 255, w = e ? e[i] : 1.0;
                }
            }
            if (!__any_sync(0xffffffffu, act)) continue;
            // Lanes with the same bin add their weights in lane order; the warp's histogram
            // is only touched by this warp, batch after batch: a fixed order.
            const unsigned grp = __match_any_sync(0xffffffffu, bin);
            if (act) {
                double sum = 0;
                for (unsigned g = grp; g; g &= g - 1) sum += __shfl_sync(grp, w, __ffs(g) - 1);
                if (lane == __ffs(grp) - 1) {
                    S.whist[warp][bin] += sum;
                    atomicAdd(&S.cnt[bin], __popc(grp));
                }
            }
        }
        __syncthreads();
        for (int b = threadIdx.x; b < 256; b += kT) {
            double s = 0;
            for (int wv = 0; wv < kW; ++wv) s += S.whist[wv][b];
            S.bsum[b] = s;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            double cum = S.base;
            int hit = -1;
            for (int b = 255; b >= 0; --b) {  // highest keys rank first
                if (S.cnt[b] > 0 && cum + S.bsum[b] >= target) {
                    hit = b;
                    break;
                }
                cum += S.bsum[b];
            }
            if (hit < 0) {
                S.found = 0;
            } else {
                S.base = cum;
                S.prefix |= static_cast<uint32_t>(hit) << shift;
                S.mask |= 255u << shift;
            }
        }
        __syncthreads();
        if (!S.found) return false;
    }
    // All elements with key == prefix tie on z: walk them in id order.
    const uint32_t key = S.prefix;
    const double base = S.base;
    int b, en;
    chunk_of(V, b, en);
    double part = 0;
    int last_tie = -1;
    for (int i = b; i < en; ++i)
        if (z[i] > -INFINITY && okey(z[i]) == key) part += e ? e[i] : 1.0, last_tie = i;
    double total;
    double cum = base + excl_scan(part, S, total);
    int hit = INT_MAX;
    for (int i = b; i < en; ++i)
        if (z[i] > -INFINITY && okey(z[i]) == key) {
            cum += e ? e[i] : 1.0;
            if (cum >= target) {
                hit = i;
                break;
            }
        }
    int cut = block_min_int(hit, S);
    if (cut == INT_MAX) cut = block_max_int(last_tie, S);  // rounding: the tie group ends the cut
    for (int i = threadIdx.x; i < V; i += kT) {
        const float zi = z[i];
        if (!(zi > -INFINITY)) continue;
        const uint32_t k = okey(zi);
        if (k < key || (k == key && i > cut)) {
            z[i] = -INFINITY;
            if (e) e[i] = 0.0f;
        }
    }
    __syncthreads();
    return true;
}

__device__ int sample_one(const float* logits, int V, const int32_t* hist, int n_hist,
                          const SamplingParams& p, uint32_t index, float* z, float* e, Shared& S) {
    for (int i = threadIdx.x; i < V; i += kT) {
        const float l = logits[i];
        z[i] = isnan(l) ? -INFINITY : l;
    }
    __syncthreads();
    if (p.repetition_penalty != 1.0f) {
        // From the raw logit, so a repeated id is penalized once (duplicates write one value).
        for (int j = threadIdx.x; j < n_hist; j += kT) {
            const int32_t id = hist[j];
            if (id >= 0 && id < V && !isnan(logits[id])) z[id] = penalized(logits[id], p.repetition_penalty);
        }
        __syncthreads();
    }
    float zmax;
    int best;
    if (p.temperature <= 0.0f) {
        argmax_lowest(z, V, S, zmax, best);
        return best;
    }
    for (int i = threadIdx.x; i < V; i += kT) z[i] = z[i] / p.temperature;
    __syncthreads();
    argmax_lowest(z, V, S, zmax, best);
    if (!isfinite(zmax)) return best;

    if (p.top_k > 0 && p.top_k < V) {
        int c = 0;
        for (int i = threadIdx.x; i < V; i += kT) c += z[i] > -INFINITY;
        S.ired[threadIdx.x] = c;
        __syncthreads();
        for (int s = kT / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) S.ired[threadIdx.x] += S.ired[threadIdx.x + s];
            __syncthreads();
        }
        const int kept = S.ired[0];
        __syncthreads();
        if (p.top_k < kept) cut_at(z, nullptr, V, static_cast<double>(p.top_k), S);
    }
    // exp in double, rounded once to float (the largest is exactly 1).
    for (int i = threadIdx.x; i < V; i += kT)
        e[i] = z[i] > -INFINITY ? static_cast<float>(exp(static_cast<double>(z[i] - zmax))) : 0.0f;
    __syncthreads();
    int b, en;
    chunk_of(V, b, en);
    if (p.top_p < 1.0f) {
        double part = 0;
        for (int i = b; i < en; ++i) part += e[i];
        double total;
        excl_scan(part, S, total);
        // Keeps the prefix of the ranking up to the token whose inclusive mass reaches the
        // target: every kept token has less than top_p·total before it (the best always stays).
        cut_at(z, e, V, static_cast<double>(p.top_p) * total, S);
    }
    if (p.min_p > 0.0f) {
        for (int i = threadIdx.x; i < V; i += kT)
            if (z[i] > -INFINITY && e[i] < p.min_p) z[i] = -INFINITY, e[i] = 0.0f;
        __syncthreads();
    }
    // The draw: the first id (ascending) whose running mass exceeds u x the total.
    double part = 0;
    int last = -1;
    for (int i = b; i < en; ++i)
        if (z[i] > -INFINITY) part += e[i], last = i;
    double total;
    double cum = excl_scan(part, S, total);
    const double target = sampling_uniform(p.seed, index) * total;
    int hit = INT_MAX;
    for (int i = b; i < en; ++i) {
        if (!(z[i] > -INFINITY)) continue;
        cum += e[i];
        if (cum > target) {
            hit = i;
            break;
        }
    }
    const int id = block_min_int(hit, S);
    if (id != INT_MAX) return id;
    const int lk = block_max_int(last, S);
    return lk >= 0 ? lk : best;  // rounding left the target at the very top of the mass
}

// Greedy rows without a penalty are an argmax of the raw logits (NaN as -inf, lowest id on
// ties), which one block walking 201,088 logits made the slowest op of a batch-1 step (~170 µs):
// kParts blocks per row each take a slice and leave (max, lowest id) in pv/pi; sample_k then
// reduces the row's kParts pairs. Exact: the same id as argmax_lowest over the row. Runs for
// every row (the parameters are on the device); the other rows ignore it.
constexpr int kParts = 64;
constexpr int kPartThreads = 256;
static_assert(kParts <= kT, "sample_k reduces a row's parts with one thread each");

__global__ void __launch_bounds__(kPartThreads) argmax_parts_k(Rows logits, int V, float* pv, int* pi) {
    __shared__ float sv[kPartThreads / 32];
    __shared__ int si[kPartThreads / 32];
    const int r = blockIdx.y, part = blockIdx.x;
    const int b = static_cast<int>(static_cast<int64_t>(V) * part / kParts);
    const int e = static_cast<int>(static_cast<int64_t>(V) * (part + 1) / kParts);
    const float* l = logits.row(r);
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int i = b + static_cast<int>(threadIdx.x); i < e; i += kPartThreads) {
        const float v = isnan(l[i]) ? -INFINITY : l[i];
        if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
    }
    for (int off = 16; off >= 1; off /= 2) {
        const float ov = __shfl_xor_sync(0xFFFFFFFFu, bv, off);
        const int oi = __shfl_xor_sync(0xFFFFFFFFu, bi, off);
        if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
    }
    if ((threadIdx.x & 31) == 0) sv[threadIdx.x >> 5] = bv, si[threadIdx.x >> 5] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < kPartThreads / 32; ++w)
            if (sv[w] > bv || (sv[w] == bv && si[w] < bi)) bv = sv[w], bi = si[w];
        pv[static_cast<size_t>(r) * kParts + part] = bv;
        pi[static_cast<size_t>(r) * kParts + part] = bi;
    }
}

__global__ void __launch_bounds__(kT)
    sample_k(int32_t* ids, Rows logits, int n_rows, int V, const int32_t* slot, const int32_t* pos,
             int32_t* last_id, const int32_t* history, int64_t hist_ld, int n_slots, int n_ctx,
             const SamplingParams* params, float* scratch, const float* pv, const int* pi) {
    __shared__ Shared S;
    float* z = scratch + static_cast<size_t>(blockIdx.x) * 2 * V;
    float* e = z + V;
    for (int r = blockIdx.x; r < n_rows; r += gridDim.x) {
        const int32_t sl = slot[r], ps = pos[r];
        if (sl < 0 || sl >= n_slots || ps < 0 || ps >= n_ctx) __trap();  // broken invariant (the CPU aborts)
        const SamplingParams p = params[sl];
        int id;
        if (p.temperature <= 0.0f && p.repetition_penalty == 1.0f) {
            const bool mine = threadIdx.x < kParts;
            const size_t at = static_cast<size_t>(r) * kParts + threadIdx.x;
            float v;
            block_argmax(mine ? pv[at] : -INFINITY, mine ? pi[at] : INT_MAX, S, v, id);
        } else {
            id = sample_one(logits.row(r), V, history + sl * hist_ld, ps + 1, p, static_cast<uint32_t>(ps) + 1, z,
                            e, S);
        }
        if (threadIdx.x == 0) {
            ids[r] = id;
            last_id[sl] = id;
        }
        __syncthreads();
    }
}

// Scratch: the greedy partials (kParts floats and ints per row), then z and e per block.
size_t parts_bytes(int64_t rows) {
    return (static_cast<size_t>(std::max<int64_t>(rows, 1)) * kParts * 8 + 255) / 256 * 256;
}

}  // namespace

size_t sample_scratch_bytes(const StepLimits& l) {
    const int64_t blocks = std::min<int64_t>(std::max<int64_t>(l.max_out_rows, 1), kMaxBlocks);
    return parts_bytes(l.max_out_rows) +
           static_cast<size_t>(blocks) * 2 * static_cast<size_t>(std::max<int64_t>(l.n_vocab, 1)) * sizeof(float);
}

void sample(Tensor ids, Tensor logits, Tensor slot, Tensor pos, SlotState st, void* scratch,
            size_t scratch_bytes, cudaStream_t s) {
    const int64_t n = logits.rows(), V = logits.cols();
    WO_CHECK(ids.cols() >= n && slot.cols() >= n && pos.cols() >= n &&
                 st.params.nb1 == sizeof(SamplingParams) && V < INT_MAX,
             "sample shapes");
    if (n == 0) return;
    const size_t per_block = 2 * static_cast<size_t>(V) * sizeof(float), pb = parts_bytes(n);
    WO_CHECK(scratch_bytes >= pb + per_block && n <= 65535, "sample: scratch reserved for a smaller vocabulary or fewer rows");
    const int64_t blocks = std::min<int64_t>({n, kMaxBlocks, static_cast<int64_t>((scratch_bytes - pb) / per_block)});
    auto* pv = static_cast<float*>(scratch);
    auto* pi = reinterpret_cast<int*>(pv + static_cast<size_t>(n) * kParts);
    argmax_parts_k<<<dim3(kParts, static_cast<unsigned>(n)), kPartThreads, 0, s>>>(rows_of(logits),
                                                                                   static_cast<int>(V), pv, pi);
    check_launch("sample argmax parts");
    sample_k<<<static_cast<unsigned>(blocks), kT, 0, s>>>(
        static_cast<int32_t*>(ids.data), rows_of(logits), static_cast<int>(n), static_cast<int>(V),
        i32_of(slot), i32_of(pos), static_cast<int32_t*>(st.last_id.data), i32_of(st.history),
        static_cast<int64_t>(st.history.nb1 / sizeof(int32_t)), static_cast<int>(st.history.rows()),
        static_cast<int>(st.history.cols()), static_cast<const SamplingParams*>(st.params.data),
        reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) + pb), pv, pi);
    check_launch("sample");
}

}  // namespace wo::cuda
