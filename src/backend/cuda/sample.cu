// The sampling op, exactly backend/cpu/sample.cpp's algorithm (docs/sampling.md): penalty ->
// temperature -> top-k -> top-p -> min-p -> inverse-CDF draw in id order with the counter-based
// uniform. Nothing is sorted: the top-k and top-p cuts are radix selections over the ranking
// (z desc, id asc), the draw is one prefix sum in id order.
//
// Each row is spread over kS CTAs, one per slice of the vocabulary (slice bounds depend on
// n_vocab only). The op is a fixed chain of launches, one per stage (the grid is (kS, rows) for
// every launch, so the chain can be captured in a graph): every CTA works on its slice and
// leaves a partial result; the last CTA of the row to finish (an arrival counter) reduces the
// kS partials in slice order and writes the row's state (RowState) for the next launch. A row
// that is finished (greedy, or nothing finite to draw from) or a stage that is off for a row
// (no top-k, no top-p) costs an empty CTA.
//
// Determinism: every double sum has a fixed order that depends only on n_vocab (a thread's
// elements, then threads in a fixed shuffle tree, then slices 0..kS-1), never on the grid, the
// timing or the other rows; integer counts and (max, lowest id) are exact in any order. The
// sums differ in order from the CPU's, so, as before, the two can only disagree when a mass
// lands within rounding (~1e-16 relative) of a boundary.
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

constexpr int kS = 64;   // slices (CTAs) per row
constexpr int kT = 256;  // threads per CTA; also the radix bins (8-bit digits)
constexpr int kW = kT / 32;
constexpr int kGroup = 64;  // rows per chain of launches (the scratch holds one group)
constexpr unsigned kFull = 0xffffffffu;
static_assert(kT == 256, "one thread per radix bin");

// The launches of the chain, in order; each has its own arrival counter per row.
enum Stage {
    PREP,
    TOPK_DIGIT /* 4 launches */,
    TOPK_TIES = TOPK_DIGIT + 4,
    EXP,
    TOPP_DIGIT,
    TOPP_TIES = TOPP_DIGIT + 4,
    DRAW,
    kStages
};
enum Which { TOPK, TOPP };

// A row's state between launches (written by the row's last CTA of a launch, read by the next).
struct RowState {
    SamplingParams p;
    uint32_t index;  // the draw's index (position of the drawn token)
    int32_t done;    // ids[r] is written: later launches skip the row
    int32_t best;    // lowest id of the largest z
    float zmax;
    // The selection in progress (top-k, then top-p): the first element in ranking order whose
    // inclusive weight reaches `target`; `prefix`/`mask` are the key digits fixed so far and
    // `base` the weight ranked before every key with that prefix.
    int32_t sel;  // 1 while a selection runs
    uint32_t prefix, mask;
    double base, target;
    // The cuts found: i survives top-k iff key > kkey or (key == kkey and i <= kcut); top-p
    // likewise. Off: key 0 (below every key of a non-NaN float) and cut INT_MAX.
    uint32_t kkey, pkey;
    int32_t kcut, pcut;
};

struct SlicePart {  // a slice's scalar results
    float v;        // PREP: max z; the others: unused
    int32_t id;     // PREP: lowest id of the max
    int32_t n;      // PREP: elements with z > -inf
    int32_t last;   // TIES/DRAW: the slice's last member in id order (-1: none)
    double m;       // EXP/TIES/DRAW: the slice's mass
};
struct SliceHist {  // a slice's radix histogram: count and weight per bin
    int32_t cnt[256];
    double w[256];
};

struct Args {
    int32_t* ids;
    Rows logits;
    const int32_t *slot, *pos;
    int32_t* last_id;
    const int32_t* history;
    int64_t hist_ld;
    int n_slots, n_ctx, V;
    const SamplingParams* params;
    RowState* rows;
    SlicePart* parts;  // [row][slice]
    SliceHist* hists;  // [row][slice]
    int* arrivals;     // [row][stage], zeroed before the chain
    float *z, *e;      // [row][V]: z after NaN/penalty/temperature (-inf: never drawn), e = exp(z - zmax)
};

