// `worker-orcd generate --model M.gguf (--prompt TEXT | --prompt-ids 1,2,3) [-n N] [sampling]
// [--threads N] [--ids]`: loads a model, prefills the prompt and streams sampled tokens to the
// terminal (text through StreamDecoder so multi-byte characters arrive whole, or ids with --ids).
// Timing goes to stderr so stdout holds only the continuation.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "engine/sampler.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace wo::cli {
namespace {

struct GenerateOptions {
    std::string model, prompt, backend = "cpu";
    std::vector<int32_t> prompt_ids;
    int n_predict = 64, threads = 0;
    bool ids = false;
    SamplingParams sampling;
    OutputArgs output;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_generate(const GenerateOptions& o) {
    if (o.n_predict < 0) throw Error(Code::INVALID_ARGUMENT, "-n must be >= 0");
    auto file = std::make_shared<const gguf::File>(gguf::File::open(o.model));
    std::unique_ptr<Tokenizer> tok;
    if (!o.prompt.empty() || !o.ids) tok = load_tokenizer(*file);  // ids in, ids out needs none
    std::vector<int32_t> prompt = o.prompt_ids;
    if (!o.prompt.empty()) prompt = tok->encode(o.prompt, /*parse_special=*/true, /*add_bos=*/true);
    if (prompt.empty())
        throw Error(Code::INVALID_ARGUMENT, "the prompt is empty (give --prompt or --prompt-ids)");

    LoadOptions lo;
    lo.backend = o.backend;
    lo.n_threads = o.threads;
    Progress progress("model_load_progress", {{"model", o.model}});
    uint64_t total = 0;
    for (const auto& t : file->tensors()) total += t.n_bytes;
    progress.start(total, "load");
    lo.on_weight_bytes = [&progress](uint64_t n) { progress.add(n); };
    auto model = load_model(file, lo);
    progress.finish();
    const Hparams& hp = model->hparams();
    for (int32_t id : prompt)
        if (id < 0 || id >= hp.n_vocab)
            throw Error(Code::INVALID_ARGUMENT, "prompt token id " + std::to_string(id) +
                                                    " is outside the vocabulary of " +
                                                    std::to_string(hp.n_vocab));
    const int n_ctx = static_cast<int>(
        std::min<int64_t>(hp.n_ctx_train, static_cast<int64_t>(prompt.size()) + o.n_predict));
    if (static_cast<int64_t>(prompt.size()) >= n_ctx && o.n_predict > 0)
        throw Error(Code::CONTEXT_OVERFLOW, "prompt of " + std::to_string(prompt.size()) +
                                                " tokens leaves no room in the model's context of " +
                                                std::to_string(hp.n_ctx_train));
    model->reserve(1, std::max(n_ctx, static_cast<int>(prompt.size())));

    Sampler sampler(o.sampling);
    std::vector<int32_t> context = prompt;
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < prompt.size(); ++i)
        batch.push_back({prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size()});
    std::vector<float> logits;
    auto t0 = std::chrono::steady_clock::now();
    model->forward(batch, logits);
    const double t_prefill = seconds_since(t0);

    std::unique_ptr<StreamDecoder> dec;
    if (!o.ids) dec = std::make_unique<StreamDecoder>(*tok);
    int n_gen = 0;
    t0 = std::chrono::steady_clock::now();
    for (; n_gen < o.n_predict; ++n_gen) {
        const int32_t id = sampler.sample(logits, context);
        context.push_back(id);
        const std::string out = o.ids ? std::to_string(id) + "\n" : dec->push(id);
        std::fwrite(out.data(), 1, out.size(), stdout);
        std::fflush(stdout);
        if (tok && tok->is_eog(id)) {
            ++n_gen;
            break;
        }
        if (n_gen + 1 == o.n_predict || static_cast<int>(context.size()) >= n_ctx) {
            ++n_gen;
            break;
        }
        logits.clear();
        model->forward({{id, static_cast<int32_t>(context.size() - 1), 0, true}}, logits);
    }
    if (dec) {
        const std::string rest = dec->flush();
        std::fwrite(rest.data(), 1, rest.size(), stdout);
        std::fputc('\n', stdout);
    }
    const double t_decode = seconds_since(t0);
    log::info("generate.done", {{"prompt_tokens", prompt.size()},
                                {"prefill_tok_s", prompt.size() / std::max(t_prefill, 1e-9)},
                                {"generated", n_gen},
                                {"decode_tok_s", n_gen > 1 ? (n_gen - 1) / std::max(t_decode, 1e-9) : 0.0},
                                {"backend", model->backend_name()}});
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
    sub->add_option("--backend", o->backend, "Compute backend")->check(CLI::IsMember({"cpu", "cuda"}));
    sub->add_flag("--ids", o->ids, "Print token ids, one per line, instead of text");
    add_output_options(sub, o->output);
    sub->callback([o, &rc] {
        apply_output_options(o->output);
        run_generate(*o);
        rc = 0;
    });
}

}  // namespace wo::cli
