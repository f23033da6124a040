// Subcommands of the worker-orcd binary. Each add_* registers one on `app`; when it is the
// one parsed, its callback runs and stores the process exit status in `rc`.
// Errors propagate as wo::Error and main() prints `error: CODE: message` and exits 1.
#pragma once
#include <CLI/CLI.hpp>

namespace wo::cli {

void add_version(CLI::App& app, int& rc);
void add_inspect(CLI::App& app, int& rc);
void add_generate(CLI::App& app, int& rc);
void add_tokenize(CLI::App& app, int& rc);
void add_serve(CLI::App& app, int& rc);
void add_convert(CLI::App& app, int& rc);
void add_synth(CLI::App& app, int& rc);
void add_bench(CLI::App& app, int& rc);

}  // namespace wo::cli