struct Shared {
    double whist[kW][256];  // per-warp bin weights (each warp adds to its own, in a fixed order)
    double bw[256];
    int cnt[256];
    double dw[kW], dw2[kW];
    float fw[kW];
    int iw[kW];
    int last, slice;
    double c;
    SlicePart sp[kS];  // the row's slice partials, gathered by the last CTA (gather_parts)
};

// Ascending order of floats as unsigned keys (-0 folded onto +0: they compare equal as floats).
__device__ inline uint32_t okey(float f) {
    if (f == 0.0f) f = 0.0f;
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ inline bool ranks_in(uint32_t k, int i, uint32_t cut_key, int cut) {
    return k > cut_key || (k == cut_key && i <= cut);
}

__device__ inline int slice_begin(int V, int s) { return static_cast<int>(static_cast<int64_t>(V) * s / kS); }

// True in the last CTA of the row to get here; every CTA calls it once per launch after writing
// its partials (the fence publishes them before the arrival is counted). The last CTA reads the
// others' partials with __ldcg (from L2, never a stale L1 line).
__device__ bool last_arrival(int* counter, Shared& S) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) S.last = atomicAdd(counter, 1) == kS - 1;
    __syncthreads();
    const bool last = S.last;
    if (last) __threadfence();
    return last;
}

__device__ int block_min_int(int v, Shared& S) {
    for (int off = 16; off >= 1; off /= 2) v = min(v, __shfl_xor_sync(kFull, v, off));
    if ((threadIdx.x & 31) == 0) S.iw[threadIdx.x >> 5] = v;
    __syncthreads();
    int r = S.iw[0];
    for (int w = 1; w < kW; ++w) r = min(r, S.iw[w]);
    __syncthreads();
    return r;
}
__device__ int block_max_int(int v, Shared& S) { return -block_min_int(-v, S); }

// Exclusive prefix of the threads' values in thread order, and the total, with a fixed
// shuffle tree (the same additions on every run, whatever the timing).
__device__ double block_excl_scan(double v, Shared& S, double& total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double x = v;
    for (int off = 1; off < 32; off *= 2) {
        const double y = __shfl_up_sync(kFull, x, off);
        if (lane >= off) x += y;
    }
    double ex = __shfl_up_sync(kFull, x, 1);
    if (lane == 0) ex = 0;
    if (lane == 31) S.dw[warp] = x;
    __syncthreads();
    if (warp == 0) {
        double y = lane < kW ? S.dw[lane] : 0.0;
        for (int off = 1; off < kW; off *= 2) {
            const double o = __shfl_up_sync(kFull, y, off);
            if (lane >= off) y += o;
        }
        if (lane < kW) S.dw2[lane] = y;
    }
    __syncthreads();
    const double before = warp ? S.dw2[warp - 1] : 0.0;
    total = S.dw2[kW - 1];
    __syncthreads();
    return before + ex;
}

// This thread's contiguous chunk of [b, e), so id-order walks are a per-thread walk plus a scan.
__device__ inline void chunk_of(int b, int e, int& cb, int& ce) {
    const int c = (e - b + kT - 1) / kT;
    cb = min(e, b + static_cast<int>(threadIdx.x) * c);
    ce = min(e, cb + c);
}

// Mass of the members of [b, e) (in(i, w): member with weight w) summed in id order by chunks
// (the order walk() uses), and the last member (-1: none). All threads get both.
template <class In>
__device__ double range_mass(int b, int e, In in, Shared& S, int& last) {
    int cb, ce;
    chunk_of(b, e, cb, ce);
    double part = 0, w;
    int l = -1;
    for (int i = cb; i < ce; ++i)
        if (in(i, w)) part += w, l = i;
    double total;
    block_excl_scan(part, S, total);
    last = block_max_int(l, S);
    return total;
}

// The first member of [b, e) in id order whose running mass, starting at c0, exceeds `target`
// (strict) or reaches it (!strict); the last member when rounding leaves none (-1: no member).
template <class In>
__device__ int walk(int b, int e, double c0, double target, bool strict, In in, Shared& S) {
    int cb, ce;
    chunk_of(b, e, cb, ce);
    double part = 0, w;
    int l = -1;
    for (int i = cb; i < ce; ++i)
        if (in(i, w)) part += w, l = i;
    double total;
    double cum = c0 + block_excl_scan(part, S, total);
    int hit = INT_MAX;
    for (int i = cb; i < ce; ++i)
        if (in(i, w)) {
            cum += w;
            if (strict ? cum > target : cum >= target) {
                hit = i;
                break;
            }
        }
    hit = block_min_int(hit, S);
    const int last = block_max_int(l, S);
    return hit != INT_MAX ? hit : last;
}

