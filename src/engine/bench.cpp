// The measurements of `worker-orcd bench` (bench.h); docs/bench.md explains each figure.
#include "engine/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/log.h"
#if WO_HAVE_CUDA
#include "backend/cuda/device.h"
#endif

namespace wo::bench {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

[[noreturn]] void bad(const std::string& msg) { throw Error(Code::INVALID_ARGUMENT, "bench: " + msg); }

// Submits steps keeping up to the model's pipeline depth in flight, as the engine does; every
// sampled id is checked to be a vocabulary id (a broken step must not pass as a fast one).
class Stepper {
public:
    explicit Stepper(Model& m) : m_(m), depth_(std::max(1, m.pipeline_depth())) {}
    void push(const std::vector<BatchToken>& b) {
        if (in_flight_ == depth_) pop();
        m_.submit(b, false);
        ++in_flight_;
    }
    void drain() {
        while (in_flight_ > 0) pop();
    }

private:
    void pop() {
        const StepResult r = m_.wait();
        --in_flight_;
        for (int32_t id : r.ids)
            if (id < 0 || id >= m_.hparams().n_vocab)
                throw Error(Code::INTERNAL, "bench: a step sampled id " + std::to_string(id) +
                                                " outside the vocabulary of " +
                                                std::to_string(m_.hparams().n_vocab));
    }
    Model& m_;
    int depth_, in_flight_ = 0;
};

// The prompt into `slot` in steps of at most `max_step` tokens; `sample` asks the last token for
// the first generated id (and leaves it on the device for kLastSampled).
void prefill(Stepper& st, Model& m, int slot, const std::vector<int32_t>& prompt, int max_step, bool sample) {
    m.clear_slot(slot);
    const int n = static_cast<int>(prompt.size());
    for (int i0 = 0; i0 < n; i0 += max_step) {
        std::vector<BatchToken> b;
        for (int i = i0; i < std::min(n, i0 + max_step); ++i)
            b.push_back({prompt[static_cast<size_t>(i)], i, slot, sample && i == n - 1});
        st.push(b);
    }
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
            std::string v = line.substr(line.find(':') + 1);
            v.erase(0, v.find_first_not_of(' '));
            return v;
        }
    return "unknown CPU";
}

Row make_row(std::string test, std::string kind, int n_prompt, int n_gen, int streams) {
    Row r;
    r.test = std::move(test);
    r.kind = std::move(kind);
    r.n_prompt = n_prompt, r.n_gen = n_gen, r.streams = streams;
    return r;
}

Row finish(Row r) {
    r.median_s = median(r.seconds);
    r.ms = r.median_s * 1e3;
    return r;
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

}  // namespace

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double WeightTraffic::step_bytes(int tokens) const {
    double frac = 0;
    if (n_expert > 0) frac = 1 - std::pow(1 - double(n_expert_used) / n_expert, tokens);
    return double(dense) + double(experts) * frac + double(rows) * tokens;
}

double WeightTraffic::prompt_flops_per_token() const {
    const double frac = n_expert > 0 ? double(n_expert_used) / n_expert : 0.0;
    return 2.0 * (double(dense_macs) + double(expert_macs) * frac);
}

WeightTraffic weight_traffic(const gguf::File& f, const Hparams& hp) {
    WeightTraffic w;
    w.n_expert = hp.n_expert;
    w.n_expert_used = hp.n_expert_used;
    const bool tied = f.find_tensor("output.weight") == nullptr;
    for (const auto& t : f.tensors()) {
        const bool table = t.name == "position_embd.weight" || (t.name == "token_embd.weight" && !tied);
        if (t.name.find("_exps") != std::string::npos)
            w.experts += t.n_bytes;
        else if (table && t.shape.size() == 2 && t.shape[1] > 0)
            w.rows += t.n_bytes / t.shape[1];  // get_rows: one row per token
        else
            w.dense += t.n_bytes;  // includes a tied token_embd, which is the LM head too
        const bool matrix = t.shape.size() >= 2 && t.name.size() > 7 && t.name.ends_with(".weight");
        if (!matrix || t.name == "token_embd.weight" || t.name == "position_embd.weight" ||
            t.name == "output.weight")
            continue;
        (t.name.find("_exps") != std::string::npos ? w.expert_macs : w.dense_macs) += t.n_elements;
    }
    return w;
}

