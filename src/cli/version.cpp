// `worker-orcd version`: build facts (is the CUDA backend compiled in).
#include <cstdio>

#include "cli/commands.h"

namespace wo::cli {

void add_version(CLI::App& app, int& rc) {
    auto* sub = app.add_subcommand("version", "Print version and build options");
    sub->callback([&rc] {
#ifdef WO_HAVE_CUDA
        std::printf("worker-orcd 0.1.0 (cuda: yes)\n");
#else
        std::printf("worker-orcd 0.1.0 (cuda: no)\n");
#endif
        rc = 0;
    });
}

}  // namespace wo::cli
