// The real gpt-oss tensor layout (MODELS.md §2, scaled down) written with the Writer, read back,
// and shown by `worker-orcd inspect` as text, as JSON, and as a dequantized tensor dump.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gguf/gguf.h"
#include "gguf_test_util.h"

namespace wo::gguf_test {
namespace {

using nlohmann::json;

// Totals for GptOssDims{} (E=64, V=1000, 4 q heads and 2 kv heads of 16, 4 experts, ff 64),
// worked out by hand from the block sizes (Q8_0: 34 B per 32, MXFP4: 17 B per 32, F32: 4 B):
//   token_embd, output: 1000 rows x 2 x 34 = 68000 B each; output_norm 64 x 4 = 256 B
//   per layer: attn_norm 256, q 64x68=4352 + 256, k 32x68=2176 + 128, v 2176 + 128,
//   o 64x68=4352 + 256, sinks 16, post_attention_norm 256, gate_inp 1024 + 16,
//   gate/up/down exps 256 rows x 2 x 17 = 8704 each + bias 1024 each  -> 44576 B
//   total = 2 x 68000 + 256 + 2 x 44576 = 225408 B
// Parameters: 2 x 64000 + 64 + 2 x (64 + 4096+64 + 2048+32 + 2048+32 + 4096+64 + 4 + 64 + 256+4
//   + 3 x (16384+256)) = 128064 + 2 x 62792 = 253648.
constexpr uint64_t kTotalBytes = 225408;
constexpr uint64_t kTotalParams = 253648;

class GptOssLayout : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        path_ = (scratch_dir() / "gpt-oss-tiny.gguf").string();
        gptoss_writer().write(path_);
    }
    static std::string inspect(const std::string& args) {
        return std::string("'") + WO_BINARY + "' inspect '" + path_ + "' " + args;
    }
    static inline std::string path_;
};

TEST_F(GptOssLayout, ReaderSeesTheModelsMdLayout) {
    const gguf::File f = gguf::File::open(path_);
    EXPECT_EQ(f.architecture(), "gpt-oss");
    EXPECT_EQ(f.get_uint("gpt-oss.block_count"), 2u);
    EXPECT_EQ(f.get_uint("gpt-oss.expert_count"), 4u);
    EXPECT_EQ(f.get_string("gpt-oss.rope.scaling.type"), "yarn");
    EXPECT_FLOAT_EQ(f.get_float("gpt-oss.attention.layer_norm_rms_epsilon"), 1e-5f);
    ASSERT_EQ(f.tensors().size(), 41u);  // 3 global + 2 x 19
    const auto want = gptoss_tensors({});
    std::map<GgmlType, int> per_type;
    uint64_t bytes = 0, params = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const auto& t = f.tensors()[i];
        EXPECT_EQ(t.name, want[i].name);
        EXPECT_EQ(t.type, want[i].type) << t.name;
        EXPECT_EQ(t.shape, want[i].shape) << t.name;
        ++per_type[t.type];
        bytes += t.n_bytes;
        params += t.n_elements;
    }
    // MODELS.md: the real file is 72 MXFP4 + 98 Q8_0 + 289 F32 over 24 layers, i.e. 3 / 4 / 12
    // per layer plus 0 / 2 / 1 global.
    EXPECT_EQ(per_type[GgmlType::MXFP4], 6);
    EXPECT_EQ(per_type[GgmlType::Q8_0], 10);
    EXPECT_EQ(per_type[GgmlType::F32], 25);
    EXPECT_EQ(bytes, kTotalBytes);
    EXPECT_EQ(params, kTotalParams);
    EXPECT_EQ(f.tensor("blk.1.ffn_down_exps.weight").n_bytes, 8704u);
}

