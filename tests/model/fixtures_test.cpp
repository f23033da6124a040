// The oracle for convert + model code: every HF transformers fixture (tests/fixtures/, made by
// tools/reference/make_fixtures.py) is converted to GGUF with convert_hf and run on the CPU
// backend; the logits at every prompt position and every decode step must match transformers'
// float32 logits, and greedy decoding must reproduce transformers' 32-token continuation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/tensors.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

struct Prompt {
    std::vector<int32_t> ids, greedy;
    std::vector<float> logits;  // [n_rows, n_vocab]; row r follows token r of ids + greedy[:-1]
    int n_rows = 0, n_vocab = 0;
    double margin = 0;
};

std::vector<Prompt> load_reference(const std::string& name) {
    const fs::path dir = fs::path(WO_FIXTURES) / name;
    std::ifstream in(dir / "reference.json");
    if (!in) throw std::runtime_error("missing " + (dir / "reference.json").string());
    const auto j = nlohmann::json::parse(in);
    std::vector<Prompt> out;
    for (const auto& p : j.at("prompts")) {
        Prompt r;
        r.ids = p.at("ids").get<std::vector<int32_t>>();
        r.greedy = p.at("greedy").get<std::vector<int32_t>>();
        r.n_rows = p.at("n_rows").get<int>();
        r.n_vocab = p.at("n_vocab").get<int>();
        r.margin = p.at("min_greedy_margin").get<double>();
        r.logits.resize(size_t(r.n_rows) * size_t(r.n_vocab));
        std::ifstream f(dir / p.at("logits_file").get<std::string>(), std::ios::binary);
        f.read(reinterpret_cast<char*>(r.logits.data()), std::streamsize(r.logits.size() * sizeof(float)));
        if (!f || size_t(r.n_rows) != r.ids.size() + r.greedy.size() - 1)
            throw std::runtime_error("bad logits file for " + name);
        out.push_back(std::move(r));
    }
    return out;
}

// ||a - b|| / ||b|| over one row of logits.
double rel_l2(const float* a, const float* b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return std::sqrt(num / den);
}

// The backend the fixtures run on: the CPU unless WO_TEST_BACKEND names another (scripts/gpu-check
// runs them with cuda).
std::string test_backend() {
    const char* b = std::getenv("WO_TEST_BACKEND");
    return b && *b ? b : "cpu";
}