std::vector<int32_t> random_prompt(uint64_t seed, int slot, int n, int n_vocab) {
    uint64_t s = seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(slot + 1));
    std::vector<int32_t> out(static_cast<size_t>(n));
    for (auto& id : out) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        id = static_cast<int32_t>((z ^ (z >> 31)) % static_cast<uint64_t>(n_vocab));
    }
    return out;
}

SamplingParams sampling_of(const Options& o) {
    SamplingParams p;
    p.temperature = o.temperature;
    p.top_k = o.top_k;
    p.top_p = o.top_p;
    p.min_p = o.min_p;
    p.seed = o.seed;
    return p;
}

std::string sampling_text(const SamplingParams& p) {
    if (p.temperature <= 0.0f) return "greedy";
    return fmt("temperature %g", p.temperature) + ", top-k " + std::to_string(p.top_k) + fmt(", top-p %g", p.top_p) +
           fmt(", min-p %g", p.min_p) + ", seed " + std::to_string(p.seed);
}

Mixed parse_mixed(const std::string& s) {
    Mixed m;
    char tail = 0;
    if (std::sscanf(s.c_str(), "%d:%d:%d%c", &m.streams, &m.n_in, &m.n_out, &tail) != 3)
        bad("--mixed must be S:IN:OUT (e.g. 128:1000:1000), got '" + s + "'");
    if (m.streams < 1 || m.streams > 4096 || m.n_in < 1 || m.n_out < 1)
        bad("--mixed " + s + ": S must be in [1, 4096], IN and OUT >= 1");
    return m;
}

void validate(const Options& o) {
    if (o.model.empty()) bad("--model is required");
    if (o.backend != "cpu" && o.backend != "cuda")
        bad("--backend must be cpu or cuda, got '" + o.backend + "'");
    bool any_p = false;
    for (int p : o.n_prompt) {
        if (p < 0) bad("-p values must be >= 0 (0 skips), got " + std::to_string(p));
        any_p = any_p || p > 0;
    }
    if (o.n_gen < 0) bad("-n must be >= 0 (0 skips decode), got " + std::to_string(o.n_gen));
    if (o.n_gen > 0 && o.streams.empty()) bad("--streams needs at least one value");
    for (int s : o.streams)
        if (s < 1 || s > 4096) bad("--streams values must be in [1, 4096], got " + std::to_string(s));
    if (!o.mixed.empty()) parse_mixed(o.mixed);
    if (!any_p && o.n_gen == 0 && o.mixed.empty()) bad("nothing to measure: every -p is 0, -n is 0 and no --mixed");
    if (o.reps < 1) bad("--reps must be >= 1, got " + std::to_string(o.reps));
    if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature))
        bad("--temperature must be finite and >= 0 (0 = greedy), got " + fmt("%g", o.temperature));
    if (o.top_k < 0) bad("--top-k must be >= 0 (0 = off), got " + std::to_string(o.top_k));
    if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) bad("--top-p must be in (0, 1] (1 = off), got " + fmt("%g", o.top_p));
    if (!(o.min_p >= 0.0f && o.min_p <= 1.0f)) bad("--min-p must be in [0, 1] (0 = off), got " + fmt("%g", o.min_p));
    if (o.ubatch < 1) bad("--ubatch must be >= 1, got " + std::to_string(o.ubatch));
    if (o.threads < 0) bad("--threads must be >= 0 (0 = all cores), got " + std::to_string(o.threads));
    if (o.n_ctx < 0) bad("--ctx must be >= 0 (0 = what the tests need), got " + std::to_string(o.n_ctx));
    if (o.n_gen > 0 && o.decode_prompt < 1)
        bad("--decode-prompt must be >= 1 (decode feeds the id its prompt sampled), got " +
            std::to_string(o.decode_prompt));
    const int max_s = o.n_gen > 0 ? *std::max_element(o.streams.begin(), o.streams.end()) : 1;
    if (o.ubatch < max_s)
        bad("--ubatch " + std::to_string(o.ubatch) + " is smaller than --streams " + std::to_string(max_s) +
            " (a decode step holds one token per stream)");
    int need = 0;
    for (int p : o.n_prompt) need = std::max(need, p);
    if (o.n_gen > 0) need = std::max(need, o.decode_prompt + o.n_gen);
    if (o.n_ctx > 0 && o.n_ctx < need)
        bad("--ctx " + std::to_string(o.n_ctx) + " is smaller than the " + std::to_string(need) +
            " tokens the longest test needs");
}

