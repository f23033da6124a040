// The reader against hand-assembled files: each malformed field is reported as GGUF_INVALID with
// what is wrong and the byte offset (computed by hand from the spec layout), never read past.
#include <gtest/gtest.h>

#include <functional>

#include "gguf/gguf.h"
#include "gguf_test_util.h"
#include "util/error.h"

namespace wo::gguf_test {
namespace {

using gguf::File;

std::string parse_error(const std::vector<uint8_t>& b) {
    try {
        File::parse(b.data(), b.size());
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::GGUF_INVALID) << e.what();
        return e.what();
    }
    return "(parsed)";
}

#define EXPECT_PARSE_ERROR(bytes, needle)                                                   \
    do {                                                                                    \
        const std::string msg_ = parse_error(bytes);                                        \
        EXPECT_NE(msg_.find(needle), std::string::npos) << "message: " << msg_;             \
    } while (0)

TEST(GgufReader, Header) {
    EXPECT_PARSE_ERROR(std::vector<uint8_t>{}, "truncated magic (needs 4 bytes, 0 left) at byte offset 0");
    Bytes bad_magic;
    bad_magic.b = {'G', 'G', 'U', 'X'};
    bad_magic.u32(3).u64(0).u64(0);
    EXPECT_PARSE_ERROR(bad_magic.b, "bad magic at byte offset 0");
    EXPECT_PARSE_ERROR(Bytes().header(0, 0, 1).b, "GGUF version 1 is not supported (only versions 2 and 3) at byte offset 4");
    EXPECT_PARSE_ERROR(Bytes().header(0, 0, 4).b, "unsupported GGUF version 4 ");
    EXPECT_PARSE_ERROR(Bytes().header(0, 0, 0x03000000).b, "unsupported GGUF version 50331648");
    Bytes truncated;
    truncated.header(0, 0).b.resize(20);
    EXPECT_PARSE_ERROR(truncated.b, "truncated metadata count (needs 8 bytes, 4 left) at byte offset 16");
    EXPECT_PARSE_ERROR(Bytes().header(0, 1ull << 60).b, "metadata count 1152921504606846976 cannot fit in the 0 bytes left at byte offset 16");
    EXPECT_PARSE_ERROR(Bytes().header(1000, 0).b, "tensor count 1000 cannot fit in the 0 bytes left at byte offset 8");
    // Versions 2 and 3 share the little-endian layout; an empty file of either parses.
    EXPECT_EQ(File::parse(Bytes().header(0, 0, 2).b.data(), 24).version(), 2u);
    EXPECT_EQ(File::parse(Bytes().header(0, 0, 3).b.data(), 24).version(), 3u);
}

TEST(GgufReader, MetadataValues) {
    // Key at 24: u64 length + "k" = 9 bytes, then the u32 type at 33 and the value at 37.
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).u64(1000).zeros(16).b,
                       "metadata key length 1000 exceeds the 16 bytes left in the file at byte offset 24");
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).str("k").u32(13).b, "metadata key 'k': unknown value type 13 at byte offset 33");
    // Names from the file are escaped: a NUL must not cut the message short.
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).str(std::string("a\0\\b", 4)).u32(13).b,
                       "metadata key 'a\\x00\\x5cb': unknown value type 13 at byte offset 36");
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).str("k").u32(4).u8(1).b, "truncated uint32 value (needs 4 bytes, 1 left) at byte offset 37");
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).str("k").u32(7).u8(2).b, "metadata key 'k': bool value 2 is neither 0 nor 1 at byte offset 37");
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).str("k").u32(8).u64(5).u8('a').b, "string value length 5 exceeds the 1 bytes left in the file at byte offset 37");
    // Array: element type at 37, count at 41.
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).str("k").u32(9).u32(4).u64(1ull << 62).b,
                       "metadata key 'k': array of 4611686018427387904 UINT32 cannot fit in the 0 bytes left in the file at byte offset 41");
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(3).zeros(16).b,
                       "array of 3 STRING cannot fit in the 16 bytes left");
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).str("k").u32(9).u32(77).u64(0).b, "unknown array element type 77 at byte offset 37");
    EXPECT_PARSE_ERROR(Bytes().header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).b,
                       "duplicate metadata key 'k' at byte offset 41");
}

