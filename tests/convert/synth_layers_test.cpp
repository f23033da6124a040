// `synth --layers N`: N blocks of the preset's shapes, the embedding and LM head unchanged, and
// a negative count refused. (tests/engine/bench_test.cpp runs a --layers file through bench.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "convert/synth.h"
#include "gguf/gguf.h"
#include "util/error.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& tag) {
    return (fs::temp_directory_path() / ("wo-synthl-" + std::to_string(::getpid()) + "-" + tag + ".gguf"))
        .string();
}

TEST(Synth, LayersOptionWritesFewerBlocksOfTheSameShapes) {
    convert::SynthOptions o;
    o.arch = "gpt-oss";
    o.preset = "tiny";
    const std::string full = tmp("full"), two = tmp("two");
    convert::synth_model(o, full);
    o.n_layers = 2;
    const auto r = convert::synth_model(o, two);
    auto ff = gguf::File::open(full), f = gguf::File::open(two);
    EXPECT_EQ(ff.get_int("gpt-oss.block_count"), 4);
    EXPECT_EQ(f.get_int("gpt-oss.block_count"), 2);
    EXPECT_EQ(f.find_tensor("blk.2.attn_q.weight"), nullptr);
    for (const char* name :
         {"token_embd.weight", "output.weight", "blk.1.ffn_up_exps.weight", "blk.0.attn_q.weight"}) {
        EXPECT_EQ(f.tensor(name).shape, ff.tensor(name).shape) << name;
        EXPECT_EQ(f.tensor(name).type, ff.tensor(name).type) << name;
    }
    // Per layer 19 tensors; plus token_embd, output_norm, output.
    EXPECT_EQ(f.tensors().size(), 19u * 2u + 3u);
    EXPECT_NE(f.get_string("general.name").find("2 layers"), std::string::npos);
    uint64_t bytes = 0;
    for (const auto& t : f.tensors()) bytes += t.n_bytes;
    EXPECT_EQ(r.n_bytes, bytes);
    for (const auto& p : {full, two}) fs::remove(p);
    o.n_layers = -1;
    try {
        convert::synth_model(o, tmp("neg"));
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::INVALID_ARGUMENT);
        EXPECT_NE(std::string(e.what()).find("--layers"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace wo
