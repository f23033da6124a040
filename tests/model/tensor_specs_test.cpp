// One tensor list per architecture (model/tensors.h): the files synth and the test writers make
// hold exactly the listed tensors, the loader uses every one of them, and it names any listed
// tensor that is missing or misshapen.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "convert/synth.h"
#include "model/tensors.h"
#include "model/tiny_models.h"
#include "util/error.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wo {
namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

// Loads `f`, checks that its tensors are those of the list for the loaded hyperparameters and
// the layout the arch writes (tied as given), and that loading read every byte of them.
void expect_agreement(std::shared_ptr<const gguf::File> f, const std::string& arch, bool tied) {
    uint64_t reported = 0, file_bytes = 0;
    LoadOptions lo;
    lo.n_threads = 1;
    lo.on_weight_bytes = [&](uint64_t n) { reported += n; };
    auto m = load_model(f, lo);
    Shapes in_file, listed;
    for (const auto& t : f->tensors()) {
        in_file[t.name] = std::vector<int64_t>(t.shape.begin(), t.shape.end());
        file_bytes += t.n_bytes;
    }
    TensorLayout l = default_layout(arch);
    l.tied = tied;
    for (const TensorSpec& s : tensor_specs(m->hparams(), l)) listed[s.name] = s.shape;
    EXPECT_EQ(in_file, listed);
    EXPECT_EQ(reported, file_bytes) << "every tensor written is loaded";
}

class TensorSpecs : public ::testing::TestWithParam<std::string> {};

TEST_P(TensorSpecs, SynthWritesWhatTheLoaderReads) {
    const auto path = (std::filesystem::temp_directory_path() /
                       ("wo-specs-" + GetParam() + "-" + std::to_string(::getpid()) + ".gguf"))
                          .string();
    convert::SynthOptions o;
    o.arch = GetParam();
    o.preset = "tiny";
    convert::synth_model(o, path);
    expect_agreement(std::make_shared<const gguf::File>(gguf::File::open(path)), GetParam(), GetParam() == "gpt2");
    std::filesystem::remove(path);
}

TEST_P(TensorSpecs, TestWriterWritesWhatTheLoaderReads) {
    for (bool tied : {false, true}) {
        auto t = test::load_tiny({.arch = GetParam(), .tied = tied});
        expect_agreement(t.file, GetParam(), tied);
    }
}

// Each tensor of the globals and of the last block, left out or misshapen, is named in the error.
// (output.weight is optional: without it the model is tied; block 0 sets the layout.)
TEST_P(TensorSpecs, LoaderNamesEachMissingOrMisshapenTensor) {
    auto t = test::load_tiny({.arch = GetParam()});
    int checked = 0;
    for (const TensorSpec& s : tensor_specs(t.model->hparams(), default_layout(GetParam()))) {
        if (s.name == "output.weight" || s.name.rfind("blk.0.", 0) == 0) continue;
        auto error = [&](test::TinyOpts o) {
            o.arch = GetParam();
            try {
                test::load_tiny(o);
            } catch (const Error& e) {
                EXPECT_EQ(e.code(), Code::MODEL_LOAD_FAILED) << e.what();
                return std::string(e.what());
            }
            return std::string("no error");
        };
        EXPECT_NE(error({.drop = {s.name}}).find("missing tensor " + s.name), std::string::npos) << s.name;
        std::vector<uint64_t> wrong(s.shape.begin(), s.shape.end());
        wrong[0] *= 2;
        const std::string msg = error({.reshape = {{s.name, wrong}}});
        EXPECT_NE(msg.find("tensor " + s.name + ": shape ("), std::string::npos) << msg;
        ++checked;
    }
    EXPECT_GT(checked, 5);
}

INSTANTIATE_TEST_SUITE_P(Archs, TensorSpecs, ::testing::Values("gpt-oss", "llama", "qwen2", "phi3", "gpt2"),
                         [](const auto& info) {
                             std::string s = info.param;
                             for (auto& c : s)
                                 if (c == '-') c = '_';
                             return s;
                         });

}  // namespace
}  // namespace wo
