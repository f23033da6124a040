// Runs only where a GPU is present; elsewhere every test skips with a reason.
#include <gtest/gtest.h>

#include "backend/cuda/device.h"

namespace {

// GTEST_SKIP only leaves the function it is written in, so this is a macro.
#define REQUIRE_GPU() \
    if (wo::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: GPU tests skipped"

TEST(CudaDevice, ReportsHopperOrNewer) {
    REQUIRE_GPU();
    auto info = wo::cuda::device_info(0);
    EXPECT_FALSE(info.name.empty());
    EXPECT_GE(info.sm, 90) << info.name;
    EXPECT_GT(info.total_bytes, size_t{1} << 30);
}

TEST(CudaDevice, SaxpyKernelRuns) {
    REQUIRE_GPU();
    EXPECT_EQ(wo::cuda::saxpy_selftest(0, 100003), 0.0f);
}

}  // namespace