TEST(GgufReader, SanityLimits) {
    EXPECT_PARSE_ERROR(Bytes().header(0, 1).u64(gguf::kMaxStringBytes + 1).zeros(64).b,
                       "metadata key length 67108865 exceeds the limit of 67108864 bytes at byte offset 24");
    EXPECT_PARSE_ERROR(Bytes().header(gguf::kMaxTensors + 1, 0).b, "tensor count 1048577 exceeds the limit of 1048576 at byte offset 8");
    // One more value than allowed: the array itself counts, plus its items.
    Bytes b;
    b.header(0, 1).str("k").u32(9).u32(0).u64(gguf::kMaxMetadataValues).zeros(gguf::kMaxMetadataValues);
    EXPECT_PARSE_ERROR(b.b, "metadata key 'k': more than 8388608 metadata values in the file at byte offset " +
                                std::to_string(49 + gguf::kMaxMetadataValues - 1));
    b.b.clear();
    b.header(0, 1).str("k").u32(9).u32(0).u64(gguf::kMaxMetadataValues - 1).zeros(gguf::kMaxMetadataValues - 1);
    EXPECT_EQ(std::get<gguf::Array>(File::parse(b.b.data(), b.b.size()).find("k")->data).items.size(),
              gguf::kMaxMetadataValues - 1);
}

TEST(GgufReader, NestingDepthIsBounded) {
    auto nested = [](int levels) {
        Bytes b;
        b.header(0, 1).str("n").u32(9);
        for (int i = 1; i < levels; ++i) b.u32(9).u64(1);  // an array holding one array
        b.u32(5).u64(1).u32(42);                         // the innermost: one INT32
        return b.b;
    };
    const auto ok = nested(gguf::kMaxArrayDepth);
    const File f = File::parse(ok.data(), ok.size());
    const Value* v = f.find("n");
    for (int i = 1; i < gguf::kMaxArrayDepth; ++i) v = &std::get<gguf::Array>(v->data).items.at(0);
    EXPECT_EQ(std::get<int64_t>(std::get<gguf::Array>(v->data).items.at(0).data), 42);
    EXPECT_PARSE_ERROR(nested(gguf::kMaxArrayDepth + 1), "metadata key 'n': arrays nested deeper than 8 at byte offset");
    // A file that claims a million levels stops at the bound, with no deep recursion.
    Bytes deep;
    deep.header(0, 1).str("n").u32(9);
    for (int i = 0; i < 1000000; ++i) deep.u32(9).u64(1);
    EXPECT_PARSE_ERROR(deep.b, "nested deeper than 8");
}

TEST(GgufReader, Alignment) {
    auto with = [](uint32_t type, uint64_t v) {
        Bytes b;
        b.header(0, 1).str("general.alignment").u32(type);
        type == 10 ? b.u64(v) : b.u32(static_cast<uint32_t>(v));
        return b.b;
    };
    // The value sits at 24 + 8 + 17 + 4 = 53.
    EXPECT_PARSE_ERROR(with(4, 0), "general.alignment 0 is not a nonzero power of two at byte offset 53");
    EXPECT_PARSE_ERROR(with(4, 48), "general.alignment 48 is not a nonzero power of two at byte offset 53");
    EXPECT_PARSE_ERROR(with(6, 0x42000000), "general.alignment has type FLOAT32, expected an integer at byte offset 53");
    EXPECT_PARSE_ERROR(with(5, uint32_t(-64)), "general.alignment 0 is not");
    const auto ok = with(4, 64);
    EXPECT_EQ(File::parse(ok.data(), ok.size()).alignment(), 64u);
    EXPECT_PARSE_ERROR(with(10, 3), "general.alignment 3 is not");
}