Report run(const Options& o) {
    validate(o);
    // --mixed runs last, through an engine that needs the file's tokenizer: a file without one
    // fails here, before the other tests spend minutes whose table would then never print.
    if (!o.mixed.empty()) {
        try {
            (void)load_tokenizer(gguf::File::open(o.model));
        } catch (const Error& e) {
            if (e.code() != Code::TOKENIZER_INVALID) throw;
            throw Error(e.code(), std::string("bench --mixed needs the model file's tokenizer (synth --tokenizer "
                                              "embeds one): ") + e.what());
        }
    }
    const auto t_load = Clock::now();
    auto file = std::make_shared<const gguf::File>(gguf::File::open(o.model));
    LoadOptions lo;
    lo.backend = o.backend;
    lo.n_threads = o.threads;
    lo.device = o.device;
    std::unique_ptr<Model> m = load_model(file, lo);
    const Hparams& hp = m->hparams();

    int need = 0, longest = 0, max_s = 1;
    for (int p : o.n_prompt) need = std::max(need, p), longest = std::max(longest, p);
    if (o.n_gen > 0) {
        need = std::max(need, o.decode_prompt + o.n_gen);
        longest = std::max(longest, o.decode_prompt);
        max_s = *std::max_element(o.streams.begin(), o.streams.end());
    }
    Report r;
    r.n_ctx = o.n_ctx > 0 ? o.n_ctx : std::max(need, 1);
    if (r.n_ctx > hp.n_ctx_train)
        throw Error(Code::CONTEXT_OVERFLOW, "bench: the tests need a context of " + std::to_string(r.n_ctx) +
                                                " tokens; the model has " + std::to_string(hp.n_ctx_train));
    r.n_slots = max_s;
    r.max_step_tokens = std::max(max_s, std::min(o.ubatch, longest));
    r.reps = o.reps;
    m->reserve(ReserveOptions{r.n_slots, r.n_ctx, r.max_step_tokens, max_s});
    r.load_s = since(t_load);
    r.resident_weight_bytes = m->weight_bytes();
    r.buffer_bytes = m->buffer_bytes();
    r.sampling = sampling_of(o);
    for (int s = 0; s < r.n_slots; ++s) m->set_sampling(s, r.sampling);

    r.backend = m->backend_name();
    if (o.backend == "cpu") {
        r.threads =
            o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        r.device = std::to_string(r.threads) + " threads, " + cpu_model();
    } else {
#if WO_HAVE_CUDA
        r.device = cuda::device_info(o.device).name;
#else
        r.device = "CUDA device " + std::to_string(o.device);
#endif
    }
    r.model_path = o.model;
    r.model_name = file->find_string("general.name").value_or(o.model);
    r.arch = hp.arch;
    r.quant = m->quant_kind();
    for (const auto& t : file->tensors()) r.n_params += t.n_elements, r.weight_bytes += t.n_bytes;
    r.kv_bytes = m->kv_bytes();
    const WeightTraffic traffic = weight_traffic(*file, hp);
    r.step_bytes_b1 = traffic.step_bytes(1);
    r.prompt_flops_per_token = traffic.prompt_flops_per_token();

    Stepper st(*m);
    // One warm-up run, then `reps` timed ones; `once` returns the seconds of one run.
    auto measure = [&](Row row, const auto& once) {
        once();
        for (int i = 0; i < o.reps; ++i) row.seconds.push_back(once());
        row = finish(std::move(row));
        log::info("bench.test", {{"test", row.test}, {"streams", row.streams}, {"median_ms", row.ms}});
        return row;
    };
    for (int p : o.n_prompt) {
        if (p == 0) continue;
        const auto prompt = random_prompt(o.seed, 0, p, hp.n_vocab);
        // Prompt processing alone: no token asks for a sample, so no LM head runs.
        Row pp = measure(make_row("pp" + std::to_string(p), "prefill", p, 0, 1), [&] {
            const auto t0 = Clock::now();
            prefill(st, *m, 0, prompt, r.max_step_tokens, false);
            st.drain();
            return since(t0);
        });
        pp.tok_s = p / pp.median_s;
        pp.tflop_s = r.prompt_flops_per_token * p / pp.median_s / 1e12;
        r.rows.push_back(pp);
        // Until the first generated id is on the host: prefill, LM head, sampling, download.
        r.rows.push_back(measure(make_row("ttft" + std::to_string(p), "ttft", p, 1, 1), [&] {
            const auto t0 = Clock::now();
            prefill(st, *m, 0, prompt, r.max_step_tokens, true);
            st.drain();
            return since(t0);
        }));
    }
    if (o.n_gen > 0) {
        // Every stream's prompt is prefilled once (untimed, its last token sampled); each decode run
        // then rewinds the slots to position D, so a run costs N steps and no prefill (attention
        // reads positions <= pos only, model.h), whatever the stream count and repeats.
        for (int s = 0; s < max_s; ++s)
            prefill(st, *m, s, random_prompt(o.seed, s, o.decode_prompt, hp.n_vocab), r.max_step_tokens,
                    true);
        st.drain();
        for (int S : o.streams) {
            Row tg =
                measure(make_row("tg" + std::to_string(o.n_gen), "decode", o.decode_prompt, o.n_gen, S), [&] {
                    const auto t0 = Clock::now();
                    std::vector<BatchToken> b(static_cast<size_t>(S));
                    for (int i = 0; i < o.n_gen; ++i) {
                        for (int s = 0; s < S; ++s)
                            b[static_cast<size_t>(s)] = {kLastSampled, o.decode_prompt + i, s, true};
                        st.push(b);
                    }
                    st.drain();
                    return since(t0);
                });
            tg.tok_s_stream = o.n_gen / tg.median_s;
            tg.tok_s = tg.tok_s_stream * S;
            tg.step_bytes = traffic.step_bytes(S);
            tg.gb_s = tg.step_bytes * tg.tok_s_stream / 1e9;
            r.rows.push_back(tg);
        }
    }
    if (!o.mixed.empty()) {
        m.reset();  // the engine loads its own copy
        r.rows.push_back(run_mixed(o, parse_mixed(o.mixed)));
    }
    log::info("bench.done", {{"model", o.model}, {"rows", r.rows.size()}});
    return r;
}