TEST_F(GptOssLayout, InspectText) {
    const RunResult r = run(inspect(""));
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string& o = r.out;
    for (const std::string needle : {
             "version:      3\n", "alignment:    32\n", "architecture: gpt-oss\n", "metadata: 24 keys\n",
             "tensors: 41\n", "totals: 41 tensors, 225408 bytes, 253648 parameters\n",
             "types: F32 25, MXFP4 6, Q8_0 10\n"}) {
        EXPECT_NE(o.find(needle), std::string::npos) << "missing '" << needle << "' in:\n" << o;
    }
    auto line_of = [&](const std::string& start) {
        const size_t p = o.find("\n  " + start + " ");
        return p == std::string::npos ? std::string() : o.substr(p + 1, o.find('\n', p + 1) - p - 1);
    };
    const std::string down = line_of("blk.1.ffn_down_exps.weight");
    EXPECT_NE(down.find("MXFP4"), std::string::npos) << down;
    EXPECT_NE(down.find("[64, 64, 4]"), std::string::npos) << down;
    EXPECT_NE(down.find(" 8704"), std::string::npos) << down;
    const std::string embd = line_of("token_embd.weight");
    EXPECT_NE(embd.find("Q8_0"), std::string::npos) << embd;
    EXPECT_NE(embd.find("[64, 1000]"), std::string::npos) << embd;
    EXPECT_NE(embd.find(" 68000"), std::string::npos) << embd;
    const std::string experts = line_of("gpt-oss.expert_count");
    EXPECT_NE(experts.find("UINT32"), std::string::npos) << experts;
    EXPECT_EQ(experts.substr(experts.size() - 2), " 4") << experts;
    EXPECT_NE(line_of("gpt-oss.rope.scaling.type").find("STRING         \"yarn\""), std::string::npos);
    EXPECT_NE(line_of("gpt-oss.attention.layer_norm_rms_epsilon").find("FLOAT32        1e-05"), std::string::npos);
    // A 1000-entry vocabulary is summarised: length and the first 8 items.
    const std::string tokens = line_of("tokenizer.ggml.tokens");
    EXPECT_NE(tokens.find("ARRAY[STRING]  (1000 items) [\"tok0\", \"tok1\""), std::string::npos) << tokens;
    EXPECT_NE(tokens.find("\"tok7\", ... 992 more]"), std::string::npos) << tokens;
    EXPECT_EQ(tokens.find("tok8"), std::string::npos) << tokens;

    // One row per type: tensors, parameters, bytes, size, share of the bytes (worked out by hand
    // from the totals above: MXFP4 6 x 8704 B; Q8_0 2 x 68000 + 2 x 13056; F32 the rest).
    auto words = [](const std::string& line) {
        std::vector<std::string> w;
        std::istringstream in(line);
        for (std::string x; in >> x;) w.push_back(x);
        return w;
    };
    using V = std::vector<std::string>;
    EXPECT_EQ(words(line_of("type")), (V{"type", "tensors", "parameters", "bytes", "size", "share"}));
    EXPECT_EQ(words(line_of("MXFP4")), (V{"MXFP4", "6", "98304", "52224", "51.0", "KiB", "23.2%"}));
    EXPECT_EQ(words(line_of("Q8_0")), (V{"Q8_0", "10", "152576", "162112", "158", "KiB", "71.9%"}));
    EXPECT_EQ(words(line_of("F32")), (V{"F32", "25", "2768", "11072", "10.8", "KiB", "4.9%"}));

    // The tensor table is aligned: each column starts at the same place on every row.
    const size_t head = o.find("\n  name ");
    ASSERT_NE(head, std::string::npos) << o;
    const std::string header = o.substr(head + 1, o.find('\n', head + 1) - head - 1);
    for (const std::string name :
         {"token_embd.weight", "blk.1.ffn_down_exps.weight", "blk.0.attn_sinks.weight"}) {
        const std::string row = line_of(name);
        const std::string type = words(row).at(1);
        EXPECT_EQ(row.find(" " + type + " ") + 1, header.find("type")) << row;
        EXPECT_EQ(row.find('['), header.find("shape")) << row;
        EXPECT_EQ(row.size(), header.size()) << "bytes right-aligned under 'bytes': " << row;
    }
}

TEST_F(GptOssLayout, InspectJson) {
    const RunResult r = run(inspect("--json"));
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["architecture"], "gpt-oss");
    EXPECT_EQ(j["version"], 3);
    EXPECT_EQ(j["alignment"], 32);
    EXPECT_EQ(j["metadata"].size(), 24u);  // 3 general + 17 gpt-oss + 4 tokenizer
    EXPECT_EQ(j["metadata"][0]["key"], "general.architecture");
    const auto want = gptoss_tensors({});
    ASSERT_EQ(j["tensors"].size(), 41u);
    for (size_t i = 0; i < want.size(); ++i) {
        const json& t = j["tensors"][i];
        EXPECT_EQ(t["name"], want[i].name);
        EXPECT_EQ(t["type"], std::string(type_name(want[i].type)));
        EXPECT_EQ(t["shape"].get<std::vector<uint64_t>>(), want[i].shape);
        EXPECT_EQ(t["offset"].get<uint64_t>() % 32, 0u);
    }
    EXPECT_EQ(j["tensors"][0]["bytes"], 68000);
    EXPECT_EQ(j["totals"]["tensors"], 41);
    EXPECT_EQ(j["totals"]["bytes"], kTotalBytes);
    EXPECT_EQ(j["totals"]["parameters"], kTotalParams);
    EXPECT_EQ(j["totals"]["types"], (json{{"F32", 25}, {"MXFP4", 6}, {"Q8_0", 10}}));
    for (const json& m : j["metadata"]) {
        if (m["key"] == "tokenizer.ggml.tokens") {
            EXPECT_EQ(m["type"], "ARRAY");
            EXPECT_EQ(m["value"]["elem_type"], "STRING");
            EXPECT_EQ(m["value"]["length"], 1000);
            EXPECT_EQ(m["value"]["items"].size(), 8u);
            EXPECT_EQ(m["value"]["items"][7], "tok7");
        }
        if (m["key"] == "gpt-oss.rope.freq_base") {
            EXPECT_EQ(m["type"], "FLOAT32");
            EXPECT_EQ(m["value"], 150000.0);
        }
    }
}