// One tensor info after an empty metadata section: the name at 24, n_dims at 24 + 8 + len(name).
std::vector<uint8_t> one_tensor(std::vector<uint64_t> shape, uint32_t type, uint64_t offset, size_t data_bytes) {
    Bytes b;
    b.header(1, 0).tensor("w", std::move(shape), type, offset).pad_to(32).zeros(data_bytes);
    return b.b;
}

TEST(GgufReader, TensorInfos) {
    // "w": n_dims at 33, dims from 37.
    EXPECT_PARSE_ERROR(one_tensor({}, 0, 0, 0), "tensor 'w': n_dims 0 is not in 1..4 at byte offset 33");
    EXPECT_PARSE_ERROR(one_tensor({1, 1, 1, 1, 1}, 0, 0, 32), "tensor 'w': n_dims 5 is not in 1..4 at byte offset 33");
    EXPECT_PARSE_ERROR(one_tensor({4, 0}, 0, 0, 32), "tensor 'w': dimension 1 is 0 at byte offset 45");
    EXPECT_PARSE_ERROR(one_tensor({1ull << 32, 1ull << 32}, 0, 0, 0), "tensor 'w': element count overflows at byte offset 45");
    EXPECT_PARSE_ERROR(one_tensor({1ull << 32, 1ull << 31}, 0, 0, 0), "element count overflows");  // > INT64_MAX
    EXPECT_PARSE_ERROR(one_tensor({1ull << 40, 1ull << 22}, 0, 0, 0), "byte size overflows");  // 2^62 F32
    EXPECT_PARSE_ERROR(one_tensor({4}, 99, 0, 32), "tensor 'w': unknown ggml type 99 at byte offset 45");
    EXPECT_PARSE_ERROR(one_tensor({4}, 4, 0, 32), "unknown ggml type 4");  // a retired id (Q4_2)
    EXPECT_PARSE_ERROR(one_tensor({48}, 8, 0, 64), "tensor 'w': ne0 48 is not a multiple of the Q8_0 block size 32 at byte offset 37");
    EXPECT_PARSE_ERROR(one_tensor({4}, 0, 16, 64), "tensor 'w': data offset 16 is not a multiple of the alignment 32 at byte offset 49");
    EXPECT_PARSE_ERROR(one_tensor({4}, 0, 0, 15), "tensor 'w': 16 bytes at data offset 0 run past the end of the file (79 bytes) at byte offset 49");
    EXPECT_PARSE_ERROR(one_tensor({4}, 0, UINT64_MAX - 31, 16), "run past the end of the file");
    // Exactly filling the file is fine; a truncated data section is not.
    const auto exact = one_tensor({4}, 0, 0, 16);
    EXPECT_EQ(File::parse(exact.data(), exact.size()).tensor("w").n_bytes, 16u);
    auto no_data = one_tensor({4}, 0, 0, 0);
    no_data.resize(60);
    EXPECT_PARSE_ERROR(no_data, "data section at 64 starts past the end of the file (60 bytes) at byte offset 57");
    Bytes dup;
    dup.header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad_to(32).zeros(64);
    EXPECT_PARSE_ERROR(dup.b, "duplicate tensor name 'w' at byte offset 57");
}

TEST(GgufReader, VocabOnlyFileMayEndBeforeThePadding) {
    Bytes b;
    b.header(0, 1).str("general.architecture").u32(8).str("llama");
    const File f = File::parse(b.b.data(), b.b.size());
    EXPECT_EQ(f.architecture(), "llama");
    EXPECT_TRUE(f.tensors().empty());
}

TEST(GgufReader, OpenNamesThePath) {
    const auto path = (scratch_dir() / "bad.gguf").string();
    std::FILE* fp = std::fopen(path.c_str(), "wb");
    std::fputs("GGUF", fp);
    std::fclose(fp);
    try {
        File::open(path);
        ADD_FAILURE() << "parsed";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::GGUF_INVALID);
        EXPECT_EQ(std::string(e.what()), path + ": truncated version (needs 4 bytes, 0 left) at byte offset 4");
    }
    try {
        File::open(path + ".missing");
        ADD_FAILURE() << "opened";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::IO_ERROR);
    }
}

