// Whole-model behaviour on tiny random GGUFs of each architecture: prefill equals token-by-token
// decode, batched decode of several slots equals each slot alone, and load/forward errors name
// what is wrong. (Numerical agreement with transformers is fixtures_test.cpp.)
#include <gtest/gtest.h>

// Designated initializers of TinyOpts leave most fields at their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <cmath>
#include <limits>

#include "model/model.h"
#include "model/tiny_models.h"
#include "util/error.h"

namespace wo {
namespace {

using test::TinyOpts;

std::vector<float> run(Model& m, const std::vector<BatchToken>& batch) {
    std::vector<float> out;
    m.forward(batch, out);
    return out;
}

double max_rel(const float* a, const float* b, size_t n) {
    double scale = 0, diff = 0;
    for (size_t i = 0; i < n; ++i) {
        scale = std::max(scale, std::abs(static_cast<double>(b[i])));
        diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    }
    return diff / std::max(scale, 1e-30);
}

const std::vector<int32_t> kPrompt{5, 17, 3, 60, 42, 8, 8, 1, 33, 21, 9};

class ArchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchTest, PrefillMatchesTokenByTokenDecode) {
    auto t = test::load_tiny({.arch = GetParam()});
    Model& m = *t.model;
    const int V = m.hparams().n_vocab;
    m.reserve(2, 32);
    std::vector<BatchToken> prefill;
    for (size_t i = 0; i < kPrompt.size(); ++i)
        prefill.push_back({kPrompt[i], static_cast<int32_t>(i), 0, true});
    const auto all = run(m, prefill);
    ASSERT_EQ(all.size(), kPrompt.size() * V);
    for (size_t i = 0; i < kPrompt.size(); ++i) {
        const auto one = run(m, {{kPrompt[i], static_cast<int32_t>(i), 1, true}});
        EXPECT_LT(max_rel(one.data(), all.data() + i * V, V), 1e-5) << GetParam() << " position " << i;
    }
    // Logits are not constant: the comparison above is not vacuous.
    EXPECT_NE(all[0], all[1]);
}

TEST_P(ArchTest, BatchedDecodeOfThreeSlotsMatchesEachAlone) {
    const std::vector<std::vector<int32_t>> prompts{{1, 2, 3}, {40, 41, 42, 43, 44, 45}, {7}};
    const std::vector<std::vector<int32_t>> next{{9, 10, 11, 12}, {50, 51, 52, 53}, {13, 14, 15, 16}};
    auto together = test::load_tiny({.arch = GetParam()});
    auto alone = test::load_tiny({.arch = GetParam()});
    together.model->reserve(3, 32);
    alone.model->reserve(3, 32);
    const int V = together.model->hparams().n_vocab;
    for (int s = 0; s < 3; ++s) {
        std::vector<BatchToken> b;
        for (size_t i = 0; i < prompts[s].size(); ++i)
            b.push_back({prompts[s][i], static_cast<int32_t>(i), s, i + 1 == prompts[s].size()});
        run(*together.model, b);
        run(*alone.model, b);
    }
    for (size_t step = 0; step < next[0].size(); ++step) {
        std::vector<BatchToken> b;
        for (int s = 0; s < 3; ++s)
            b.push_back({next[s][step], static_cast<int32_t>(prompts[s].size() + step), s, true});
        const auto got = run(*together.model, b);
        ASSERT_EQ(got.size(), 3u * V);
        for (int s = 0; s < 3; ++s) {
            const auto want = run(*alone.model, {b[static_cast<size_t>(s)]});
            EXPECT_LT(max_rel(got.data() + s * V, want.data(), V), 1e-6)
                << GetParam() << " slot " << s << " step " << step;
        }
    }
}

TEST_P(ArchTest, ClearedSlotStartsOver) {
    auto t = test::load_tiny({.arch = GetParam()});
    Model& m = *t.model;
    m.reserve(1, 16);
    const auto first = run(m, {{4, 0, 0, false}, {5, 1, 0, true}});
    m.clear_slot(0);
    run(m, {{30, 0, 0, false}, {31, 1, 0, false}, {32, 2, 0, true}});
    m.clear_slot(0);
    const auto again = run(m, {{4, 0, 0, false}, {5, 1, 0, true}});
    EXPECT_EQ(first, again);
}

INSTANTIATE_TEST_SUITE_P(Archs, ArchTest, ::testing::Values("gpt-oss", "llama", "qwen2", "phi3", "gpt2"),
                         [](const auto& info) {
                             std::string s = info.param;
                             for (auto& c : s)
                                 if (c == '-') c = '_';
                             return s;
                         });

TEST(ModelLoad, TiedEmbeddingsWhenOutputIsAbsent) {
    auto t = test::load_tiny({.arch = "llama", .tied = true});
    t.model->reserve(1, 8);
    EXPECT_EQ(run(*t.model, {{3, 0, 0, true}}).size(), 64u);
}

TEST(ModelLoad, ReportsHparamsAndSizes) {
    auto t = test::load_tiny({.arch = "gpt-oss"});
    const Hparams& hp = t.model->hparams();
    EXPECT_EQ(hp.arch, "gpt-oss");
    EXPECT_EQ(hp.n_vocab, 64);
    EXPECT_EQ(hp.n_layer, 2);
    EXPECT_EQ(hp.n_head, 4);
    EXPECT_EQ(hp.n_head_kv, 2);
    EXPECT_EQ(hp.head_dim, 16);
    EXPECT_EQ(hp.n_expert, 4);
    EXPECT_EQ(hp.n_expert_used, 2);
    EXPECT_EQ(t.model->backend_name(), "cpu");
    EXPECT_EQ(t.model->quant_kind(), "MXFP4");  // the expert tensors hold most bytes
    EXPECT_GT(t.model->weight_bytes(), 0u);
    EXPECT_LT(t.model->weight_bytes(), t.bytes.size());
    t.model->reserve(2, 10);
    EXPECT_EQ(t.model->kv_bytes(), 2u /*layers*/ * 2 /*k,v*/ * 2 /*slots*/ * 10 * 32 * sizeof(float));
}

void expect_load_error(const TinyOpts& o, Code code, const std::string& needle) {
    try {
        test::load_tiny(o);
        ADD_FAILURE() << "no error; expected " << code_name(code);
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), code) << e.what();
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

// A llama tiny model with `key` set to `v` must fail to load with MODEL_LOAD_FAILED naming `needle`.
void expect_metadata_error(const std::string& key, gguf::Value v, const std::string& needle) {
    const auto bytes = test::with_metadata(test::tiny_gguf({.arch = "llama"}), key, std::move(v));
    auto file = std::make_shared<const gguf::File>(gguf::File::parse(bytes.data(), bytes.size()));
    try {
        load_model(file, {});
        ADD_FAILURE() << "no error for " << key;
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::MODEL_LOAD_FAILED) << e.what();
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(ModelLoad, MissingKeyNamesIt) {
    expect_load_error({.arch = "gpt-oss", .drop = {"gpt-oss.block_count"}}, Code::MODEL_LOAD_FAILED,
                      "gpt-oss.block_count");
    expect_load_error({.arch = "llama", .drop = {"llama.attention.layer_norm_rms_epsilon"}},
                      Code::MODEL_LOAD_FAILED, "llama.attention.layer_norm_rms_epsilon");
    expect_load_error({.arch = "gpt-oss", .drop = {"gpt-oss.expert_count"}}, Code::MODEL_LOAD_FAILED,
                      "gpt-oss.expert_count");
}

TEST(ModelLoad, MissingTensorNamesIt) {
    expect_load_error({.arch = "gpt-oss", .drop = {"blk.1.attn_sinks.weight"}}, Code::MODEL_LOAD_FAILED,
                      "blk.1.attn_sinks.weight");
    expect_load_error({.arch = "gpt2", .drop = {"position_embd.weight"}}, Code::MODEL_LOAD_FAILED,
                      "position_embd.weight");
}

TEST(ModelLoad, BadShapeNamesTensorAndShapes) {
    expect_load_error({.arch = "gpt-oss", .reshape = {{"blk.0.attn_q.weight", {64, 32}}}},
                      Code::MODEL_LOAD_FAILED, "blk.0.attn_q.weight: shape (64,32), expected (64,64)");
    expect_load_error({.arch = "gpt-oss", .reshape = {{"blk.1.ffn_down_exps.weight", {64, 64, 3}}}},
                      Code::MODEL_LOAD_FAILED, "blk.1.ffn_down_exps.weight");
}

TEST(ModelLoad, InconsistentMetadataNamesTheKey) {
    // 4 query heads cannot be grouped over 3 kv heads
    expect_metadata_error("llama.attention.head_count_kv", gguf::Value::u32(3), "head_count_kv");
    expect_metadata_error("llama.rope.dimension_count", gguf::Value::u32(17), "rope.dimension_count");
    expect_metadata_error("llama.attention.layer_norm_rms_epsilon", gguf::Value::f32(0.0f),
                          "layer_norm_rms_epsilon");
    expect_metadata_error("llama.rope.scaling.type", gguf::Value::str("longrope"), "longrope");
    expect_metadata_error("llama.attention.key_length", gguf::Value::u32(32), "attention.key_length");
    // A non-positive or non-finite RoPE base turns every position into NaN or a constant.
    expect_metadata_error("llama.rope.freq_base", gguf::Value::f32(-10000.0f), "llama.rope.freq_base");
    expect_metadata_error("llama.rope.freq_base", gguf::Value::f32(0.0f), "llama.rope.freq_base");
    expect_metadata_error("llama.rope.freq_base", gguf::Value::f32(std::numeric_limits<float>::infinity()),
                          "llama.rope.freq_base");
    expect_metadata_error("llama.attention.layer_norm_rms_epsilon", gguf::Value::f32(std::numeric_limits<float>::quiet_NaN()),
                          "layer_norm_rms_epsilon");
}

TEST(ModelLoad, GptOssRopeBaseMustBePositive) {
    const auto bytes = test::with_metadata(test::tiny_gguf({.arch = "gpt-oss"}), "gpt-oss.rope.freq_base",
                                           gguf::Value::f32(-1.0f));
    auto file = std::make_shared<const gguf::File>(gguf::File::parse(bytes.data(), bytes.size()));
    try {
        load_model(file, {});
        ADD_FAILURE() << "negative rope.freq_base accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::MODEL_LOAD_FAILED) << e.what();
        EXPECT_NE(std::string(e.what()).find("gpt-oss.rope.freq_base"), std::string::npos) << e.what();
    }
}

TEST(ModelLoad, AbsurdBlockCountIsAnErrorNotAnAllocation) {
    expect_metadata_error("llama.block_count", gguf::Value::u32(1u << 29), "block_count");
}

TEST(ModelLoad, UnknownArchitectureNamesIt) {
    expect_load_error({.arch = "llama", .arch_override = "mamba"}, Code::ARCH_UNSUPPORTED, "mamba");
}

TEST(ModelLoad, UnsupportedTensorTypeNamesTensorAndType) {
    expect_load_error({.arch = "llama", .retype = {{"blk.0.ffn_up.weight", GgmlType::Q4_1}}},
                      Code::DTYPE_UNSUPPORTED, "blk.0.ffn_up.weight has type Q4_1");
}

TEST(ModelLoad, EveryWeightTypeLoadsAndRuns) {
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q5_0}) {
        auto m = test::load_tiny({.arch = "qwen2", .matrix_type = t});
        m.model->reserve(1, 4);
        const auto lg = run(*m.model, {{1, 0, 0, false}, {2, 1, 0, true}});
        ASSERT_EQ(lg.size(), 64u) << type_name(t);
        EXPECT_TRUE(std::isfinite(lg[0])) << type_name(t);
    }
}

