// End to end: a GGUF file holding random blocks of every supported format, each tensor dumped by
// `worker-orcd inspect FILE --tensor NAME --dump OUT` and compared bit for bit with
// dequantize_row applied to the bytes this test wrote (checks row striding and data offsets in the
// CLI as well as the format dispatch).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/quant.h"

namespace wo::quant {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(InspectDump, EveryFormatDumpsAsDequantizeRowDecodes) {
    ASSERT_TRUE(fs::exists(WO_BINARY)) << "build worker-orcd first: " << WO_BINARY;
    const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                              GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::MXFP4};
    const uint64_t ne0 = 512, rows = 3;  // several rows, each a whole number of 256-blocks
    const fs::path dir = fs::temp_directory_path() / ("wo_quant_dump_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path file = dir / "formats.gguf";

    std::mt19937 rng(77);
    std::uniform_int_distribution<int> byte(0, 255);
    gguf::Writer w;
    w.set("general.architecture", gguf::Value::str("test"));
    std::vector<std::vector<uint8_t>> data;
    for (GgmlType t : types) {
        std::vector<uint8_t> bytes(row_bytes(t, ne0) * rows);
        for (auto& b : bytes) b = uint8_t(byte(rng));
        data.push_back(bytes);
        w.add_tensor("t." + std::string(type_name(t)), t, {ne0, rows}, std::move(bytes));
    }
    w.write(file.string());

    for (size_t k = 0; k < std::size(types); ++k) {
        const GgmlType t = types[k];
        const std::string name = "t." + std::string(type_name(t));
        const fs::path out = dir / (name + ".f32");
        const std::string cmd = std::string(WO_BINARY) + " inspect " + file.string() + " --tensor " + name +
                                " --dump " + out.string() + " > /dev/null 2>&1";
        ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
        const std::vector<uint8_t> dumped = read_all(out);
        std::vector<float> want(ne0 * rows);
        dequantize_row(t, data[k].data(), want.data(), int64_t(ne0 * rows));
        ASSERT_EQ(dumped.size(), want.size() * 4) << name;
        EXPECT_EQ(std::memcmp(dumped.data(), want.data(), dumped.size()), 0) << name;
    }
    fs::remove_all(dir);
}

}  // namespace
}  // namespace wo::quant
