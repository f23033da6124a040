// `worker-orcd synth --arch A --preset P --out F.gguf [--seed S] [--tokenizer tokenizer.json]
// [--type q8_0|f16|bf16|f32] [--layers N]`: a random-weight model of a real (or tiny) shape
// (src/convert/synth.h). The text it generates is noise; shapes, types and sizes are real.
#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "cli/commands.h"
#include "cli/options.h"
#include "convert/convert.h"
#include "convert/synth.h"
#include "util/progress.h"

namespace wo::cli {
namespace {

struct SynthArgs {
    std::string arch, preset = "tiny", out, tokenizer, type = "q8_0";
    uint64_t seed = 1;
    int layers = 0;
    OutputArgs output;
};

}  // namespace

void add_synth(CLI::App& app, int& rc) {
    auto a = std::make_shared<SynthArgs>();
    std::string presets;
    std::set<std::string> archs, sizes;
    for (const auto& p : convert::synth_presets()) {
        presets += (presets.empty() ? "" : ", ") + p;
        archs.insert(p.substr(0, p.find('/')));
        sizes.insert(p.substr(p.find('/') + 1));
    }
    auto* sub = app.add_subcommand("synth", "Write a random-weight GGUF model of a real or tiny shape (benchmarks, demos)");
    sub->add_option("--arch", a->arch, "Architecture")->required()->check(CLI::IsMember(archs));
    sub->add_option("--preset", a->preset, "Shape; arch/preset pairs: " + presets)
        ->check(CLI::IsMember(sizes));
    sub->add_option("--out", a->out, "GGUF file to write")->required();
    sub->add_option("--seed", a->seed, "Random seed");
    sub->add_option(
        "--tokenizer", a->tokenizer,
        "tokenizer.json to embed, which sets the vocabulary size (default: none, the preset's vocabulary)");
    sub->add_option("--type", a->type, "Type of the 2-D non-expert weights (gpt-oss experts stay MXFP4)")
        ->check(CLI::IsMember({"q8_0", "f16", "bf16", "f32"}, CLI::ignore_case));
    add_output_options(sub, a->output);
    sub->add_option("--layers", a->layers, "Number of blocks (0 = the preset's); other shapes stay the preset's");
    sub->callback([a, &rc] {
        apply_output_options(a->output);
        convert::SynthOptions o;
        o.arch = a->arch;
        o.preset = a->preset;
        o.seed = a->seed;
        o.tokenizer = a->tokenizer;
        o.type = convert::parse_matrix_type(a->type);
        o.n_layers = a->layers;
        const auto r = convert::synth_model(o, a->out);
        std::printf("%s: %s %s, %llu parameters, %s of weights, vocab %d\n", a->out.c_str(), a->arch.c_str(),
                    a->preset.c_str(), static_cast<unsigned long long>(r.n_params),
                    human_bytes(r.n_bytes).c_str(), r.n_vocab);
        rc = 0;
    });
}

}  // namespace wo::cli
