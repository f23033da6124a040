// Latency bounds in the tests are set for uninstrumented builds. Under a sanitizer the same code
// runs several times slower (every memory access is checked), so scripts/sanitize sets
// WO_SANITIZER=asan|tsan and a bound written as latency_bound_ms(plain) grows by a fixed factor:
// 3 for ASan + UBSan (typically 2x slower), 5 for TSan (typically 5-15x, but the bounded paths
// here are mostly waiting on sockets). The plain build's bounds are unchanged (factor 1).
// docs/reliability.md ("Sanitizers and fuzzing") lists the measured margins.
#pragma once
#include <cstdlib>
#include <string_view>

namespace wo::test {

inline double sanitizer_slowdown() {
    const char* s = std::getenv("WO_SANITIZER");
    if (!s || !*s) return 1.0;
    return std::string_view(s) == "asan" ? 3.0 : 5.0;  // tsan, or a sanitizer not listed here
}

inline double latency_bound_ms(double plain_ms) { return plain_ms * sanitizer_slowdown(); }

}  // namespace wo::test