std::vector<float> read_f32(const std::string& path) {
    const std::string raw = read_text(path);
    std::vector<float> v(raw.size() / 4);
    std::memcpy(v.data(), raw.data(), v.size() * 4);
    return v;
}

TEST_F(GptOssLayout, DumpDequantizesByTheSpec) {
    const gguf::File f = gguf::File::open(path_);
    const auto dump = (scratch_dir() / "dump.f32").string();

    // MXFP4 (OCP MX E2M1 times 2^(e-127); ggml order: element j low nibble, j+16 high nibble).
    const auto& mx = f.tensor("blk.0.ffn_gate_exps.weight");
    RunResult r = run(inspect("--tensor blk.0.ffn_gate_exps.weight --dump '" + dump + "'"));
    ASSERT_EQ(r.status, 0) << r.err;
    std::vector<float> got = read_f32(dump);
    ASSERT_EQ(got.size(), mx.n_elements);
    static const float kE2M1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    const uint8_t* b = f.tensor_data(mx);
    for (uint64_t blk = 0; blk < mx.n_elements / 32; ++blk, b += 17) {
        for (int j = 0; j < 32; ++j) {
            const uint8_t nib = j < 16 ? (b[1 + j] & 15) : (b[1 + j - 16] >> 4);
            const float want = (nib & 8 ? -1.0f : 1.0f) * std::ldexp(kE2M1[nib & 7], int(b[0]) - 127);
            ASSERT_EQ(got[blk * 32 + j], want) << "block " << blk << " element " << j;
        }
    }

    // Q8_0: f16 scale (the test data uses 0.5, 1 or 2) times int8.
    const auto& q8 = f.tensor("blk.1.attn_k.weight");
    r = run(inspect("--tensor blk.1.attn_k.weight --dump '" + dump + "' --json"));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["name"], "blk.1.attn_k.weight");
    got = read_f32(dump);
    ASSERT_EQ(got.size(), q8.n_elements);
    b = f.tensor_data(q8);
    for (uint64_t blk = 0; blk < q8.n_elements / 32; ++blk, b += 34) {
        const uint16_t h = uint16_t(b[0] | b[1] << 8);
        const float d = h == 0x3800 ? 0.5f : h == 0x3C00 ? 1.0f : h == 0x4000 ? 2.0f : NAN;
        for (int j = 0; j < 32; ++j) ASSERT_EQ(got[blk * 32 + j], d * float(int8_t(b[2 + j])));
    }

    // F32 is copied.
    const auto& sinks = f.tensor("blk.0.attn_sinks.weight");
    r = run(inspect("--tensor blk.0.attn_sinks.weight --dump '" + dump + "'"));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("wrote 4 float32 values"), std::string::npos) << r.out;
    got = read_f32(dump);
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(std::memcmp(got.data(), f.tensor_data(sinks), 16), 0);
}

TEST_F(GptOssLayout, ErrorsComeOutAsCodeAndMessage) {
    RunResult r = run(inspect("--tensor blk.9.nope --dump /dev/null"));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("error: INVALID_ARGUMENT: no tensor named 'blk.9.nope'"), std::string::npos) << r.err;
    r = run(inspect("--dump /dev/null"));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("error: INVALID_ARGUMENT: --dump needs --tensor"), std::string::npos) << r.err;

    std::string bytes = read_text(path_);
    bytes.resize(bytes.size() - 1);  // the last tensor's data now runs past the end
    const auto cut = (scratch_dir() / "cut.gguf").string();
    std::FILE* fp = std::fopen(cut.c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), fp);
    std::fclose(fp);
    r = run(std::string("'") + WO_BINARY + "' inspect '" + cut + "'");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("error: GGUF_INVALID: " + cut + ": tensor 'blk.1.ffn_down_exps.bias'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("run past the end of the file"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace
}  // namespace wo::gguf_test
