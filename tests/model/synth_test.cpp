// `synth`: random-weight models load and run on the CPU backend with finite, spread-out logits,
// carry the ggml-org tensor types (gpt-oss: MXFP4 experts, Q8_0 matrices, F32 the rest), and
// are reproducible from the seed.
#include "convert/synth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "gguf/gguf.h"
#include "model/model.h"
#include "util/error.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& tag) {
    return (fs::temp_directory_path() / ("wo-synth-" + std::to_string(::getpid()) + "-" + tag + ".gguf")).string();
}

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

class SynthArch : public ::testing::TestWithParam<std::string> {};

TEST_P(SynthArch, TinyRunsWithFiniteNonDegenerateLogits) {
    const std::string path = tmp(GetParam());
    convert::SynthOptions o;
    o.arch = GetParam();
    o.preset = "tiny";
    convert::synth_model(o, path);
    auto f = std::make_shared<const gguf::File>(gguf::File::open(path));
    LoadOptions lo;
    lo.n_threads = 2;
    auto m = load_model(f, lo);
    m->reserve(1, 16);
    std::vector<float> lg;
    m->forward({{1, 0, 0, false}, {2, 1, 0, false}, {3, 2, 0, true}}, lg);
    ASSERT_EQ(lg.size(), size_t(m->hparams().n_vocab));
    double sum = 0, sq = 0;
    for (float v : lg) {
        ASSERT_TRUE(std::isfinite(v));
        sum += v;
        sq += double(v) * v;
    }
    const double mean = sum / double(lg.size()), sd = std::sqrt(sq / double(lg.size()) - mean * mean);
    // A spread of a few units: sampling is neither uniform noise nor a single certain token.
    EXPECT_GT(sd, 0.5) << GetParam();
    EXPECT_LT(sd, 50.0) << GetParam();
    fs::remove(path);
}

// Load progress (LoadOptions::on_weight_bytes) names every tensor the model uses, at its size in
// the file: a synth model uses all of its tensors, so the reports add up to the file's bytes.
TEST_P(SynthArch, LoadReportsTheFileBytesOfEveryTensor) {
    const std::string path = tmp(GetParam() + "-progress");
    convert::SynthOptions o;
    o.arch = GetParam();
    o.preset = "tiny";
    convert::synth_model(o, path);
    auto f = std::make_shared<const gguf::File>(gguf::File::open(path));
    uint64_t file_bytes = 0;
    std::multiset<uint64_t> sizes;
    for (const auto& t : f->tensors()) {
        file_bytes += t.n_bytes;
        sizes.insert(t.n_bytes);
    }
    std::multiset<uint64_t> reported;
    LoadOptions lo;
    lo.n_threads = 1;
    lo.on_weight_bytes = [&](uint64_t n) { reported.insert(n); };
    auto m = load_model(f, lo);
    EXPECT_EQ(reported, sizes) << GetParam();
    uint64_t sum = 0;
    for (uint64_t n : reported) sum += n;
    EXPECT_EQ(sum, file_bytes);
    fs::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Archs, SynthArch, ::testing::Values("gpt-oss", "gpt2", "llama", "qwen2", "phi3"),
                         [](const auto& info) {
                             std::string s = info.param;
                             for (auto& c : s)
                                 if (c == '-') c = '_';
                             return s;
                         });

TEST(Synth, GptOssTypesAsTheGgmlOrgFile) {
    const std::string path = tmp("types");
    convert::SynthOptions o;
    o.arch = "gpt-oss";
    o.preset = "tiny";
    convert::synth_model(o, path);
    auto f = gguf::File::open(path);
    int mx = 0, q8 = 0, f32 = 0;
    for (const auto& t : f.tensors()) {
        const bool expert = t.name.find("_exps.weight") != std::string::npos;
        const bool matrix = t.shape.size() == 2 && t.name.find("ffn_gate_inp") == std::string::npos &&
                            t.name.find("_exps.bias") == std::string::npos;
        const GgmlType want = expert ? GgmlType::MXFP4 : matrix ? GgmlType::Q8_0 : GgmlType::F32;
        EXPECT_EQ(t.type, want) << t.name;
        mx += t.type == GgmlType::MXFP4, q8 += t.type == GgmlType::Q8_0, f32 += t.type == GgmlType::F32;
    }
    // Per layer 3 MXFP4, 4 Q8_0, 12 F32; plus token_embd/output (Q8_0) and output_norm (F32).
    EXPECT_EQ(mx, 3 * 4);
    EXPECT_EQ(q8, 4 * 4 + 2);
    EXPECT_EQ(f32, 12 * 4 + 1);
    EXPECT_EQ(f.get_int("gpt-oss.expert_count"), 8);
    fs::remove(path);
}

TEST(Synth, SeedDeterminesTheFile) {
    convert::SynthOptions o;
    o.arch = "llama";
    o.preset = "tiny";
    const std::string a = tmp("a"), b = tmp("b"), c = tmp("c");
    convert::synth_model(o, a);
    convert::synth_model(o, b);
    o.seed = 2;
    convert::synth_model(o, c);
    EXPECT_EQ(slurp(a), slurp(b));
    EXPECT_NE(slurp(a), slurp(c));
    for (const auto& p : {a, b, c}) fs::remove(p);
}

TEST(Synth, UnknownPresetNamesTheChoices) {
    convert::SynthOptions o;
    o.arch = "gpt-oss";
    o.preset = "7b";
    try {
        convert::synth_model(o, tmp("x"));
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::INVALID_ARGUMENT);
        EXPECT_NE(std::string(e.what()).find("gpt-oss/20b"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace wo
