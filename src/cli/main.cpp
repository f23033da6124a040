// worker-orcd: one binary, one subcommand per tool (serve, generate, inspect, convert, ...).
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "cli/options.h"
#include "util/error.h"
#ifdef WO_HAVE_CUDA
#include "backend/cuda/register.h"
#endif

int main(int argc, char** argv) {
#ifdef WO_HAVE_CUDA
    wo::cuda::register_backend();  // "--backend cuda"
#endif
    CLI::App app{"worker-orcd: a GGUF inference worker (CPU reference and CUDA backends)"};
    app.require_subcommand(1);
    wo::cli::install_help_format(app);
    int rc = 0;
    wo::cli::add_version(app, rc);
    wo::cli::add_inspect(app, rc);
    wo::cli::add_generate(app, rc);
    wo::cli::add_tokenize(app, rc);
    wo::cli::add_serve(app, rc);
    wo::cli::add_convert(app, rc);
    wo::cli::add_synth(app, rc);
    wo::cli::add_bench(app, rc);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help
        // A bad command line is bad input like any other: the same `error: CODE: message` form.
        std::fprintf(stderr, "error: INVALID_ARGUMENT: %s (see --help)\n", e.what());
        return 1;
    } catch (const wo::Error& e) {
        std::fprintf(stderr, "error: %s: %s\n", std::string(wo::code_name(e.code())).c_str(), e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: INTERNAL: %s\n", e.what());
        return 1;
    }
    return rc;
}
