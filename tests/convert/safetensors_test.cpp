// The safetensors reader on hand-built files: a valid file reads back exactly, and every kind of
// corruption is CONVERT_FAILED naming the file and the tensor, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "convert/safetensors.h"
#include "util/error.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

// u64 header length, header JSON, data (the format, written independently of the reader).
std::string st_file(const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xFF);
    return out + header + data;
}

std::string f32_bytes(std::initializer_list<float> v) {
    std::string s;
    for (float f : v) s.append(reinterpret_cast<const char*>(&f), 4);
    return s;
}

class Safetensors : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("wo-st-" + std::to_string(::getpid()) + "-" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    void write(const std::string& name, const std::string& bytes) {
        std::ofstream(dir_ / name, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    }
    // Opening must fail with CONVERT_FAILED and a message containing every `needle`.
    void expect_error(std::initializer_list<std::string> needles) {
        try {
            convert::Checkpoint::open(dir_.string());
            ADD_FAILURE() << "no error";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), Code::CONVERT_FAILED) << e.what();
            for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
        }
    }
    fs::path dir_;
};

TEST_F(Safetensors, ReadsDtypesShapesAndValues) {
    const uint16_t f16_one = 0x3C00, bf16_m2 = 0xC000;
    std::string data = f32_bytes({1.5f, -2.25f, 3, 4});
    data.append(reinterpret_cast<const char*>(&f16_one), 2);
    data.append(reinterpret_cast<const char*>(&bf16_m2), 2);
    write("model.safetensors",
          st_file(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                  R"("b":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},"c":{"dtype":"BF16","shape":[1],"data_offsets":[18,20]}})",
                  data));
    auto ck = convert::Checkpoint::open(dir_.string());
    const auto& a = ck->get("a");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(a.at(0), 1.5f);
    EXPECT_EQ(a.at(1), -2.25f);
    EXPECT_EQ(a.at(3), 4.0f);
    EXPECT_EQ(ck->get("b").at(0), 1.0f);
    EXPECT_EQ(ck->get("c").at(0), -2.0f);
    EXPECT_EQ(ck->tensors().size(), 3u);
    try {
        ck->get("a", {4});
        ADD_FAILURE() << "wrong shape accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::CONVERT_FAILED);
        EXPECT_NE(std::string(e.what()).find("tensor a has shape [2, 2], expected [4]"), std::string::npos) << e.what();
    }
}

TEST_F(Safetensors, OffsetsOutsideTheFile) {
    write("model.safetensors", st_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", f32_bytes({1, 2})));
    expect_error({"model.safetensors", "tensor w", "data_offsets"});
}

TEST_F(Safetensors, SizeDisagreesWithShape) {
    write("model.safetensors", st_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f32_bytes({1, 2})));
    expect_error({"tensor w", "8 bytes", "expected 12"});
}

TEST_F(Safetensors, HeaderLongerThanFile) {
    std::string f = st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f32_bytes({1}));
    f[0] = char(0xFF);
    write("model.safetensors", f);
    expect_error({"model.safetensors", "header length"});
}

TEST_F(Safetensors, TruncatedAndGarbage) {
    write("model.safetensors", "abc");
    expect_error({"too short"});
    write("model.safetensors", st_file("{not json", ""));
    expect_error({"not valid JSON"});
    write("model.safetensors", st_file(R"({"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", f32_bytes({1})));
    expect_error({"tensor w", "unknown dtype F99"});
    write("model.safetensors", st_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", f32_bytes({1})));
    expect_error({"tensor w", "shape"});
}

TEST_F(Safetensors, ShardedIndex) {
    write("s1.safetensors", st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f32_bytes({7})));
    write("s2.safetensors", st_file(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f32_bytes({8})));
    write("model.safetensors.index.json", R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
    auto ck = convert::Checkpoint::open(dir_.string());
    EXPECT_EQ(ck->get("a").at(0), 7.0f);
    EXPECT_EQ(ck->get("b").at(0), 8.0f);
    // The index names a shard that does not hold the tensor.
    write("model.safetensors.index.json", R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}})");
    expect_error({"tensor b", "s1.safetensors"});
    write("model.safetensors.index.json", R"({"weight_map":{"a":"../x.safetensors"}})");
    expect_error({"outside the folder"});
    write("model.safetensors.index.json", R"({"weight_map":{"a":"missing.safetensors"}})");
    expect_error({"missing.safetensors"});
}

TEST_F(Safetensors, NoCheckpoint) { expect_error({"neither model.safetensors nor"}); }

}  // namespace
}  // namespace wo
