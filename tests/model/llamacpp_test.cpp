// The forward pass of every architecture against llama.cpp (node-llama-cpp's prebuilt CPU
// library) on tiny synthetic F32 GGUFs: an independent engine reading the same file
// (TEST-DATA.md §3). tests/golden/llamacpp-logits.mjs prints llama.cpp's logits after each
// prompt token; ours must match them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/tiny_models.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wo {
namespace {

const std::vector<int32_t> kPrompt{72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 200, 7};

std::string run_cmd(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[65536];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    EXPECT_EQ(pclose(p), 0) << cmd;
    return out;
}

// Worst |ours - llama.cpp| over the row, relative to the row's largest |logit|.
double row_err(const float* ours, const nlohmann::json& ref) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double r = ref[i].get<double>();
        diff = std::max(diff, std::abs(ours[i] - r));
        scale = std::max(scale, std::abs(r));
    }
    return diff / scale;
}

class LlamaCpp : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCpp, PrefillLogitsMatch) {
    const std::string node_modules = std::string(WO_GOLDEN) + "/node_modules";
    ASSERT_TRUE(std::filesystem::exists(node_modules + "/node-llama-cpp"))
        << "llama.cpp reference missing: run scripts/goldens " << WO_GOLDEN;
    // gpt-oss without YaRN: llama.cpp rounds the YaRN ramp bounds, the reference code does not
    // (MODELS.md §1), so YaRN is checked by hand in ops_test and against transformers instead.
    test::TinyOpts o{.arch = GetParam(),
                     .matrix_type = GgmlType::F32,
                     .expert_type = GgmlType::F32,
                     .vocab = true,
                     .rope_scaling = "none"};
    auto t = test::load_tiny(o);
    const auto path = std::filesystem::temp_directory_path() /
                      ("wo-llamacpp-" + GetParam() + "-" + std::to_string(::getpid()) + ".gguf");
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
    std::string ids;
    for (int32_t id : kPrompt) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    const int V = t.model->hparams().n_vocab;
    const std::string out =
        run_cmd("NODE_PATH=" + node_modules + " node " + WO_SOURCE_DIR +
                "/tests/golden/llamacpp-logits.mjs " + path.string() + " " + ids + " " + std::to_string(V));
    std::filesystem::remove(path);
    const auto ref = nlohmann::json::parse(out)["logits"];
    ASSERT_EQ(ref.size(), kPrompt.size());

    t.model->reserve(1, 64);
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < kPrompt.size(); ++i)
        batch.push_back({kPrompt[i], static_cast<int32_t>(i), 0, true});
    std::vector<float> ours;
    t.model->forward(batch, ours);
    ASSERT_EQ(ours.size(), kPrompt.size() * V);
    for (size_t i = 0; i < kPrompt.size(); ++i) {
        // Both sides compute in f32 with different summation orders (~1e-6 seen). ggml's CPU
        // GELU goes through an F16 lookup table (GGML_GELU_FP16): ~3e-4 seen for gpt2.
        const double tol = GetParam() == "gpt2" ? 1e-3 : 1e-5;
        EXPECT_LT(row_err(ours.data() + i * V, ref[i]), tol) << GetParam() << " position " << i;
        // The same greedy choice.
        int32_t best = 0;
        for (int v = 1; v < V; ++v)
            if (ref[i][v].get<double>() > ref[i][best].get<double>()) best = v;
        const float* row = ours.data() + i * V;
        EXPECT_EQ(std::max_element(row, row + V) - row, best) << GetParam() << " position " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Archs, LlamaCpp, ::testing::Values("gpt-oss", "llama", "qwen2", "phi3", "gpt2"),
                         [](const auto& info) {
                             std::string s = info.param;
                             for (auto& c : s)
                                 if (c == '-') c = '_';
                             return s;
                         });

}  // namespace
}  // namespace wo
