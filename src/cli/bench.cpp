// `worker-orcd bench --model M.gguf [-p 512,2048] [-n 128] [--streams 1,8,32] [--reps N] [--json]
// [--backend cpu|cuda] [--threads N] [--ctx N] [--ubatch N] [--decode-prompt N] [--mixed S:IN:OUT]
// [--temperature T --top-k K --top-p P --min-p M]`:
// prefill, time to first token, decode speed and a mixed load through the engine as a table (or
// one JSON document); docs/bench.md.
#include "engine/bench.h"

#include <cstdio>
#include <memory>

#include "cli/commands.h"

namespace wo::cli {

void add_bench(CLI::App& app, int& rc) {
    auto o = std::make_shared<bench::Options>();
    auto json = std::make_shared<bool>(false);
    auto* sub =
        app.add_subcommand("bench", "Measure prefill, time to first token and decode speed of a model");
    sub->add_option("--model,-m", o->model, "GGUF model file")->required();
    sub->add_option("-p,--n-prompt", o->n_prompt,
                    "Prompt lengths for prefill and time to first token (default 512; 0 skips)")
        ->delimiter(',');
    sub->add_option("-n,--n-gen", o->n_gen, "Tokens each stream decodes (default 128; 0 skips)");
    sub->add_option("--streams", o->streams, "Streams decoding together, one test per value (default 1)")
        ->delimiter(',');
    sub->add_option("--decode-prompt", o->decode_prompt,
                    "Prompt each stream holds before decode (default 512)");
    sub->add_option("--reps,-r", o->reps,
                    "Timed repeats after one warm-up; the median is reported (default 3)");
    sub->add_option("--ubatch", o->ubatch, "Most tokens in one step (default 2048)");
    sub->add_option("--backend", o->backend, "cpu (default) or cuda");
    sub->add_option("--threads,-t", o->threads, "CPU threads (default 0 = all cores)");
    sub->add_option("--device", o->device, "CUDA device (default 0)");
    sub->add_option("--ctx", o->n_ctx, "Context per slot (default 0 = what the longest test needs)");
    sub->add_option("--seed", o->seed, "Seed of the random prompt ids and of the sampler (default 1234)");
    sub->add_option("--mixed", o->mixed,
                    "S:IN:OUT: S requests of IN prompt and OUT generated tokens at once through the engine "
                    "(continuous batching), after the other tests (default: none)");
    sub->add_option("--temperature", o->temperature, "Sampling temperature of every test (default 0 = greedy)");
    sub->add_option("--top-k", o->top_k, "Keep the k most likely tokens (default 0 = off)");
    sub->add_option("--top-p", o->top_p, "Nucleus sampling mass (default 1 = off)");
    sub->add_option("--min-p", o->min_p, "Drop tokens below min_p x the top probability (default 0 = off)");
    sub->add_flag("--json", *json, "Print one JSON document instead of the table");
    sub->callback([o, json, &rc] {
        const bench::Report r = bench::run(*o);
        const std::string out = *json ? bench::to_json(r).dump(2) + "\n" : bench::table(r);
        std::fwrite(out.data(), 1, out.size(), stdout);
        rc = 0;
    });
}

}  // namespace wo::cli
