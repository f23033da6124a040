// Thousands of truncated and byte-corrupted variants of valid files: every one either parses (and
// then every value and every tensor byte can be read) or throws Error(GGUF_INVALID) with a byte
// offset, quickly. A crash, a hang or another exception fails the test.
#include <gtest/gtest.h>

#include <chrono>

#include "gguf/gguf.h"
#include "gguf_test_util.h"
#include "util/error.h"

namespace wo::gguf_test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kMaxCaseSeconds = 1.0;
constexpr double kMaxTotalSeconds = 60.0;

uint64_t touch_value(const Value& v) {
    if (const auto* a = std::get_if<gguf::Array>(&v.data)) {
        uint64_t h = a->items.size();
        for (const Value& item : a->items) h = h * 31 + touch_value(item);
        return h;
    }
    if (const auto* s = std::get_if<std::string>(&v.data)) return s->size() + (s->empty() ? 0 : uint8_t((*s)[0]));
    if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
    if (const auto* i = std::get_if<int64_t>(&v.data)) return static_cast<uint64_t>(*i);
    if (const auto* b = std::get_if<bool>(&v.data)) return *b;
    return static_cast<uint64_t>(std::get<double>(v.data) == 0.0);
}

// Reads every metadata value and every byte of every tensor's data.
uint64_t touch_all(const gguf::File& f) {
    uint64_t h = 0;
    for (const auto& [k, v] : f.metadata()) h += k.size() + touch_value(v);
    for (const auto& t : f.tensors()) {
        const uint8_t* p = f.tensor_data(t);
        for (uint64_t i = 0; i < t.n_bytes; ++i) h += p[i];
    }
    return h;
}

struct Tally {
    int parsed = 0, rejected = 0;
    double total = 0, worst = 0;
};

void check_case(const uint8_t* data, size_t size, const std::string& what, Tally& tally) {
    const auto t0 = Clock::now();
    try {
        const gguf::File f = gguf::File::parse(data, size);
        touch_all(f);
        ++tally.parsed;
    } catch (const Error& e) {
        ASSERT_EQ(e.code(), Code::GGUF_INVALID) << what << ": " << e.what();
        ASSERT_NE(std::string(e.what()).find(" at byte offset "), std::string::npos) << what << ": " << e.what();
        ++tally.rejected;
    } catch (const std::exception& e) {
        FAIL() << what << ": unexpected exception " << e.what();
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    tally.total += s;
    tally.worst = std::max(tally.worst, s);
    ASSERT_LT(s, kMaxCaseSeconds) << what;
}

// Values that stress length, count and offset fields when written over one.
constexpr uint64_t kNasty[] = {0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1ull << 32, 1ull << 62,
                               0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFF0ull};

void corrupt(std::vector<uint8_t> bytes, const std::string& name, uint64_t seed, Tally& tally) {
    const gguf::File clean = gguf::File::parse(bytes.data(), bytes.size());
    // Most damage goes to the header, where the parser makes its decisions.
    const uint64_t header = clean.data_offset();
    Rng rng(seed);

    // Truncations: every length through the header (sampled when it is long), some in the data.
    const uint64_t step = header > 1500 ? header / 1500 + 1 : 1;
    for (uint64_t n = 0; n < header; n += step) {
        check_case(bytes.data(), n, name + " truncated to " + std::to_string(n), tally);
        if (::testing::Test::HasFatalFailure()) return;
    }
    for (int i = 0; i < 200; ++i) {
        const uint64_t n = header + rng.below(bytes.size() - header);
        check_case(bytes.data(), n, name + " truncated to " + std::to_string(n), tally);
        if (::testing::Test::HasFatalFailure()) return;
    }

    // Byte flips and overwritten fields, each applied to the clean file.
    const std::vector<uint8_t> clean_bytes = bytes;
    for (int i = 0; i < 2500; ++i) {
        const uint64_t pos = rng.below(10) == 0 ? rng.below(bytes.size()) : rng.below(header);
        const uint64_t field = std::min<uint64_t>(8, bytes.size() - pos);
        std::string what = name + " case " + std::to_string(i) + " at " + std::to_string(pos);
        switch (rng.below(4)) {
            case 0: bytes[pos] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
            case 1: bytes[pos] = static_cast<uint8_t>(rng.next()); break;
            case 2: {  // a whole little-endian field
                const uint64_t v = kNasty[rng.below(std::size(kNasty))];
                std::memcpy(bytes.data() + pos, &v, field);
                break;
            }
            default:  // several scattered bytes
                for (int k = 0; k < 4; ++k) bytes[rng.below(header)] = static_cast<uint8_t>(rng.next());
        }
        check_case(bytes.data(), bytes.size(), what, tally);
        if (::testing::Test::HasFatalFailure()) return;
        std::memcpy(bytes.data(), clean_bytes.data(), bytes.size());
    }
}

TEST(GgufCorruption, TruncatedAndFlippedFilesFailCleanly) {
    struct Source {
        std::string name;
        std::vector<uint8_t> bytes;
    };
    std::vector<Source> sources = {
        {"every-type/32", every_type_writer(32).to_bytes()},
        {"every-type/64", every_type_writer(64).to_bytes()},
        {"gpt-oss", gptoss_writer().to_bytes()},
    };
    Tally tally;
    uint64_t seed = 20261124;
    for (auto& s : sources) {
        corrupt(s.bytes, s.name, seed++, tally);
        if (HasFatalFailure()) return;
    }
    const int cases = tally.parsed + tally.rejected;
    std::printf("corruption: %d cases (%d parsed, %d rejected), %.3f s total, worst case %.2f ms\n", cases,
                tally.parsed, tally.rejected, tally.total, tally.worst * 1e3);
    EXPECT_GT(cases, 5000);
    EXPECT_GT(tally.parsed, 100);  // corruption of data or harmless fields must still parse
    EXPECT_GT(tally.rejected, 1000);
    EXPECT_LT(tally.total, kMaxTotalSeconds);
}

}  // namespace
}  // namespace wo::gguf_test