std::string table(const Report& r) {
    std::string out;
    out += "model:  " + r.model_name + " | " + r.arch + ", " + r.quant + ", " +
           fmt("%.3f B params", r.n_params / 1e9) + ", " +
           fmt("%.2f GiB of weights", r.weight_bytes / double(1ull << 30)) + "\n";
    out += "device: " + r.backend + ", " + r.device + "\n";
    out += "setup:  " + std::to_string(r.n_slots) + " slot(s) x " + std::to_string(r.n_ctx) +
           " ctx, steps of <= " + std::to_string(r.max_step_tokens) + " tokens, KV " +
           fmt("%.1f MiB", r.kv_bytes / double(1 << 20)) + "; warm-up + median of " + std::to_string(r.reps) +
           "; sampling: " + sampling_text(r.sampling) + "\n";
    out += "load:   " + fmt("%.2f s", r.load_s) + " from opening the file to ready (weights resident, KV and buffers " +
           "reserved)\n";
    const double wk = double(r.weight_bytes + r.kv_bytes);
    out += "memory: weights " + fmt("%.2f GiB", r.resident_weight_bytes / double(1ull << 30)) + " resident (" +
           fmt("%.2f GiB", r.weight_bytes / double(1ull << 30)) + " in the file), KV " +
           fmt("%.1f MiB", r.kv_bytes / double(1 << 20)) + ", buffers " +
           fmt("%.1f MiB", r.buffer_bytes / double(1 << 20)) + ": " +
           fmt("%.2f%%", wk > 0 ? 100.0 * (double(r.resident_weight_bytes + r.buffer_bytes) - r.weight_bytes) / wk : 0.0) +
           " beyond the file's weights + KV\n";
    out += "decode weight bytes per step at batch 1: " + fmt("%.3f GB", r.step_bytes_b1 / 1e9) + "\n\n";
    out +=
        "| test       | streams | tokens     |  median ms |     tok/s | tok/s/stream | GB/step |   GB/s | TFLOP/s |\n";
    out +=
        "|------------|--------:|-----------:|-----------:|----------:|-------------:|--------:|-------:|--------:|\n";
    for (const Row& w : r.rows) {
        const bool dec = w.kind == "decode", mixed = w.kind == "mixed";
        const std::string tokens = w.kind == "prefill"
                                       ? std::to_string(w.n_prompt)
                                       : std::to_string(w.n_prompt) + "+" + std::to_string(w.n_gen);
        char line[256];
        std::snprintf(
            line, sizeof line, "| %-10s | %7d | %10s | %10.2f | %9s | %12s | %7s | %6s | %7s |\n", w.test.c_str(),
            w.streams, tokens.c_str(), w.ms, w.kind == "ttft" ? "-" : fmt("%.2f", w.tok_s).c_str(),
            dec || mixed ? fmt("%.2f", w.tok_s_stream).c_str() : "-",
            dec ? fmt("%.3f", w.step_bytes / 1e9).c_str() : "-", dec ? fmt("%.2f", w.gb_s).c_str() : "-",
            w.kind == "prefill" ? fmt("%.2f", w.tflop_s).c_str() : "-");
        out += line;
    }
    for (const Row& w : r.rows)
        if (w.kind == "mixed")
            out += "\nmixed: " + std::to_string(w.streams) + " requests of " + std::to_string(w.n_prompt) + " prompt + " +
                   std::to_string(w.n_gen) + " generated tokens through the engine: " + std::to_string(w.tokens_out) +
                   " tokens out in " + fmt("%.2f s", w.median_s) + " (" + fmt("%.1f", w.tok_s) +
                   " output tok/s); time to first token p50 " + fmt("%.1f", w.ttft_p50_ms) + " ms, p99 " +
                   fmt("%.1f", w.ttft_p99_ms) + " ms\n";
    return out;
}

