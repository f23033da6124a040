// How every subcommand presents and reads its options:
// - help that states each option's default and allowed values (install_help_format before any
//   subcommand is added: subcommands copy the app's option defaults and formatter);
// - --log-format and --quiet for the subcommands that log or show progress.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace wo::cli {

void install_help_format(CLI::App& app);

struct OutputArgs {
    std::string log_format = "auto";  // auto: text when stderr is a terminal, JSON otherwise
    bool quiet = false;               // no progress line or progress events
};

void add_output_options(CLI::App* sub, OutputArgs& a);
// Sets the log format and progress mode for the rest of the process; returns true for JSON logs.
bool apply_output_options(const OutputArgs& a);

}  // namespace wo::cli