TEST(ModelForward, PositionErrors) {
    auto t = test::load_tiny({.arch = "llama"});
    Model& m = *t.model;
    std::vector<float> out;
    EXPECT_THROW(m.forward({{1, 0, 0, true}}, out), Error) << "before reserve";
    m.reserve(2, 4);
    auto code_of = [&](const std::vector<BatchToken>& b) {
        try {
            m.forward(b, out);
        } catch (const Error& e) {
            return e.code();
        }
        return Code::INTERNAL;
    };
    EXPECT_EQ(
        code_of({{1, 0, 0, false}, {1, 1, 0, false}, {1, 2, 0, false}, {1, 3, 0, false}, {1, 4, 0, true}}),
        Code::CONTEXT_OVERFLOW);
    EXPECT_EQ(code_of({{1, 2, 1, true}}), Code::INVALID_REQUEST) << "gap: slot 1 has nothing cached";
    EXPECT_EQ(code_of({{64, 0, 0, true}}), Code::INVALID_REQUEST) << "token outside the vocabulary";
    EXPECT_EQ(code_of({{1, 0, 2, true}}), Code::INVALID_REQUEST) << "slot out of range";
    EXPECT_EQ(code_of({{1, 0, 1, false}, {1, 0, 1, true}}), Code::INVALID_REQUEST)
        << "repeated position in a step";
    EXPECT_EQ(code_of({{1, 0, 1, false}, {2, 0, 0, false}, {1, 2, 1, true}}), Code::INVALID_REQUEST)
        << "skipped position in a step";
    EXPECT_TRUE(out.empty());
}

TEST(ModelForward, Gpt2ContextIsLimitedByPositionRows) {
    auto t = test::load_tiny({.arch = "gpt2"});
    t.model->reserve(1, 1000);  // position_embd has 32 rows
    std::vector<float> out;
    std::vector<BatchToken> b;
    for (int i = 0; i < 33; ++i) b.push_back({1, i, 0, false});
    try {
        t.model->forward(b, out);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::CONTEXT_OVERFLOW) << e.what();
    }
}

}  // namespace
}  // namespace wo
