// WO_TAP=<dir>: the CPU backend writes named intermediates as NumPy .npy files
// (<step>-<name>-<layer>.npy) that the transformers comparison scripts load as they are.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "model/tiny_models.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wo {
namespace {

std::string read_all(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

TEST(Tap, WritesNamedIntermediatesPerStep) {
    const auto dir = std::filesystem::temp_directory_path() / ("wo-tap-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    ::setenv("WO_TAP", dir.c_str(), 1);
    auto t = test::load_tiny({.arch = "gpt-oss"});
    ::unsetenv("WO_TAP");
    t.model->reserve(1, 8);
    std::vector<float> lg;
    t.model->forward({{1, 0, 0, false}, {2, 1, 0, true}, {3, 2, 0, false}}, lg);
    t.model->forward({{4, 3, 0, true}}, lg);

    const std::string a = read_all(dir / "0001-attn_norm-0.npy");
    ASSERT_GT(a.size(), 10u);
    EXPECT_EQ(a.substr(0, 6), "\x93NUMPY");
    const size_t header = 10 + static_cast<uint8_t>(a[8]) + 256 * static_cast<uint8_t>(a[9]);
    EXPECT_EQ(header % 64, 0u) << "npy headers are padded to 64 bytes";
    EXPECT_NE(a.find("'shape': (3, 64)"), std::string::npos) << a.substr(0, header);
    EXPECT_EQ(a.size(), header + 3 * 64 * sizeof(float));
    for (const char* name :
         {"0001-l_out-1.npy", "0001-result_norm--1.npy", "0002-attn_out-1.npy", "0002-ffn_inp-0.npy"})
        EXPECT_TRUE(std::filesystem::exists(dir / name)) << name;
    EXPECT_NE(read_all(dir / "0002-l_out-1.npy").find("'shape': (1, 64)"), std::string::npos);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace wo
