// The converter's output read by another engine: each transformers fixture is converted (F32,
// with a byte-level tokenizer so llama.cpp accepts the file) and run by llama.cpp through
// node-llama-cpp (tests/golden/llamacpp-greedy.mjs); llama.cpp's next-token probabilities and
// greedy continuation must match transformers' reference. This checks tensor names, layouts
// (llama Q/K permutation, GPT-2 transposes, phi3 fused tensors, gpt-oss expert split) and
// metadata keys as llama.cpp understands them, independently of worker-orcd's model code.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert/byte_tokenizer.h"
#include "convert/convert.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

struct Case {
    std::string fixture;
    double p_tol;    // bound on |p_llama.cpp - p_transformers| over llama.cpp's top 20
    int must_match;  // greedy tokens that must agree (of 32)
};

class LlamaCppConvert : public ::testing::TestWithParam<Case> {};

TEST_P(LlamaCppConvert, MatchesTransformers) {
    const Case& c = GetParam();
    const std::string nm = std::string(WO_GOLDEN) + "/node_modules";
    ASSERT_TRUE(fs::exists(nm + "/node-llama-cpp")) << "llama.cpp reference missing: run scripts/goldens " << WO_GOLDEN;
    const fs::path src = fs::path(WO_FIXTURES) / c.fixture;
    const fs::path dir = fs::temp_directory_path() / ("wo-lcc-" + c.fixture + "-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(src))
        if (e.path().extension() != ".f32") fs::copy(e.path(), dir / e.path().filename(), fs::copy_options::overwrite_existing);
    std::ofstream(dir / "tokenizer.json") << test::byte_level_tokenizer_json().dump();
    const std::string gguf = (dir / "m.gguf").string();
    convert::ConvertOptions o;
    o.type = GgmlType::F32;
    convert::convert_hf(dir.string(), gguf, o);

    const auto ref = nlohmann::json::parse(std::ifstream(src / "reference.json"));
    const auto& p0 = ref["prompts"][0];
    const auto ids = p0["ids"].get<std::vector<int>>();
    const auto greedy = p0["greedy"].get<std::vector<int>>();
    const int V = p0["n_vocab"].get<int>();
    std::vector<float> logits(static_cast<size_t>(V));
    {
        std::ifstream f(src / p0["logits_file"].get<std::string>(), std::ios::binary);
        f.seekg(std::streamoff((ids.size() - 1) * size_t(V) * sizeof(float)));
        f.read(reinterpret_cast<char*>(logits.data()), std::streamsize(V * sizeof(float)));
        ASSERT_TRUE(f);
    }
    std::string list;
    for (int id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
    std::string out;
    FILE* p = popen(("NODE_PATH=" + nm + " node " + WO_SOURCE_DIR + "/tests/golden/llamacpp-greedy.mjs " + gguf + " " + list +
                     " " + std::to_string(greedy.size()) + " 2>/dev/null")
                        .c_str(),
                    "r");
    char buf[65536];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ASSERT_EQ(pclose(p), 0) << out;
    fs::remove_all(dir);
    const auto lc = nlohmann::json::parse(out);

    const float mx = *std::max_element(logits.begin(), logits.end());
    double z = 0;
    for (float v : logits) z += std::exp(double(v) - mx);
    double worst = 0;
    for (const auto& tp : lc["top"])
        worst = std::max(worst, std::abs(tp[1].get<double>() - std::exp(double(logits[tp[0].get<size_t>()]) - mx) / z));
    const auto lg = lc["greedy"].get<std::vector<int>>();
    size_t same = 0;
    while (same < lg.size() && same < greedy.size() && lg[same] == greedy[same]) ++same;
    std::printf("[ llama.cpp] %s: max |p_llama.cpp - p_transformers| %.3g, greedy equal for %zu of %zu\n", c.fixture.c_str(),
                worst, same, greedy.size());
    EXPECT_LE(worst, c.p_tol) << c.fixture;
    EXPECT_GE(int(same), c.must_match) << c.fixture << ": llama.cpp " << ::testing::PrintToString(lg) << " transformers "
                                       << ::testing::PrintToString(greedy);
}

// F32 everywhere: llama.cpp and transformers differ only in summation order (1e-4 is loose for
// that), except gpt2, where ggml's CPU GELU goes through an F16 table (~1e-3 on logits), and
// gpt-oss, where llama.cpp rounds activations to Q8_0 before MXFP4 dot products and rounds the
// YaRN ramp bounds (8/18 against 8.09/17.40): bounded at 0.02 like the Q8_0 comparisons, greedy
// required for the first token only. phi3 is not here: llama.cpp's vocabulary loader fails on a
// phi3 file carrying this byte-level BPE vocabulary ("_Map_base::at"; real Phi-3 files carry an
// SPM vocabulary), so it never reaches the weights; phi3 conversion is checked in fixtures_test.
// gpt-oss-bf16-tiny: bf16 experts off the MXFP4 grid, kept as F32 experts (no activation
// rounding), so only the YaRN ramp rounding remains (measured 3.7e-5, greedy 32 of 32): this
// checks the float-expert gate/up split and layout as llama.cpp reads them.
const Case kCases[] = {
    {"llama-tiny", 1e-4, 32}, {"qwen2-tiny", 1e-4, 32}, {"gpt2-tiny", 1e-3, 32}, {"gpt-oss-tiny", 0.02, 1},
    {"gpt-oss-bf16-tiny", 1e-3, 32},
};
INSTANTIATE_TEST_SUITE_P(Fixtures, LlamaCppConvert, ::testing::ValuesIn(kCases), [](const auto& i) {
    std::string s = i.param.fixture;
    for (auto& ch : s)
        if (ch == '-') ch = '_';
    return s;
});

}  // namespace
}  // namespace wo
