// gpt-oss with experts that are not MXFP4 runs on the CPU backend: the bf16 fine-tune fixture
// (tests/fixtures/gpt-oss-bf16-tiny) converted with every --type, and with --expert-type mxfp4.
// transformers' logits for --type bf16/f32/f16 are checked in fixtures_test.cpp; here the
// reference is the same checkpoint converted at --type f32 (every weight, experts included,
// exactly the stored bf16 values).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "convert/convert.h"
#include "gguf/gguf.h"
#include "model/model.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

// Logits of every position of one prompt.
std::vector<float> run_prompt(const std::string& path, const std::vector<int32_t>& ids, GgmlType* expert_type) {
    auto file = std::make_shared<const gguf::File>(gguf::File::open(path));
    *expert_type = file->tensor("blk.0.ffn_gate_exps.weight").type;
    LoadOptions lo;
    lo.n_threads = 2;
    auto model = load_model(file, lo);
    model->reserve(1, 64);
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < ids.size(); ++i) batch.push_back({ids[i], int32_t(i), 0, true});
    std::vector<float> lg;
    model->forward(batch, lg);
    return lg;
}

// Largest relative L2 distance over the rows of V logits.
double worst_rel_l2(const std::vector<float>& a, const std::vector<float>& b, int V) {
    double worst = 0;
    for (size_t r = 0; r * V < b.size(); ++r) {
        double num = 0, den = 0;
        for (int v = 0; v < V; ++v) {
            const double x = a[r * V + v], y = b[r * V + v];
            num += (x - y) * (x - y);
            den += y * y;
        }
        worst = std::max(worst, std::sqrt(num / den));
    }
    return worst;
}

TEST(FloatExpertsModel, EveryExpertTypeLoadsAndRuns) {
    const std::string src = std::string(WO_FIXTURES) + "/gpt-oss-bf16-tiny";
    const std::vector<int32_t> ids = {92, 145, 483, 154, 223, 489, 50, 490, 7, 311, 64, 1};
    const int V = 512;
    auto convert = [&](const std::string& type, convert::ExpertType experts) {
        const std::string tag = type + (experts == convert::ExpertType::Mxfp4 ? "-mxfp4" : "");
        const std::string out =
            (fs::temp_directory_path() / ("wo-fexp-model-" + std::to_string(::getpid()) + "-" + tag + ".gguf")).string();
        convert::ConvertOptions o;
        o.type = convert::parse_matrix_type(type);
        o.experts = experts;
        convert::convert_hf(src, out, o);
        return out;
    };
    struct Case {
        std::string type;
        convert::ExpertType experts;
        GgmlType want;
    };
    const Case cases[] = {{"f32", convert::ExpertType::Auto, GgmlType::F32},
                          {"bf16", convert::ExpertType::Auto, GgmlType::BF16},
                          {"f16", convert::ExpertType::Auto, GgmlType::F16},
                          {"q8_0", convert::ExpertType::Auto, GgmlType::Q8_0},
                          {"f32", convert::ExpertType::Mxfp4, GgmlType::MXFP4}};
    std::vector<std::vector<float>> logits;
    for (const Case& c : cases) {
        const std::string path = convert(c.type, c.experts);
        GgmlType got{};
        logits.push_back(run_prompt(path, ids, &got));
        fs::remove(path);
        EXPECT_EQ(got, c.want) << c.type;
        ASSERT_EQ(logits.back().size(), ids.size() * V) << c.type;
        for (float x : logits.back()) ASSERT_TRUE(std::isfinite(x)) << c.type;
    }
    const auto& ref = logits[0];
    // BF16 holds exactly the stored values and the CPU backend widens it exactly to f32, so it
    // equals the f32 conversion. F16 holds them exactly too (bf16's 8 significant bits fit in
    // f16's 11) except below f16's normal range (|w| < 6.1e-5), where the step is 6e-8: far below
    // what moves logits by 1e-6.
    EXPECT_LE(worst_rel_l2(logits[1], ref, V), 1e-6);
    EXPECT_LE(worst_rel_l2(logits[2], ref, V), 1e-6);
    // Q8_0 rounds every weight matrix (relative step about 2^-8); on this model that flips
    // top-4 router choices, which moves a logits row by O(1) (measured: worst row 0.44), so no
    // smooth bound exists and only "it loads and runs" is asserted for it (the MoE op itself is
    // checked per type in matmul_test.cpp).
    const double q8 = worst_rel_l2(logits[3], ref, V), mx = worst_rel_l2(logits[4], ref, V);
    // Requantizing the experts to MXFP4 (relative RMS error about 0.12 per weight) changes the
    // model's output (measured: worst row 0.47): the silent change issue 14 is about.
    EXPECT_GT(mx, 0.05);
    std::printf("[ experts  ] worst relative L2 vs f32: bf16 %.3g, f16 %.3g, q8_0 %.3g, mxfp4 (requantized) %.3g\n",
                worst_rel_l2(logits[1], ref, V), worst_rel_l2(logits[2], ref, V), q8, mx);
}

}  // namespace
}  // namespace wo