int argmax(const float* x, int n) {
    int best = 0;
    for (int i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return best;
}

struct Case {
    std::string fixture;
    std::string type;  // --type
    double tol;        // bound on the relative L2 error of every logits row
    bool greedy;       // the continuation must match token for token
};

std::string case_name(const ::testing::TestParamInfo<Case>& i) {
    std::string s = i.param.fixture + "_" + i.param.type;
    for (auto& ch : s)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    return s;
}

class Fixture : public ::testing::TestWithParam<Case> {
protected:
    void SetUp() override {
        const Case& c = GetParam();
        path_ = (fs::temp_directory_path() / ("wo-fixture-" + std::to_string(::getpid()) + "-" + c.fixture + "-" + c.type + ".gguf")).string();
        convert::ConvertOptions o;
        o.type = convert::parse_matrix_type(c.type);
        convert::convert_hf((fs::path(WO_FIXTURES) / c.fixture).string(), path_, o);
        file_ = std::make_shared<const gguf::File>(gguf::File::open(path_));
        prompts_ = load_reference(c.fixture);
    }
    // A fresh model per run: reserve() is called once per model.
    void fresh_model() {
        LoadOptions lo;
        lo.n_threads = 2;
        lo.backend = test_backend();
        lo.kv_type = kv_type_;
        model_ = load_model(file_, lo);
    }
    void TearDown() override {
        model_.reset();
        file_.reset();
        fs::remove(path_);
    }

    // Runs the prompts (all at once, one slot each, when batched) and checks every row.
    void run(const std::vector<size_t>& which) {
        Case c = GetParam();
        // On CUDA the fixtures run with an F32 KV cache, so only float summation order differs
        // from the CPU and the CPU's bounds hold. The default F16 cache (relative rounding 2^-11
        // per element) moves logits by ~1e-3, which on gpt-oss flips a near-tied top-4 router
        // choice in the 160-token prompt (measured: 0.48, an O(1) change, like q8_0 weights);
        // F16 caches are checked by the op suite and the engine tests instead.
        kv_type_ = test_backend() == "cuda" ? "f32" : "";
        int n_ctx = 0;
        for (size_t k : which) n_ctx = std::max<int>(n_ctx, int(prompts_[k].ids.size() + prompts_[k].greedy.size()));
        fresh_model();
        model_->reserve(int(which.size()), n_ctx);
        const int V = model_->hparams().n_vocab;
        ASSERT_EQ(V, prompts_[which[0]].n_vocab);

        std::vector<BatchToken> batch;
        for (size_t s = 0; s < which.size(); ++s) {
            const auto& ids = prompts_[which[s]].ids;
            for (size_t i = 0; i < ids.size(); ++i) batch.push_back({ids[i], int32_t(i), int32_t(s), true});
        }
        std::vector<float> lg;
        model_->forward(batch, lg);
        ASSERT_EQ(lg.size(), batch.size() * size_t(V));

        double worst = 0;
        std::vector<std::vector<float>> last(which.size());
        size_t row = 0;
        for (size_t s = 0; s < which.size(); ++s) {
            const Prompt& p = prompts_[which[s]];
            for (size_t i = 0; i < p.ids.size(); ++i, ++row) {
                const double e = rel_l2(&lg[row * V], &p.logits[i * V], V);
                worst = std::max(worst, e);
                EXPECT_LE(e, c.tol) << c.fixture << " prompt " << which[s] << " position " << i;
            }
            last[s].assign(lg.begin() + long((row - 1) * V), lg.begin() + long(row * V));
        }
        // Greedy decoding in lock step; a slot stops being compared once it diverges.
        std::vector<bool> alive(which.size(), true);
        const size_t n_gen = prompts_[which[0]].greedy.size();
        for (size_t step = 0; step < n_gen; ++step) {
            batch.clear();
            std::vector<size_t> slots;
            for (size_t s = 0; s < which.size(); ++s) {
                if (!alive[s]) continue;
                const Prompt& p = prompts_[which[s]];
                const int tok = argmax(last[s].data(), V);
                if (c.greedy) {
                    EXPECT_EQ(tok, p.greedy[step]) << c.fixture << " prompt " << which[s] << " greedy step " << step
                                                   << " (reference top-2 margin " << p.margin << ")";
                }
                if (tok != p.greedy[step]) {
                    alive[s] = false;
                    continue;
                }
                if (step + 1 < n_gen) {
                    batch.push_back({tok, int32_t(p.ids.size() + step), int32_t(s), true, true});  // generated: decode path
                    slots.push_back(s);
                }
            }
            if (batch.empty()) break;
            lg.clear();
            model_->forward(batch, lg);
            ASSERT_EQ(lg.size(), batch.size() * size_t(V));
            for (size_t b = 0; b < slots.size(); ++b) {
                const size_t s = slots[b];
                const Prompt& p = prompts_[which[s]];
                const size_t r = p.ids.size() + step;  // reference row after the token just fed
                const double e = rel_l2(&lg[b * V], &p.logits[r * V], V);
                worst = std::max(worst, e);
                EXPECT_LE(e, c.tol) << c.fixture << " prompt " << which[s] << " decode step " << step;
                last[s].assign(lg.begin() + long(b * V), lg.begin() + long((b + 1) * V));
            }
        }
        RecordProperty("worst_rel_l2", std::to_string(worst));
        std::printf("[ fixture  ] %s --type %s on %s, prompts %zu: worst relative L2 error %.3g (bound %.3g)\n",
                    c.fixture.c_str(), c.type.c_str(), test_backend().c_str(), which.size(), worst, c.tol);
    }

    std::string path_, kv_type_;
    std::shared_ptr<const gguf::File> file_;
    std::unique_ptr<Model> model_;
    std::vector<Prompt> prompts_;
};

TEST_P(Fixture, EachPromptAlone) {
    for (size_t k = 0; k < prompts_.size(); ++k) {
        SCOPED_TRACE("prompt " + std::to_string(k));
        run({k});
    }
}

// The converter writes exactly the tensors of the architecture's list, in the layout synth and
// the test writers use (model/tensors.h).
TEST_P(Fixture, ConvertedFileHoldsTheListedTensors) {
    fresh_model();
    TensorLayout l = default_layout(model_->hparams().arch);
    l.tied = layout_of(*file_).tied;
    std::map<std::string, std::vector<uint64_t>> in_file, listed;
    for (const auto& t : file_->tensors()) in_file[t.name] = t.shape;
    for (const TensorSpec& s : tensor_specs(model_->hparams(), l)) listed[s.name] = {s.shape.begin(), s.shape.end()};
    EXPECT_EQ(in_file, listed);
}

TEST_P(Fixture, AllPromptsBatched) {
    std::vector<size_t> all;
    for (size_t k = 0; k < prompts_.size(); ++k) all.push_back(k);
    run(all);
}

// f32: the GGUF holds exactly the values transformers used (weights were rounded to their storage
// type before the reference ran), so only float32 summation order differs: 1e-4 is loose for
// that and far below what a wrong mapping gives (O(1)). Lossless too: bf16 of the bf16-stored
// gpt-oss and f16 of the f16-stored qwen2. MXFP4 experts are always exact (repacked bit for bit).
// Lossy: q8_0 and bf16 of f32-stored weights round every weight (relative steps 2^-8 and about
// 2^-9), which moves logits by about a percent; greedy is then not required to match exactly,
// since the reference margins go down to 0.003. gpt-oss has no lossy case: a rounded weight can
// flip a top-k router choice, which changes the output by O(1) (measured: q8_0 gives 0.2-0.9),
// so no smooth bound exists; its MXFP4 experts are exact in every conversion anyway.
// gpt-oss-bf16-tiny holds bf16 experts off the MXFP4 grid (a bf16 fine-tune): --type bf16 and f32
// keep them exactly, f16 to within f16's subnormal step (issue 14), so it is held to the lossless
// bound; requantizing them to MXFP4 moves its logits by up to 0.47 (float_experts_test.cpp).
const Case kCases[] = {
    {"gpt-oss-tiny", "f32", 1e-4, true}, {"gpt2-tiny", "f32", 1e-4, true},  {"llama-tiny", "f32", 1e-4, true},
    {"qwen2-tiny", "f32", 1e-4, true},   {"phi3-tiny", "f32", 1e-4, true},  {"gpt-oss-tiny", "bf16", 1e-4, true},
    {"qwen2-tiny", "f16", 1e-4, true},   {"llama-tiny", "bf16", 3e-2, false}, {"llama-tiny", "q8_0", 5e-2, false},
    {"gpt-oss-bf16-tiny", "bf16", 1e-4, true}, {"gpt-oss-bf16-tiny", "f32", 1e-4, true},
    {"gpt-oss-bf16-tiny", "f16", 1e-4, true},
};
INSTANTIATE_TEST_SUITE_P(Transformers, Fixture, ::testing::ValuesIn(kCases), case_name);

}  // namespace
}  // namespace wo