// Not inlined: Philox's unrolled rounds would otherwise set draw_k's register count (160, one
// CTA per SM) for a call one thread makes once per row.
__device__ __noinline__ double uniform_of(uint64_t seed, uint32_t index) {
    return sampling_uniform(seed, index);
}

// The row's answer (one thread).
__device__ void finish(const Args& a, int r, RowState& R, int id) {
    a.ids[r] = id;
    a.last_id[a.slot[r]] = id;
    R.done = 1;
}

// In the last CTA of a launch: the row's kS slice partials copied into S.sp, one thread per slice
// (one round of L2 loads instead of kS in a row, ~10 us); the serial walks over them then read
// shared memory in the same order as before, so every sum keeps its bits. All threads call it.
__device__ void gather_parts(const SlicePart* P, Shared& S) {
    for (int t = threadIdx.x; t < kS; t += kT) {
        SlicePart q;
        q.v = __ldcg(&P[t].v), q.id = __ldcg(&P[t].id), q.n = __ldcg(&P[t].n);
        q.last = __ldcg(&P[t].last), q.m = __ldcg(&P[t].m);
        S.sp[t] = q;
    }
    __syncthreads();
}

// Row-level walk over the slices' masses in slice order (P: gathered partials): the slice where
// the running mass (from c0) first exceeds / reaches the target, and the mass before it; -1 if none.
__device__ int crossing_slice(const SlicePart* P, double c0, double target, bool strict, double& before) {
    double c = c0;
    for (int s = 0; s < kS; ++s) {
        const double m = P[s].m;
        const double n = c + m;
        if (P[s].last >= 0 && (strict ? n > target : n >= target)) {
            before = c;
            return s;
        }
        c = n;
    }
    return -1;
}

// ---- the launches, in chain order

// z for the slice (NaN -> -inf, the penalty from the raw logits, / temperature), then the
// slice's (max z, lowest id) and count of z > -inf. The row: zmax and best; greedy rows and rows
// without a finite max are finished here (greedy: the penalized argmax, lowest id on ties).
__global__ void __launch_bounds__(kT) prep_k(Args a) {
    pdl_begin();
    __shared__ Shared S;
    const int r = blockIdx.y, s = blockIdx.x, V = a.V;
    const int b = slice_begin(V, s), e = slice_begin(V, s + 1);
    const int32_t sl = a.slot[r], ps = a.pos[r];
    if (sl < 0 || sl >= a.n_slots || ps < 0 || ps >= a.n_ctx) __trap();  // broken invariant (the CPU aborts)
    const SamplingParams p = a.params[sl];
    const float* l = a.logits.row(r);
    float* z = a.z + static_cast<size_t>(r) * V;
    for (int i = b + threadIdx.x; i < e; i += kT) {
        const float v = l[i];
        z[i] = isnan(v) ? -INFINITY : v;
    }
    if (p.repetition_penalty != 1.0f) {
        // Every slice reads the whole history (all tokens fed so far: ps + 1 of them) and
        // patches its own ids, from the raw logit (duplicates write one value).
        __syncthreads();
        const int32_t* h = a.history + static_cast<int64_t>(sl) * a.hist_ld;
        for (int j = threadIdx.x; j <= ps; j += kT) {
            const int32_t id = h[j];
            if (id >= b && id < e && !isnan(l[id])) z[id] = penalized(l[id], p.repetition_penalty);
        }
    }
    __syncthreads();  // the block's z writes are visible to the block
    float bv = -INFINITY;
    int bi = INT_MAX, n = 0;
    for (int i = b + threadIdx.x; i < e; i += kT) {
        float v = z[i];
        if (p.temperature > 0.0f) z[i] = v = v / p.temperature;
        if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
        n += v > -INFINITY;
    }
    for (int off = 16; off >= 1; off /= 2) {
        const float ov = __shfl_xor_sync(kFull, bv, off);
        const int oi = __shfl_xor_sync(kFull, bi, off);
        if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
        n += __shfl_xor_sync(kFull, n, off);
    }
    if ((threadIdx.x & 31) == 0)
        S.fw[threadIdx.x >> 5] = bv, S.iw[threadIdx.x >> 5] = bi, S.cnt[threadIdx.x >> 5] = n;
    __syncthreads();
    SlicePart* P = a.parts + static_cast<size_t>(r) * kS;
    if (threadIdx.x == 0) {
        for (int w = 1; w < kW; ++w) {
            if (S.fw[w] > bv || (S.fw[w] == bv && S.iw[w] < bi)) bv = S.fw[w], bi = S.iw[w];
            n += S.cnt[w];
        }
        P[s].v = bv, P[s].id = bi, P[s].n = n;
    }
    if (!last_arrival(a.arrivals + r * kStages + PREP, S)) return;
    gather_parts(P, S);
    if (threadIdx.x != 0) return;
    // (max, lowest id) is exact in any order; the count is an integer.
    float zmax = -INFINITY;
    int best = INT_MAX, kept = 0;
    for (int t = 0; t < kS; ++t) {
        const float v = S.sp[t].v;
        const int id = S.sp[t].id;
        if (v > zmax || (v == zmax && id < best)) zmax = v, best = id;
        kept += S.sp[t].n;
    }
    RowState& R = a.rows[r];
    R.p = p, R.index = static_cast<uint32_t>(ps) + 1, R.zmax = zmax, R.best = best;
    R.done = 0, R.sel = 0, R.kkey = R.pkey = 0, R.kcut = R.pcut = INT_MAX;
    if (p.temperature <= 0.0f || !isfinite(zmax)) {
        finish(a, r, R, best);  // greedy, or nothing to draw from (all -inf, or +inf present)
    } else if (p.top_k > 0 && p.top_k < V && p.top_k < kept) {
        R.sel = 1, R.prefix = 0, R.mask = 0, R.base = 0, R.target = p.top_k;  // the k-th by count
    }
}

