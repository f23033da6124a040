// `--help` of every subcommand states the default of every option that takes a value and the
// allowed values where there is a fixed set; a bad value is an INVALID_ARGUMENT error like any
// other bad input. The subcommands are read from the top-level help, so a new one is covered.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace wo {
namespace {

std::string run(const std::string& args, int& rc) {
    std::string out;
    FILE* p = popen((std::string(WO_BINARY) + " " + args + " 2>&1").c_str(), "r");
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    rc = WEXITSTATUS(pclose(p));
    return out;
}

std::vector<std::string> subcommands() {
    int rc = 0;
    std::istringstream in(run("--help", rc));
    std::vector<std::string> out;
    std::string line;
    bool in_section = false;
    while (std::getline(in, line)) {
        if (line == "Subcommands:") {
            in_section = true;
        } else if (in_section) {
            std::smatch m;
            if (std::regex_match(line, m, std::regex(R"(  (\S+)\s+.*)")))
                out.push_back(m[1]);
            else if (line.empty())
                break;
        }
    }
    return out;
}

// Option name ("--port") -> its help entry (the name line plus any continuation lines).
std::map<std::string, std::string> options_of(const std::string& sub) {
    int rc = 0;
    const std::string help = run(sub + " --help", rc);
    EXPECT_EQ(rc, 0) << help;
    std::map<std::string, std::string> out;
    std::istringstream in(help);
    std::string line, current;
    bool in_options = false;
    while (std::getline(in, line)) {
        if (line == "Options:") {
            in_options = true;
            continue;
        }
        if (!in_options) continue;
        std::smatch m;
        if (std::regex_search(line, m, std::regex(R"(^  (-\S+))"))) {
            // "-m,--model" is keyed by its long name.
            std::string names = m[1], name = names.substr(names.rfind(',') + 1);
            current = name;
            out[current] = line;
        } else if (!current.empty() && line.rfind("    ", 0) == 0) {
            out[current] += " " + line;
        } else {
            current.clear();
        }
    }
    return out;
}

TEST(Help, EverySubcommandIsListed) {
    const auto subs = subcommands();
    for (const char* s : {"version", "inspect", "generate", "tokenize", "serve", "convert", "synth"})
        EXPECT_NE(std::find(subs.begin(), subs.end(), s), subs.end()) << s;
}

TEST(Help, EveryOptionThatTakesAValueNamesItsDefault) {
    for (const std::string& sub : subcommands()) {
        for (const auto& [name, entry] : options_of(sub)) {
            // A value-taking option shows its type (TEXT, INT, ...) right after its names.
            const bool takes_value =
                std::regex_search(entry, std::regex(R"(^  \S+ (TEXT|INT|UINT|FLOAT)\b)"));
            if (!takes_value || entry.find("REQUIRED") != std::string::npos) continue;
            EXPECT_TRUE(entry.find("[default: ") != std::string::npos ||
                        entry.find("(default: ") != std::string::npos)
                << sub << " " << name << ": " << entry;
        }
    }
}

// The defaults as docs/api.md and the subcommands' docs state them, read from --help.
TEST(Help, DefaultsAndAllowedValuesAreTheDocumentedOnes) {
    const std::map<std::string, std::map<std::string, std::string>> want = {
        {"serve",
         {{"--port", "[default: 8080]"},
          {"--host", "[default: 127.0.0.1]"},
          {"--backend", "TEXT:{auto,cpu,cuda}"},
          {"--ctx", "[default: 0]"},
          {"--parallel", "[default: 4]"},
          {"--threads", "[default: 0]"},
          {"--max-queue", "[default: 64]"},
          {"--inference-timeout-sec", "[default: 300]"},
          {"--prefill-chunk", "[default: 256]"},
          {"--callback-url", "(default: none)"},
          {"--log-format", "TEXT:{auto,text,json}"}}},
        {"generate",
         {{"--n-predict", "[default: 64]"},
          {"--temperature", "[default: 1]"},
          {"--top-k", "[default: 0]"},
          {"--top-p", "[default: 1]"},
          {"--min-p", "[default: 0]"},
          {"--repeat-penalty", "[default: 1]"},
          {"--seed", "[default: 0]"},
          {"--backend", "[default: auto]"}}},
        {"convert", {{"--type", "TEXT:{f32,f16,bf16,q8_0}"}, {"--log-format", "[default: auto]"}}},
        {"synth",
         {{"--preset", "[default: tiny]"},
          {"--type", "[default: q8_0]"},
          {"--seed", "[default: 1]"},
          {"--arch", "TEXT:{gpt-oss,gpt2,llama,phi3,qwen2}"}}},
    };
    for (const auto& [sub, opts] : want) {
        const auto help = options_of(sub);
        for (const auto& [name, needle] : opts) {
            ASSERT_TRUE(help.count(name)) << sub << " has no " << name;
            EXPECT_NE(help.at(name).find(needle), std::string::npos)
                << sub << " " << name << ": " << help.at(name);
        }
    }
    EXPECT_NE(options_of("convert").at("--type").find("[default: f16]"), std::string::npos);
    EXPECT_NE(options_of("serve").at("--backend").find("[default: auto]"), std::string::npos);
}

TEST(Help, AValueOutsideTheAllowedSetIsAnInvalidArgument) {
    int rc = 0;
    std::string out = run("serve --model x.gguf --backend tpu", rc);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(out.find("error: INVALID_ARGUMENT: --backend: tpu not in {auto,cpu,cuda}"), std::string::npos)
        << out;
    out = run("synth --arch gpt-oss --preset 30b --out /dev/null", rc);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(out.find("error: INVALID_ARGUMENT: --preset"), std::string::npos) << out;
    out = run("serve", rc);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(out.find("error: INVALID_ARGUMENT: --model is required"), std::string::npos) << out;
}

}  // namespace
}  // namespace wo
