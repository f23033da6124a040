// Help format and the shared output options (see options.h).
#include "cli/options.h"

#include <unistd.h>

#include <sstream>

#include "util/log.h"
#include "util/progress.h"

namespace wo::cli {
namespace {

// CLI11's own format shows a default as "--port INT=8080", which reads like part of the syntax.
// This one keeps the type and allowed values beside the name ("--backend TEXT:{cpu,cuda}") and
// ends the description with "[default: cpu]".
class HelpFormatter : public CLI::Formatter {
public:
    std::string make_option_opts(const CLI::Option* opt) const override {
        std::stringstream out;
        if (opt->get_type_size() != 0) {
            if (!opt->get_type_name().empty()) out << " " << get_label(opt->get_type_name());
            if (opt->get_expected_max() == CLI::detail::expected_max_vector_size) out << " ...";
            if (opt->get_required()) out << " " << get_label("REQUIRED");
        }
        for (const CLI::Option* o : opt->get_excludes()) out << " (not with " << o->get_name() << ")";
        return out.str();
    }
    std::string make_option_desc(const CLI::Option* opt) const override {
        std::string d = opt->get_description();
        const std::string def = opt->get_default_str();
        // Flags and empty lists have no value to show; their descriptions say what off means.
        if (opt->get_type_size() != 0 && !def.empty() && def != "[]") d += " [default: " + def + "]";
        return d;
    }
};

}  // namespace

void install_help_format(CLI::App& app) {
    app.option_defaults()->always_capture_default();
    auto f = std::make_shared<HelpFormatter>();
    f->column_width(34);
    app.formatter(f);
}

void add_output_options(CLI::App* sub, OutputArgs& a) {
    sub->add_option("--log-format", a.log_format,
                    "Logs on stderr: text, json, or auto (text on a terminal, JSON otherwise)")
        ->check(CLI::IsMember({"auto", "text", "json"}));
    sub->add_flag("--quiet,-q", a.quiet, "No progress line or progress events (logs stay)");
}

bool apply_output_options(const OutputArgs& a) {
    const bool json = a.log_format == "json" || (a.log_format == "auto" && !isatty(STDERR_FILENO));
    log::set_json(json);
    Progress::set_quiet(a.quiet);
    return json;
}

}  // namespace wo::cli
