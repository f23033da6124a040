// `worker-orcd generate --model M.gguf (--prompt TEXT | --prompt-ids 1,2,3) [-n N] [sampling]
// [--threads N] [--ids]`: loads a model, prefills the prompt and streams sampled tokens to the
// terminal (text through StreamDecoder so multi-byte characters arrive whole, or ids with --ids).
// It drives a one-slot Engine, so there is one decode loop in the project. Timing goes to
// stderr so stdout holds only the continuation.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace wo::cli {
namespace {

struct GenerateOptions {
    std::string model, prompt, backend = "auto";
    std::vector<int32_t> prompt_ids;
    int n_predict = 64, threads = 0;
    bool ids = false;
    SamplingParams sampling;
    OutputArgs output;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A tokenizer for ids in, ids out on a file that has none: every id decodes to no text.
class IdsOnly final : public Tokenizer {
public:
    explicit IdsOnly(int32_t n) : n_(n) {}
    std::vector<int32_t> encode(std::string_view, bool, bool) const override { return {}; }
    std::string token_bytes(int32_t) const override { return {}; }
    int32_t vocab_size() const override { return n_; }
    std::optional<int32_t> find_token(std::string_view) const override { return std::nullopt; }
    std::string_view kind() const override { return "none"; }

private:
    int32_t n_;
};

void run_generate(const GenerateOptions& o) {
    if (o.n_predict < 0) throw Error(Code::INVALID_ARGUMENT, "-n must be >= 0");
    auto file = std::make_shared<const gguf::File>(gguf::File::open(o.model));
    LoadedModel lm;
    lm.file = file;
    lm.name = o.model;
    if (!o.prompt.empty() || !o.ids) lm.tokenizer = load_tokenizer(*file);  // ids in, ids out needs none
    std::vector<int32_t> prompt = o.prompt_ids;
    if (!o.prompt.empty()) prompt = lm.tokenizer->encode(o.prompt, /*parse_special=*/true, /*add_bos=*/true);
    if (prompt.empty())
        throw Error(Code::INVALID_ARGUMENT, "the prompt is empty (give --prompt or --prompt-ids)");

    LoadOptions lo;
    lo.backend = resolve_backend(o.backend);
    lo.n_threads = o.threads;
    Progress progress("model_load_progress", {{"model", o.model}});
    uint64_t total = 0;
    for (const auto& t : file->tensors()) total += t.n_bytes;
    progress.start(total, "load");
    lo.on_weight_bytes = [&progress](uint64_t n) { progress.add(n); };
    lm.model = load_model(file, lo);
    progress.finish();
    const Hparams& hp = lm.model->hparams();
    if (!lm.tokenizer) lm.tokenizer = std::make_unique<IdsOnly>(hp.n_vocab);
    for (int32_t id : prompt)
        if (id < 0 || id >= hp.n_vocab)
            throw Error(Code::INVALID_ARGUMENT, "prompt token id " + std::to_string(id) +
                                                    " is outside the vocabulary of " + std::to_string(hp.n_vocab));
    const int n_ctx = static_cast<int>(
        std::min<int64_t>(hp.n_ctx_train, static_cast<int64_t>(prompt.size()) + o.n_predict));
    if (static_cast<int64_t>(prompt.size()) >= n_ctx && o.n_predict > 0)
        throw Error(Code::CONTEXT_OVERFLOW, "prompt of " + std::to_string(prompt.size()) +
                                                " tokens leaves no room in the model's context of " +
                                                std::to_string(hp.n_ctx_train));
    if (o.n_predict == 0) return;

    // One slot of the serving engine: the same decode loop the server runs.
    EngineOptions eo;
    eo.model_path = o.model;
    eo.backend = lo.backend;
    eo.n_ctx = std::max(n_ctx, static_cast<int>(prompt.size()));
    eo.n_parallel = 1;
    eo.max_queue = 1;
    eo.prefill_chunk = 512;
    eo.timeout_ms = 0;
    auto shared = std::make_shared<LoadedModel>(std::move(lm));
    Engine engine(eo, [shared](const EngineOptions&, Progress&) { return std::move(*shared); });
    engine.start();
    if (engine.wait_loaded() != Engine::State::Ready) throw Error(engine.load_error_code(), engine.load_error());
    GenerateRequest req;
    req.job_id = "generate";
    req.prompt = prompt;
    req.sampling = o.sampling;
    req.max_tokens = o.n_predict;
    auto job = engine.submit(std::move(req));
    const auto t0 = std::chrono::steady_clock::now();
    double t_first = 0;
    int n_gen = 0;
    for (;;) {
        auto e = job->pop(std::chrono::milliseconds(1000));
        if (!e) continue;
        if (e->kind == JobEvent::Kind::Token) {
            if (n_gen == 0) t_first = seconds_since(t0);
            n_gen += static_cast<int>(e->tokens.size());
            std::string out;
            if (o.ids)
                for (int32_t id : e->tokens) out += std::to_string(id) + "\n";
            else
                out = e->text;
            std::fwrite(out.data(), 1, out.size(), stdout);
            std::fflush(stdout);
        } else if (e->kind == JobEvent::Kind::End) {
            n_gen = e->tokens_out;
            break;
        } else if (e->kind == JobEvent::Kind::Error) {
            throw Error(e->code, e->message);
        }
    }
    if (!o.ids) std::fputc('\n', stdout);
    const double t_all = seconds_since(t0);
    log::info("generate.done", {{"prompt_tokens", prompt.size()},
                                {"first_token_s", t_first},
                                {"generated", n_gen},
                                {"decode_tok_s", n_gen > 1 ? (n_gen - 1) / std::max(t_all - t_first, 1e-9) : 0.0},
                                {"backend", lo.backend}});
}

}  // namespace

void add_generate(CLI::App& app, int& rc) {
    auto o = std::make_shared<GenerateOptions>();
    auto* sub =
        app.add_subcommand("generate", "Generate a continuation of a prompt and stream it to the terminal");
    sub->add_option("--model,-m", o->model, "GGUF model file")->required();
    auto* p =
        sub->add_option("--prompt,-p", o->prompt,
                        "Prompt text; special tokens such as <|start|> are parsed (default: none, give it "
                        "or --prompt-ids)");
    auto* pi =
        sub->add_option("--prompt-ids", o->prompt_ids, "Prompt as comma-separated token ids (default: none)")
            ->delimiter(',');
    p->excludes(pi);
    sub->add_option("-n,--n-predict", o->n_predict, "Tokens to generate (stops early at end-of-generation)");
    sub->add_option("--temperature", o->sampling.temperature, "Sampling temperature (0 = greedy)");
    sub->add_option("--top-k", o->sampling.top_k, "Keep the k most likely tokens (0 = off)");
    sub->add_option("--top-p", o->sampling.top_p, "Nucleus sampling mass (1 = off)");
    sub->add_option("--min-p", o->sampling.min_p, "Drop tokens below min_p x the top probability (0 = off)");
    sub->add_option("--repeat-penalty", o->sampling.repetition_penalty, "Repetition penalty (1 = off)");
    sub->add_option("--seed", o->sampling.seed, "Sampler seed");
    sub->add_option("--threads,-t", o->threads, "CPU threads (0 = all cores)");
    sub->add_option("--backend", o->backend, "Compute backend (auto: cuda when a GPU is present, else cpu)")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    sub->add_flag("--ids", o->ids, "Print token ids, one per line, instead of text");
    add_output_options(sub, o->output);
    sub->callback([o, &rc] {
        apply_output_options(o->output);
        run_generate(*o);
        rc = 0;
    });
}

}  // namespace wo::cli
