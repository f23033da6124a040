// Tests that need the npm references (scripts/goldens) skip when run by hand without them, but
// `make test` sets WO_REQUIRE_GOLDENS=1 so that a missing reference fails instead of hiding.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>

#define WO_SKIP_WITHOUT_GOLDENS(...)                                      \
    do {                                                                  \
        if (std::getenv("WO_REQUIRE_GOLDENS")) FAIL() << __VA_ARGS__;    \
        GTEST_SKIP() << __VA_ARGS__;                                      \
    } while (0)
