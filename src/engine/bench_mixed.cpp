// `bench --mixed S:IN:OUT` (bench.h): S requests submitted at once to a real Engine, which
// batches them continuously (prompt chunks beside decode tokens), as a server under load does.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include "engine/bench.h"
#include "engine/engine.h"
#include "util/error.h"
#include "util/log.h"

namespace wo::bench {
namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t i = static_cast<size_t>(std::ceil(p * double(v.size()))) - 1;
    return v[std::min(i, v.size() - 1)];
}

}  // namespace

Row run_mixed(const Options& o, const Mixed& x) {
    EngineOptions eo;
    eo.model_path = o.model;
    eo.backend = o.backend;
    eo.device = o.device;
    eo.threads = o.threads;
    eo.n_ctx = x.n_in + x.n_out;
    eo.n_parallel = x.streams;
    eo.max_queue = x.streams;
    eo.prefill_chunk = o.ubatch;
    eo.timeout_ms = 0;
    Engine e(eo);
    e.start();
    if (e.wait_loaded() != Engine::State::Ready)
        throw Error(e.load_error_code(), "bench --mixed: the engine did not load the model: " + e.load_error());
    const int V = e.info().vocab_size;

    std::vector<std::shared_ptr<Job>> jobs;
    const auto t0 = Clock::now();
    for (int k = 0; k < x.streams; ++k) {
        GenerateRequest g;
        g.job_id = "bench-mixed-" + std::to_string(k);
        g.prompt = random_prompt(o.seed, k, x.n_in, V);
        g.sampling = sampling_of(o);
        g.max_tokens = x.n_out;
        g.ignore_eos = true;
        jobs.push_back(e.submit(std::move(g)));
    }
    // One reader per job, as the HTTP writers are: time of the first token, tokens at the end.
    std::vector<double> ttft(jobs.size(), -1.0);
    std::vector<int64_t> out(jobs.size(), 0);
    std::vector<std::string> errors(jobs.size());
    std::vector<std::thread> readers;
    for (size_t k = 0; k < jobs.size(); ++k)
        readers.emplace_back([&, k] {
            for (;;) {
                auto ev = jobs[k]->pop(std::chrono::milliseconds(100));
                if (!ev) continue;
                if (ev->kind == JobEvent::Kind::Token && ttft[k] < 0)
                    ttft[k] = std::chrono::duration<double>(Clock::now() - t0).count();
                if (ev->kind == JobEvent::Kind::End) {
                    out[k] = ev->tokens_out;
                    return;
                }
                if (ev->kind == JobEvent::Kind::Error) {
                    errors[k] = std::string(code_name(ev->code)) + ": " + ev->message;
                    return;
                }
            }
        });
    for (auto& t : readers) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    e.stop();
    for (size_t k = 0; k < errors.size(); ++k)
        if (!errors[k].empty()) throw Error(Code::INTERNAL, "bench --mixed: request " + std::to_string(k) + " failed: " + errors[k]);

    Row r;
    r.test = "mixed";
    r.kind = "mixed";
    r.n_prompt = x.n_in, r.n_gen = x.n_out, r.streams = x.streams;
    r.seconds = {wall};
    r.median_s = wall;
    r.ms = wall * 1e3;
    for (int64_t n : out) r.tokens_out += n;
    r.tok_s = double(r.tokens_out) / wall;
    r.tok_s_stream = r.tok_s / x.streams;
    std::vector<double> ms;
    for (double t : ttft)
        if (t >= 0) ms.push_back(t * 1e3);
    r.ttft_p50_ms = percentile(ms, 0.50);
    r.ttft_p99_ms = percentile(ms, 0.99);
    log::info("bench.test", {{"test", r.test}, {"streams", r.streams}, {"median_ms", r.ms}});
    return r;
}

}  // namespace wo::bench