// One 8-bit digit (bits shift..shift+7) of the selection's key: the slice's histogram of the
// candidates (keys with the digits fixed so far; for top-p only top-k survivors, weighted by e),
// then the row picks the bin, highest keys first, where the weight reaches the target.
__global__ void __launch_bounds__(kT) select_k(Args a, int stage, int which, int shift) {
    pdl_begin();
    __shared__ Shared S;
    const int r = blockIdx.y, s = blockIdx.x, V = a.V;
    RowState& R = a.rows[r];
    if (R.done || !R.sel) return;
    const uint32_t prefix = R.prefix, mask = R.mask, kkey = R.kkey;
    const int kcut = R.kcut;
    const double base = R.base, target = R.target;
    const int b = slice_begin(V, s), e = slice_begin(V, s + 1);
    const float* z = a.z + static_cast<size_t>(r) * V;
    const float* ev = a.e + static_cast<size_t>(r) * V;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int k = threadIdx.x; k < kW * 256; k += kT) (&S.whist[0][0])[k] = 0;
    S.cnt[threadIdx.x] = 0;
    __syncthreads();
    for (int i0 = b; i0 < e; i0 += kT) {  // uniform trip count: whole warps run the shuffles
        const int i = i0 + threadIdx.x;
        bool act = false;
        int bin = 256;
        double w = 0;
        if (i < e) {
            const float zi = z[i];
            if (zi > -INFINITY) {
                const uint32_t k = okey(zi);
                if ((k & mask) == prefix && (which == TOPK || ranks_in(k, i, kkey, kcut)))
                    act = true, bin = (k >> shift) & 255,
                    w = which == TOPK ? 1.0 : static_cast<double>(ev[i]);
            }
        }
        if (!__any_sync(kFull, act)) continue;
        // Lanes with the same bin add their weights in lane order; a warp's histogram is only
        // touched by that warp, batch after batch: a fixed order.
        const unsigned grp = __match_any_sync(kFull, bin);
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
    SliceHist* H = a.hists + static_cast<size_t>(r) * kS;
    {
        double sum = 0;
        for (int w = 0; w < kW; ++w) sum += S.whist[w][threadIdx.x];
        H[s].w[threadIdx.x] = sum;
        H[s].cnt[threadIdx.x] = S.cnt[threadIdx.x];
    }
    if (!last_arrival(a.arrivals + r * kStages + stage, S)) return;
    {  // the row's bins: slices summed in slice order
        int c = 0;
        double w = 0;
        // Unrolled so 8 slices' loads are in flight at once; the additions stay in slice order.
#pragma unroll 8
        for (int t = 0; t < kS; ++t) c += __ldcg(&H[t].cnt[threadIdx.x]), w += __ldcg(&H[t].w[threadIdx.x]);
        S.cnt[threadIdx.x] = c;
        S.bw[threadIdx.x] = w;
    }
    __syncthreads();
    if (warp != 0) return;
    // Lane L takes bins 255-8L down to 248-8L (highest keys rank first): its bins' weight, a
    // fixed shuffle scan for the weight ranked before them, then a walk down its 8 bins.
    double g = 0;
    for (int j = 0; j < 8; ++j) g += S.bw[255 - 8 * lane - j];
    double x = g;
    for (int off = 1; off < 32; off *= 2) {
        const double y = __shfl_up_sync(kFull, x, off);
        if (lane >= off) x += y;
    }
    double cum = __shfl_up_sync(kFull, x, 1);
    cum = base + (lane == 0 ? 0.0 : cum);
    int hit = -1;
    for (int j = 0; j < 8; ++j) {
        const int bin = 255 - 8 * lane - j;
        if (S.cnt[bin] > 0 && cum + S.bw[bin] >= target) {
            hit = bin;
            break;
        }
        cum += S.bw[bin];
    }
    const unsigned hits = __ballot_sync(kFull, hit >= 0);
    if (hits == 0) {
        if (lane == 0) R.sel = 0;  // rounding left the whole mass below the target: no cut
    } else if (lane == __ffs(hits) - 1) {
        R.base = cum;
        R.prefix = prefix | static_cast<uint32_t>(hit) << shift;
        R.mask = mask | 255u << shift;
    }
}

