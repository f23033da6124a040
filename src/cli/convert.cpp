// `worker-orcd convert HF_DIR OUT.gguf [--type f32|f16|bf16|q8_0] [--expert-type auto|mxfp4]
// [--no-tokenizer] [--name N]`: an HF checkpoint folder to one GGUF file (src/convert/convert.h;
// docs/convert.md), with a progress line (or events) while the tensors are written.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/options.h"
#include "convert/convert.h"

namespace wo::cli {
namespace {

struct ConvertArgs {
    std::string dir, out, type = "f16", experts = "auto", name;
    bool no_tokenizer = false;
    OutputArgs output;
};

}  // namespace

void add_convert(CLI::App& app, int& rc) {
    auto a = std::make_shared<ConvertArgs>();
    auto* sub = app.add_subcommand("convert", "Convert an HF checkpoint folder (config.json + safetensors) to GGUF");
    sub->add_option("hf_dir", a->dir, "Folder with config.json, *.safetensors and optionally tokenizer.json")->required();
    sub->add_option("out", a->out, "GGUF file to write")->required();
    sub->add_option("--type", a->type, "Type of the 2-D non-expert weights")
        ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}, CLI::ignore_case));
    sub->add_option("--expert-type", a->experts,
                    "gpt-oss experts held as floats: auto (MXFP4 only where lossless, else --type) or mxfp4 "
                    "(requantize, logging the error); MXFP4 blocks are always repacked")
        ->check(CLI::IsMember({"auto", "mxfp4"}, CLI::ignore_case));
    sub->add_option("--name", a->name, "general.name (default: the folder's name)");
    sub->add_flag("--no-tokenizer", a->no_tokenizer, "Do not embed tokenizer.json even when present");
    add_output_options(sub, a->output);
    sub->callback([a, &rc] {
        apply_output_options(a->output);
        convert::ConvertOptions o;
        o.type = convert::parse_matrix_type(a->type);
        o.experts = convert::parse_expert_type(a->experts);
        o.tokenizer = !a->no_tokenizer;
        o.name = a->name;
        const auto r = convert::convert_hf(a->dir, a->out, o);
        std::printf("%s: %s, %llu tensors, %llu parameters%s\n", a->out.c_str(), r.architecture.c_str(),
                    static_cast<unsigned long long>(r.n_tensors), static_cast<unsigned long long>(r.n_params),
                    r.tokenizer ? ", tokenizer embedded" : "");
        rc = 0;
    });
}

}  // namespace wo::cli