nlohmann::json to_json(const Report& r) {
    nlohmann::json rows = nlohmann::json::array();
    for (const Row& w : r.rows) {
        nlohmann::json j = {
            {"test", w.test},       {"kind", w.kind},       {"n_prompt", w.n_prompt}, {"n_gen", w.n_gen},
            {"streams", w.streams}, {"seconds", w.seconds}, {"median_s", w.median_s}, {"ms", w.ms}};
        if (w.kind != "ttft") j["tok_s"] = w.tok_s;
        if (w.kind == "prefill") j["tflop_s"] = w.tflop_s;
        if (w.kind == "mixed") {
            j["tok_s_stream"] = w.tok_s_stream;
            j["tokens_out"] = w.tokens_out;
            j["ttft_p50_ms"] = w.ttft_p50_ms;
            j["ttft_p99_ms"] = w.ttft_p99_ms;
        }
        if (w.kind == "decode") {
            j["tok_s_stream"] = w.tok_s_stream;
            j["step_bytes"] = w.step_bytes;
            j["gb_s"] = w.gb_s;
        }
        rows.push_back(j);
    }
    nlohmann::json dev = {{"backend", r.backend}, {"name", r.device}};
    if (r.backend == "cpu") dev["threads"] = r.threads;
    return {{"model",
             {{"path", r.model_path},
              {"name", r.model_name},
              {"arch", r.arch},
              {"quant", r.quant},
              {"params", r.n_params},
              {"weight_bytes", r.weight_bytes}}},
            {"device", dev},
            {"load_s", r.load_s},
            {"memory",
             {{"weight_bytes_file", r.weight_bytes},
              {"weight_bytes_resident", r.resident_weight_bytes},
              {"kv_bytes", r.kv_bytes},
              {"buffer_bytes", r.buffer_bytes}}},
            {"setup",
             {{"n_ctx", r.n_ctx},
              {"n_slots", r.n_slots},
              {"max_step_tokens", r.max_step_tokens},
              {"reps", r.reps},
              {"kv_bytes", r.kv_bytes},
              {"sampling",
               {{"temperature", r.sampling.temperature},
                {"top_k", r.sampling.top_k},
                {"top_p", r.sampling.top_p},
                {"min_p", r.sampling.min_p},
                {"seed", r.sampling.seed}}}}},
            {"decode_step_bytes_b1", r.step_bytes_b1},
            {"prompt_flops_per_token", r.prompt_flops_per_token},
            {"results", rows}};
}

}  // namespace wo::bench