// The selection's key is now exact: its elements tie on z and rank in id order. Each slice's
// tie mass; the row finds the first tie in id order whose running weight (from the weight
// ranked before the key) reaches the target, and the cut keeps everything ranked up to it.
__global__ void __launch_bounds__(kT) tie_k(Args a, int stage, int which) {
    pdl_begin();
    __shared__ Shared S;
    const int r = blockIdx.y, s = blockIdx.x, V = a.V;
    RowState& R = a.rows[r];
    if (R.done || !R.sel) return;
    const uint32_t key = R.prefix, kkey = R.kkey;
    const int kcut = R.kcut;
    const double base = R.base, target = R.target;
    const float* z = a.z + static_cast<size_t>(r) * V;
    const float* ev = a.e + static_cast<size_t>(r) * V;
    auto in = [&](int i, double& w) {
        const float zi = z[i];
        if (!(zi > -INFINITY) || okey(zi) != key) return false;
        if (which == TOPP && !ranks_in(key, i, kkey, kcut)) return false;
        w = which == TOPK ? 1.0 : static_cast<double>(ev[i]);
        return true;
    };
    SlicePart* P = a.parts + static_cast<size_t>(r) * kS;
    int last;
    const double m = range_mass(slice_begin(V, s), slice_begin(V, s + 1), in, S, last);
    if (threadIdx.x == 0) P[s].m = m, P[s].last = last;
    if (!last_arrival(a.arrivals + r * kStages + stage, S)) return;
    gather_parts(P, S);
    if (threadIdx.x == 0) {
        double before = 0;
        S.slice = crossing_slice(S.sp, base, target, false, before);
        S.c = before;
    }
    __syncthreads();
    const int cs = S.slice;
    const double c0 = S.c;
    int cut = -1;
    if (cs >= 0) {
        cut = walk(slice_begin(V, cs), slice_begin(V, cs + 1), c0, target, false, in, S);
    } else {  // rounding: the whole tie group stays
        for (int t = 0; t < kS; ++t) cut = max(cut, S.sp[t].last);
    }
    if (threadIdx.x != 0) return;
    if (which == TOPK)
        R.kkey = key, R.kcut = cut;
    else
        R.pkey = key, R.pcut = cut;
    R.sel = 0;
}

