// convert_hf on the gpt-oss fixture: metadata keys as llama.cpp writes them, and every expert
// weight and bias checked against the HF checkpoint decoded here by hand (OCP E2M1 values, HF
// pairwise nibble order, E8M0 scale 2^(e-127)), so the MXFP4 repack and the gate/up split are
// verified independently of the quant library's own tests.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "convert/convert.h"
#include "convert/safetensors.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

const float kE2M1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

// Element k of row `row` of an HF MXFP4 tensor pair, decoded from the spec.
float hf_mxfp4(const convert::StTensor& blocks, const convert::StTensor& scales, int64_t row, int64_t k) {
    const int64_t nb = blocks.shape[blocks.shape.size() - 2];
    const int64_t b = k / 32, i = k % 32;
    const uint8_t byte = blocks.data[(row * nb + b) * 16 + i / 2];
    const int code = i % 2 == 0 ? (byte & 0xF) : (byte >> 4);
    return std::ldexp(kE2M1[code], int(scales.data[row * nb + b]) - 127);
}

class GptOssConvert : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = (fs::path(WO_FIXTURES) / "gpt-oss-tiny").string();
        path_ = (fs::temp_directory_path() / ("wo-conv-gptoss-" + std::to_string(::getpid()) + ".gguf")).string();
        convert::ConvertOptions o;
        o.type = GgmlType::F32;
        convert::convert_hf(dir_, path_, o);
        file_ = new gguf::File(gguf::File::open(path_));
        ck_ = convert::Checkpoint::open(dir_).release();
    }
    static void TearDownTestSuite() {
        delete file_;
        delete ck_;
        fs::remove(path_);
    }
    std::vector<float> row(const std::string& name, int64_t r) {
        const auto& t = file_->tensor(name);
        std::vector<float> out(t.shape[0]);
        const uint64_t rb = row_bytes(t.type, t.shape[0]);
        quant::dequantize_row(t.type, file_->tensor_data(t) + r * rb, out.data(), int64_t(t.shape[0]));
        return out;
    }
    static inline std::string dir_, path_;
    static inline gguf::File* file_ = nullptr;
    static inline convert::Checkpoint* ck_ = nullptr;
};

TEST_F(GptOssConvert, MetadataAsLlamaCppWritesIt) {
    const gguf::File& f = *file_;
    EXPECT_EQ(f.architecture(), "gpt-oss");
    EXPECT_EQ(f.get_int("gpt-oss.block_count"), 4);
    EXPECT_EQ(f.get_int("gpt-oss.embedding_length"), 64);
    EXPECT_EQ(f.get_int("gpt-oss.feed_forward_length"), 96);
    EXPECT_EQ(f.get_int("gpt-oss.expert_feed_forward_length"), 96);
    EXPECT_EQ(f.get_int("gpt-oss.expert_count"), 16);
    EXPECT_EQ(f.get_int("gpt-oss.expert_used_count"), 4);
    EXPECT_EQ(f.get_int("gpt-oss.attention.head_count"), 4);
    EXPECT_EQ(f.get_int("gpt-oss.attention.head_count_kv"), 2);
    EXPECT_EQ(f.get_int("gpt-oss.attention.key_length"), 64);
    EXPECT_EQ(f.get_int("gpt-oss.attention.sliding_window"), 128);
    EXPECT_EQ(f.get_int("gpt-oss.context_length"), 131072);
    EXPECT_FLOAT_EQ(float(f.get_float("gpt-oss.rope.freq_base")), 150000.0f);
    EXPECT_EQ(f.get_string("gpt-oss.rope.scaling.type"), "yarn");
    EXPECT_FLOAT_EQ(float(f.get_float("gpt-oss.rope.scaling.factor")), 32.0f);
    EXPECT_EQ(f.get_int("gpt-oss.rope.scaling.original_context_length"), 4096);
    EXPECT_FLOAT_EQ(float(f.get_float("gpt-oss.attention.layer_norm_rms_epsilon")), 1e-5f);
    EXPECT_EQ(f.get_int("general.file_type"), 38);
    // 3 global + 19 per layer, as in the ggml-org file (MODELS.md §2).
    EXPECT_EQ(f.tensors().size(), 3u + 19u * 4u);
    const auto& g = f.tensor("blk.0.ffn_gate_exps.weight");
    EXPECT_EQ(g.type, GgmlType::MXFP4);
    EXPECT_EQ(g.shape, (std::vector<uint64_t>{64, 96, 16}));
    EXPECT_EQ(f.tensor("blk.0.ffn_down_exps.weight").shape, (std::vector<uint64_t>{96, 64, 16}));
    EXPECT_EQ(f.tensor("blk.0.ffn_gate_exps.bias").shape, (std::vector<uint64_t>{96, 16}));
    EXPECT_EQ(f.tensor("blk.0.attn_sinks.weight").type, GgmlType::F32);
    EXPECT_EQ(f.tensor("blk.0.ffn_gate_inp.weight").type, GgmlType::F32);
}

TEST_F(GptOssConvert, ExpertsAreTheCheckpointsValuesGateEvenUpOdd) {
    for (int il = 0; il < 4; ++il) {
        const std::string X = "model.layers." + std::to_string(il) + ".mlp.experts.";
        const auto& gub = ck_->get(X + "gate_up_proj_blocks");
        const auto& gus = ck_->get(X + "gate_up_proj_scales");
        const auto& dnb = ck_->get(X + "down_proj_blocks");
        const auto& dns = ck_->get(X + "down_proj_scales");
        const auto& b1 = ck_->get(X + "gate_up_proj_bias");
        const auto& b2 = ck_->get(X + "down_proj_bias");
        const std::string B = "blk." + std::to_string(il) + ".";
        int bad = 0;
        for (int64_t e = 0; e < 16; ++e) {
            for (int64_t j = 0; j < 96; ++j) {
                const auto g = row(B + "ffn_gate_exps.weight", e * 96 + j), u = row(B + "ffn_up_exps.weight", e * 96 + j);
                for (int64_t k = 0; k < 64; ++k) {
                    bad += g[k] != hf_mxfp4(gub, gus, e * 192 + 2 * j, k);
                    bad += u[k] != hf_mxfp4(gub, gus, e * 192 + 2 * j + 1, k);
                }
            }
            for (int64_t j = 0; j < 64; ++j) {
                const auto dn = row(B + "ffn_down_exps.weight", e * 64 + j);
                for (int64_t k = 0; k < 96; ++k) bad += dn[k] != hf_mxfp4(dnb, dns, e * 64 + j, k);
            }
            const auto gb = row(B + "ffn_gate_exps.bias", e), ub = row(B + "ffn_up_exps.bias", e);
            const auto db = row(B + "ffn_down_exps.bias", e);
            for (int64_t j = 0; j < 96; ++j) {
                bad += gb[j] != b1.at(e * 192 + 2 * j);
                bad += ub[j] != b1.at(e * 192 + 2 * j + 1);
            }
            for (int64_t j = 0; j < 64; ++j) bad += db[j] != b2.at(e * 64 + j);
        }
        EXPECT_EQ(bad, 0) << "layer " << il;
    }
}

}  // namespace
}  // namespace wo
