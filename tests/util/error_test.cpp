#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "util/error.h"
#include "util/mmap.h"

TEST(Error, CarriesStableCodeName) {
    wo::Error e(wo::Code::GGUF_INVALID, "bad magic at offset 0");
    EXPECT_EQ(e.code(), wo::Code::GGUF_INVALID);
    EXPECT_EQ(wo::code_name(e.code()), "GGUF_INVALID");
    EXPECT_STREQ(e.what(), "bad magic at offset 0");
    EXPECT_EQ(wo::code_name(wo::Code::QUEUE_FULL), "QUEUE_FULL");
}

TEST(MappedFile, MapsContentsAndRejectsMissing) {
    std::string path = ::testing::TempDir() + "/wo_mmap_test.bin";
    { std::ofstream(path, std::ios::binary) << "hello"; }
    wo::MappedFile m(path);
    ASSERT_EQ(m.size(), 5u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data()), 5), "hello");
    try {
        wo::MappedFile bad(path + ".missing");
        FAIL() << "expected IO_ERROR";
    } catch (const wo::Error& e) {
        EXPECT_EQ(e.code(), wo::Code::IO_ERROR);
    }
    std::remove(path.c_str());
}