// e = exp(z - zmax) in double, rounded once to float, for top-k survivors (0 for the others);
// the row's total mass starts the top-p selection.
__global__ void __launch_bounds__(kT) exp_k(Args a, int stage) {
    pdl_begin();
    __shared__ Shared S;
    const int r = blockIdx.y, s = blockIdx.x, V = a.V;
    RowState& R = a.rows[r];
    if (R.done) return;
    const float zmax = R.zmax;
    const uint32_t kkey = R.kkey;
    const int kcut = R.kcut;
    const float* z = a.z + static_cast<size_t>(r) * V;
    float* ev = a.e + static_cast<size_t>(r) * V;
    double part = 0;
    for (int i = slice_begin(V, s) + threadIdx.x; i < slice_begin(V, s + 1); i += kT) {
        const float zi = z[i];
        float ei = 0.0f;
        if (zi > -INFINITY && ranks_in(okey(zi), i, kkey, kcut))
            ei = static_cast<float>(exp(static_cast<double>(zi - zmax)));
        ev[i] = ei;
        part += ei;
    }
    double m;
    block_excl_scan(part, S, m);
    SlicePart* P = a.parts + static_cast<size_t>(r) * kS;
    if (threadIdx.x == 0) P[s].m = m;
    if (!last_arrival(a.arrivals + r * kStages + stage, S)) return;
    gather_parts(P, S);
    if (threadIdx.x != 0) return;
    double total = 0;
    for (int t = 0; t < kS; ++t) total += S.sp[t].m;
    if (R.p.top_p < 1.0f) {
        // Keeps the prefix of the ranking up to the token whose inclusive mass reaches the
        // target: every kept token has less than top_p·total before it (the best always stays).
        R.sel = 1, R.prefix = 0, R.mask = 0, R.base = 0, R.target = static_cast<double>(R.p.top_p) * total;
    }
}

// Survivors of top-k, top-p and min-p; the draw: the first survivor in id order whose running
// mass exceeds u x the total (slices in order, then a walk of the crossing slice).
__global__ void __launch_bounds__(kT) draw_k(Args a, int stage) {
    pdl_begin();
    __shared__ Shared S;
    const int r = blockIdx.y, s = blockIdx.x, V = a.V;
    RowState& R = a.rows[r];
    if (R.done) return;
    const uint32_t kkey = R.kkey, pkey = R.pkey;
    const int kcut = R.kcut, pcut = R.pcut;
    const float min_p = R.p.min_p;
    const float* z = a.z + static_cast<size_t>(r) * V;
    const float* ev = a.e + static_cast<size_t>(r) * V;
    auto in = [&](int i, double& w) {
        const float zi = z[i];
        if (!(zi > -INFINITY)) return false;
        const uint32_t k = okey(zi);
        if (!ranks_in(k, i, kkey, kcut) || !ranks_in(k, i, pkey, pcut)) return false;
        const float ei = ev[i];
        if (min_p > 0.0f && ei < min_p) return false;  // relative to the top token, whose e is 1
        w = ei;
        return true;
    };
    SlicePart* P = a.parts + static_cast<size_t>(r) * kS;
    int last;
    const double m = range_mass(slice_begin(V, s), slice_begin(V, s + 1), in, S, last);
    if (threadIdx.x == 0) P[s].m = m, P[s].last = last;
    if (!last_arrival(a.arrivals + r * kStages + stage, S)) return;
    gather_parts(P, S);
    if (threadIdx.x == 0) {
        double total = 0;
        for (int t = 0; t < kS; ++t) total += S.sp[t].m;
        S.c = uniform_of(R.p.seed, R.index) * total;  // the target
        double before = 0;
        S.slice = crossing_slice(S.sp, 0.0, S.c, true, before);
        S.dw2[0] = before;
    }
    __syncthreads();
    const int cs = S.slice;
    const double target = S.c, c0 = S.dw2[0];
    __syncthreads();  // S is reused by walk()
    int id = -1;
    if (cs >= 0) {
        id = walk(slice_begin(V, cs), slice_begin(V, cs + 1), c0, target, true, in, S);
    } else {  // rounding left the target at the very top of the mass: the last survivor
        for (int t = 0; t < kS; ++t) id = max(id, S.sp[t].last);
    }
    if (threadIdx.x == 0) finish(a, r, R, id >= 0 ? id : R.best);
}

