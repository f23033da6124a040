// `worker-orcd bench`: how every speed claim in the project is measured (docs/bench.md). Drives a
// Model directly through the step contract: prefill of random prompts, time to first token, and
// greedy decode of S streams fed with kLastSampled; a warm-up run, then the median of repeats.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/sampling.h"
#include "model/model.h"

namespace wo::bench {

struct Options {
    std::string model;               // GGUF file
    std::vector<int> n_prompt{512};  // -p: prefill and time-to-first-token tests (0 = skip)
    int n_gen = 128;                 // -n: decode tokens per stream (0 = no decode tests)
    std::vector<int> streams{1};     // --streams: slots decoding together
    int decode_prompt = 512;         // prompt each stream holds before its decode is timed
    int reps = 3;                    // timed repeats after one warm-up run
    int ubatch = 2048;               // largest step; reserve() gets min(this, longest prompt)
    std::string backend = "cpu";
    int threads = 0;       // CPU threads (0 = all cores)
    int device = 0;        // CUDA device
    int n_ctx = 0;         // per slot; 0 = what the longest test needs
    uint64_t seed = 1234;  // prompt token ids
    // --mixed S:IN:OUT: S requests of IN random prompt tokens and OUT generated tokens each, all
    // submitted at once to the real engine (S slots, continuous batching: prompt chunks of up to
    // --ubatch tokens beside the decode tokens); one run after the model tests. Empty: off.
    std::string mixed;
    // The sampler of every test (--temperature, --top-k, --top-p, --min-p; seeded with `seed`):
    // greedy by default; a sampled run measures what serving with those settings costs.
    float temperature = 0.0f, top_p = 1.0f, min_p = 0.0f;
    int top_k = 0;
};

struct Mixed {
    int streams = 0, n_in = 0, n_out = 0;
};
// "S:IN:OUT" -> Mixed; throws INVALID_ARGUMENT naming --mixed.
Mixed parse_mixed(const std::string& s);

// Throws Error(INVALID_ARGUMENT) naming the option when `o` cannot be run (before any loading).
void validate(const Options& o);

// Weights a decode step reads: dense tensors in full, MoE expert tensors (names with "_exps") for
// the experts the step's tokens route to, embedding tables (get_rows) one row per token unless
// one is also the LM head (tied). Expected experts per layer under uniform routing of `tokens`
// tokens each picking k of E distinct: E * (1 - (1 - k/E)^tokens), which is k at one token.
struct WeightTraffic {
    uint64_t dense = 0;    // bytes read in full every step
    uint64_t experts = 0;  // bytes of all experts' tensors (all E)
    uint64_t rows = 0;     // bytes of one row of each embedding table read by get_rows
    int n_expert = 0, n_expert_used = 0;
    // Multiply-adds per prompt token in the weight matrices a prefill runs: every matrix but the
    // embedding tables and the LM head (a prefill row samples nothing); experts' k of E.
    uint64_t dense_macs = 0, expert_macs = 0;
    double step_bytes(int tokens) const;
    double prompt_flops_per_token() const;  // 2 x (dense + experts x k/E) multiply-adds
};
WeightTraffic weight_traffic(const gguf::File& f, const Hparams& hp);

struct Row {
    std::string test;  // "pp512", "ttft512", "tg128"
    std::string kind;  // "prefill", "ttft", "decode"
    int n_prompt = 0;  // prompt tokens (decode: held by each stream before the timed part)
    int n_gen = 0;     // decode tokens per stream
    int streams = 1;
    std::vector<double> seconds;  // every timed repeat
    double median_s = 0;
    double tok_s = 0;         // prefill: prompt tok/s; decode: all streams together
    double tok_s_stream = 0;  // decode: one stream
    double ms = 0;            // ttft: time to first token; others: median run time
    double step_bytes = 0;    // decode: weight bytes one step reads at this stream count
    double gb_s = 0;          // decode: step_bytes x steps per second / 1e9
    double tflop_s = 0;       // prefill: weight-matrix FLOPs per second / 1e12 (attention not counted)
    // mixed: generated tokens in all, and time to first token over the requests
    int64_t tokens_out = 0;
    double ttft_p50_ms = 0, ttft_p99_ms = 0;
};

// The --mixed row (bench_mixed.cpp): one run through an Engine that loads the model itself.
Row run_mixed(const Options& o, const Mixed& x);

struct Report {
    std::string backend, device;  // device: "2 threads, <CPU model>" or the GPU name
    int threads = 0;
    std::string model_path, model_name, arch, quant;
    uint64_t n_params = 0, weight_bytes = 0, kv_bytes = 0;
    uint64_t resident_weight_bytes = 0, buffer_bytes = 0;  // on the backend (repacked), step buffers
    double load_s = 0;  // file open to ready: weights resident, KV cache and buffers reserved
    int n_ctx = 0, max_step_tokens = 0, n_slots = 0, reps = 0;
    double step_bytes_b1 = 0;  // weight bytes one decode step reads at batch 1
    double prompt_flops_per_token = 0;
    SamplingParams sampling;  // what every slot sampled with
    std::vector<Row> rows;
};

// The options' sampler (seed = o.seed); "greedy", or "temperature T, top-k K, top-p P, min-p M,
// seed S".
SamplingParams sampling_of(const Options& o);
std::string sampling_text(const SamplingParams& p);

// Loads the model and runs every test; rows come in option order: for each -p a prefill and a
// ttft row, then one decode row per --streams value.
Report run(const Options& o);

std::string table(const Report& r);
nlohmann::json to_json(const Report& r);

// Prompt ids from (seed, slot): the same prompt in every run, a different one per stream.
std::vector<int32_t> random_prompt(uint64_t seed, int slot, int n, int n_vocab);

// Median (mean of the middle two for an even count); 0 for none.
double median(std::vector<double> v);

}  // namespace wo::bench
