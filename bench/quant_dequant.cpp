// CPU dequantization throughput per format (the scalar reference of src/quant), single thread.
// Counters: out_GBps = float32 bytes written per second, in_GBps = quantized bytes read per second.
// Data: one 4096 x 16 tensor (65536 weights) per format, quantized once from N(0,1) values; small
// enough to stay in L2, so this measures decode arithmetic, not memory bandwidth.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "quant/quant.h"

namespace {

using wo::GgmlType;

void BM_Dequantize(benchmark::State& state, GgmlType t) {
    const int64_t n = 4096 * 16;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng);
    std::vector<uint8_t> q(wo::row_bytes(t, uint64_t(n)));
    wo::quant::quantize_row(t, x.data(), q.data(), n);
    for (auto _ : state) {
        wo::quant::dequantize_row(t, q.data(), y.data(), n);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    const double iters = double(state.iterations());
    state.counters["out_GBps"] =
        benchmark::Counter(iters * double(n) * 4 / 1e9, benchmark::Counter::kIsRate);
    state.counters["in_GBps"] =
        benchmark::Counter(iters * double(q.size()) / 1e9, benchmark::Counter::kIsRate);
    state.counters["bpw"] = double(q.size()) * 8 / double(n);
}

#define WO_BENCH_TYPE(T) BENCHMARK_CAPTURE(BM_Dequantize, T, GgmlType::T)
WO_BENCH_TYPE(F32);
WO_BENCH_TYPE(F16);
WO_BENCH_TYPE(BF16);
WO_BENCH_TYPE(Q8_0);
WO_BENCH_TYPE(Q4_0);
WO_BENCH_TYPE(Q5_0);
WO_BENCH_TYPE(Q4_K);
WO_BENCH_TYPE(Q5_K);
WO_BENCH_TYPE(Q6_K);
WO_BENCH_TYPE(MXFP4);

}  // namespace

BENCHMARK_MAIN();