// Scratch of a group of g rows: row states, slice partials, arrival counters, z and e.
struct Layout {
    size_t rows, parts, hists, arrivals, z, e, bytes;
};
Layout layout(int64_t g, int64_t V) {
    auto up = [](size_t x) { return (x + 255) / 256 * 256; };
    const auto G = static_cast<size_t>(g);
    Layout L{};
    size_t o = 0;
    L.rows = o, o += up(G * sizeof(RowState));
    L.parts = o, o += up(G * kS * sizeof(SlicePart));
    L.hists = o, o += up(G * kS * sizeof(SliceHist));
    L.arrivals = o, o += up(G * kStages * sizeof(int));
    L.z = o, o += up(G * static_cast<size_t>(V) * sizeof(float));
    L.e = o, o += up(G * static_cast<size_t>(V) * sizeof(float));
    L.bytes = o;
    return L;
}

}  // namespace

size_t sample_scratch_bytes(const StepLimits& l) {
    return layout(std::min<int64_t>(std::max<int64_t>(l.max_out_rows, 1), kGroup),
                  std::max<int64_t>(l.n_vocab, 1))
        .bytes;
}

void sample(Tensor ids, Tensor logits, Tensor slot, Tensor pos, SlotState st, void* scratch,
            size_t scratch_bytes, cudaStream_t s) {
    const int64_t n = logits.rows(), V = logits.cols();
    WO_CHECK(ids.cols() >= n && slot.cols() >= n && pos.cols() >= n &&
                 st.params.nb1 == sizeof(SamplingParams) && V >= 1 && V < INT_MAX,
             "sample shapes");
    if (n == 0) return;
    // Rows go in groups of g (the scratch holds one group); a row's launches see only its own
    // data, so the grouping never changes an id.
    int64_t g = std::min<int64_t>(n, kGroup);
    while (g > 1 && layout(g, V).bytes > scratch_bytes) --g;
    WO_CHECK(layout(g, V).bytes <= scratch_bytes, "sample: scratch reserved for a smaller vocabulary");
    const Layout L = layout(g, V);
    auto* base = static_cast<uint8_t*>(scratch);
    const Rows lr = rows_of(logits);
    for (int64_t r0 = 0; r0 < n; r0 += g) {
        const int64_t rows = std::min(g, n - r0);
        Args a{static_cast<int32_t*>(ids.data) + r0,
               Rows{lr.p + r0 * lr.ld, lr.ld},
               i32_of(slot) + r0,
               i32_of(pos) + r0,
               static_cast<int32_t*>(st.last_id.data),
               i32_of(st.history),
               static_cast<int64_t>(st.history.nb1 / sizeof(int32_t)),
               static_cast<int>(st.history.rows()),
               static_cast<int>(st.history.cols()),
               static_cast<int>(V),
               static_cast<const SamplingParams*>(st.params.data),
               reinterpret_cast<RowState*>(base + L.rows),
               reinterpret_cast<SlicePart*>(base + L.parts),
               reinterpret_cast<SliceHist*>(base + L.hists),
               reinterpret_cast<int*>(base + L.arrivals),
               reinterpret_cast<float*>(base + L.z),
               reinterpret_cast<float*>(base + L.e)};
        check(cudaMemsetAsync(a.arrivals, 0, static_cast<size_t>(rows) * kStages * sizeof(int), s),
              "cudaMemsetAsync(sample arrivals)");
        const dim3 grid(kS, static_cast<unsigned>(rows));
        launch("prep_k", prep_k, grid, kT, 0, s, a);
        check_launch("sample prep");
        for (int d = 0; d < 4; ++d)
            launch("select_k", select_k, grid, kT, 0, s, a, TOPK_DIGIT + d, TOPK, 24 - 8 * d);
        launch("tie_k", tie_k, grid, kT, 0, s, a, TOPK_TIES, TOPK);
        launch("exp_k", exp_k, grid, kT, 0, s, a, EXP);
        for (int d = 0; d < 4; ++d)
            launch("select_k", select_k, grid, kT, 0, s, a, TOPP_DIGIT + d, TOPP, 24 - 8 * d);
        launch("tie_k", tie_k, grid, kT, 0, s, a, TOPP_TIES, TOPP);
        launch("draw_k", draw_k, grid, kT, 0, s, a, DRAW);
        check_launch("sample");
    }
}

}  // namespace wo::cuda