void expect_accessor_error(const std::function<void()>& fn, const std::string& msg) {
    try {
        fn();
        ADD_FAILURE() << "no error; expected: " << msg;
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::GGUF_INVALID);
        EXPECT_EQ(std::string(e.what()), msg);
    }
}

TEST(GgufReader, TypedAccessorsNameTheKey) {
    Writer w;
    w.set("n.u32", Value::u32(7));
    w.set("n.i32", Value::i32(-3));
    w.set("n.u64", Value::u64(UINT64_MAX));
    w.set("n.f32", Value::f32(0.25f));
    w.set("s", Value::str("x"));
    w.set("b", Value::boolean(true));
    w.set("a.i8", Value::array(ValueType::INT8, {Value::i8(-1), Value::i8(2)}));
    w.set("a.s", Value::string_array({"p", "q"}));
    w.add_tensor("t", GgmlType::F32, {1}, std::vector<uint8_t>(4));
    const auto bytes = w.to_bytes();
    const File f = File::parse(bytes.data(), bytes.size());

    EXPECT_EQ(f.get_int("n.u32"), 7);
    EXPECT_EQ(f.get_uint("n.u32"), 7u);
    EXPECT_EQ(f.get_int("n.i32"), -3);
    EXPECT_EQ(f.get_float("n.u32"), 7.0);
    EXPECT_EQ(f.get_float("n.f32"), 0.25);
    EXPECT_EQ(f.get_int_array("a.i8"), (std::vector<int64_t>{-1, 2}));
    EXPECT_EQ(f.get_float_array("a.i8"), (std::vector<float>{-1.0f, 2.0f}));
    EXPECT_EQ(f.get_string_array("a.s"), (std::vector<std::string>{"p", "q"}));
    EXPECT_EQ(f.find_int("missing"), std::nullopt);
    EXPECT_EQ(f.find_string("s"), "x");
    EXPECT_EQ(f.find_bool("b"), true);
    EXPECT_EQ(f.find_float("n.f32"), 0.25);
    EXPECT_EQ(f.find_tensor("nope"), nullptr);

    expect_accessor_error([&] { f.get_string("missing.key"); }, "metadata key 'missing.key' is missing");
    expect_accessor_error([&] { f.get_string("n.u32"); }, "metadata key 'n.u32' has type UINT32, expected STRING");
    expect_accessor_error([&] { f.get_int("s"); }, "metadata key 's' has type STRING, expected an integer");
    expect_accessor_error([&] { f.get_int("n.u64"); }, "metadata key 'n.u64': value 18446744073709551615 does not fit in int64");
    expect_accessor_error([&] { f.get_uint("n.i32"); }, "metadata key 'n.i32': value -3 is negative, expected an unsigned integer");
    expect_accessor_error([&] { f.get_bool("n.u32"); }, "metadata key 'n.u32' has type UINT32, expected BOOL");
    expect_accessor_error([&] { f.get_float("b"); }, "metadata key 'b' has type BOOL, expected a number");
    expect_accessor_error([&] { f.get_string_array("a.i8"); }, "metadata key 'a.i8': array of INT8, expected an array of STRING");
    expect_accessor_error([&] { f.get_int_array("s"); }, "metadata key 's' has type STRING, expected an array of integers");
    expect_accessor_error([&] { f.get_int_array("a.s"); }, "metadata key 'a.s' has type STRING, expected an integer");
    expect_accessor_error([&] { f.find_int("s"); }, "metadata key 's' has type STRING, expected an integer");
    expect_accessor_error([&] { f.tensor("blk.0.nope"); }, "tensor 'blk.0.nope' is missing");
    expect_accessor_error([&] { f.architecture(); }, "metadata key 'general.architecture' is missing");
}

}  // namespace
}  // namespace wo::gguf_test
