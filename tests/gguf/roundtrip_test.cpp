// Writer -> reader round trips, and the writer's bytes against the GGUF spec assembled by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "gguf/gguf.h"
#include "gguf_test_util.h"
#include "util/error.h"

namespace wo::gguf_test {
namespace {

using gguf::File;

// Deep equality of values, including the on-disk type at every nesting level. Floats compare by
// bit pattern (as doubles), so -0 and NaN round trips are checked exactly.
void expect_same(const Value& a, const Value& b, const std::string& where) {
    ASSERT_EQ(a.type, b.type) << where;
    ASSERT_EQ(a.data.index(), b.data.index()) << where;
    if (const auto* x = std::get_if<double>(&a.data)) {
        const double y = std::get<double>(b.data);
        EXPECT_EQ(std::memcmp(x, &y, sizeof y), 0) << where << ": " << *x << " vs " << y;
    } else if (const auto* arr = std::get_if<gguf::Array>(&a.data)) {
        const auto& brr = std::get<gguf::Array>(b.data);
        ASSERT_EQ(arr->elem_type, brr.elem_type) << where;
        ASSERT_EQ(arr->items.size(), brr.items.size()) << where;
        for (size_t i = 0; i < arr->items.size(); ++i)
            expect_same(arr->items[i], brr.items[i], where + "[" + std::to_string(i) + "]");
    } else if (const auto* u = std::get_if<uint64_t>(&a.data)) {
        EXPECT_EQ(*u, std::get<uint64_t>(b.data)) << where;
    } else if (const auto* s = std::get_if<int64_t>(&a.data)) {
        EXPECT_EQ(*s, std::get<int64_t>(b.data)) << where;
    } else if (const auto* t = std::get_if<bool>(&a.data)) {
        EXPECT_EQ(*t, std::get<bool>(b.data)) << where;
    } else {
        EXPECT_EQ(std::get<std::string>(a.data), std::get<std::string>(b.data)) << where;
    }
}

TEST(GgufWriter, BytesMatchTheSpecLayout) {
    Writer w;
    w.set("a", Value::u32(7));
    w.set("s", Value::str("hi"));
    w.add_tensor("x", GgmlType::F32, {2}, std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8});
    Bytes e;
    e.header(1, 2).str("a").u32(4).u32(7).str("s").u32(8).str("hi");
    e.tensor("x", {2}, 0, 0).pad_to(32);
    for (uint8_t i = 1; i <= 8; ++i) e.u8(i);
    e.pad_to(32);
    EXPECT_EQ(w.to_bytes(), e.b);
}

TEST(GgufWriter, NonDefaultAlignmentIsWrittenFirstAndUsed) {
    Writer w(64);
    w.set("k", Value::i8(-1));
    w.add_tensor("a", GgmlType::F16, {3}, std::vector<uint8_t>(6, 0xAA));
    w.add_tensor("b", GgmlType::F32, {1}, std::vector<uint8_t>(4, 0xBB));
    Bytes e;
    e.header(2, 2).str("general.alignment").u32(4).u32(64).str("k").u32(1).u8(0xFF);
    e.tensor("a", {3}, 1, 0).tensor("b", {1}, 0, 64).pad_to(64);
    for (int i = 0; i < 6; ++i) e.u8(0xAA);
    e.pad_to(64);
    for (int i = 0; i < 4; ++i) e.u8(0xBB);
    e.pad_to(64);
    EXPECT_EQ(w.to_bytes(), e.b);
}

// Bytes per block from ggml's block structs (ggml-common.h), written out here so the type table
// in gguf/types.h is checked against an independent statement of the layouts.
uint64_t spec_block_bytes(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return 4;
        case GgmlType::F16: case GgmlType::BF16: return 2;
        case GgmlType::Q4_0: return 2 + 16;            // d, qs[16]
        case GgmlType::Q5_0: return 2 + 4 + 16;        // d, qh[4], qs[16]
        case GgmlType::Q8_0: return 2 + 32;            // d, qs[32]
        case GgmlType::Q4_K: return 2 + 2 + 12 + 128;  // d, dmin, scales[12], qs[128]
        case GgmlType::Q5_K: return 2 + 2 + 12 + 32 + 128;
        case GgmlType::Q6_K: return 128 + 64 + 16 + 2;  // ql, qh, scales, d
        case GgmlType::MXFP4: return 1 + 16;            // e, qs[16]
        default: return traits(t).type_size;
    }
}

class RoundTrip : public ::testing::TestWithParam<uint64_t> {};

TEST_P(RoundTrip, EveryValueTypeAndTensorType) {
    const uint64_t align = GetParam();
    Writer w = every_type_writer(align);
    const std::vector<uint8_t> bytes = w.to_bytes();
    const File f = File::parse(bytes.data(), bytes.size());
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), align);
    EXPECT_EQ(f.data_offset() % align, 0u);
    EXPECT_EQ(bytes.size() % align, 0u);

    // Tensors must not disturb the metadata: the same keys without tensors parse identically.
    Writer kv_only_writer(align);
    add_every_value_type(kv_only_writer);
    const std::vector<uint8_t> kv_only = kv_only_writer.to_bytes();
    const File ref = File::parse(kv_only.data(), kv_only.size());
    ASSERT_EQ(f.metadata().size(), ref.metadata().size());
    for (size_t k = 0; k < ref.metadata().size(); ++k) {
        EXPECT_EQ(f.metadata()[k].first, ref.metadata()[k].first);
        expect_same(f.metadata()[k].second, ref.metadata()[k].second, ref.metadata()[k].first);
    }

    // Values as set, in insertion order, with general.alignment first when it is not the default.
    size_t i = 0;
    if (align != 32) {
        EXPECT_EQ(f.metadata()[0].first, "general.alignment");
        EXPECT_EQ(f.metadata()[0].second.type, ValueType::UINT32);
        EXPECT_EQ(f.get_uint("general.alignment"), align);
        ++i;
    }
    EXPECT_EQ(f.metadata()[i].first, "general.architecture");
    EXPECT_EQ(f.metadata()[i + 1].first, "t.u8");
    EXPECT_EQ(f.metadata()[i + 2].first, "t.i8");
    EXPECT_EQ(f.metadata().back().first, "t.nested3");
    EXPECT_EQ(f.get_string("t.str_utf8"), "\xC4\xA0world \xE2\x9C\x93 \xE6\x97\xA5\xE6\x9C\xAC \"quoted\"\n");
    EXPECT_EQ(f.get_uint("t.u64"), UINT64_MAX);
    EXPECT_EQ(f.get_int("t.i64"), INT64_MIN);
    EXPECT_EQ(f.get_int("t.i8"), -128);
    EXPECT_EQ(f.get_uint("t.u16"), 65535u);
    EXPECT_EQ(f.get_int("t.i16"), -32768);
    EXPECT_EQ(f.get_uint("t.u32"), 4294967295u);
    EXPECT_EQ(f.get_int("t.i32"), INT32_MIN);
    EXPECT_EQ(f.get_float("t.f32"), static_cast<double>(3.14159274f));
    EXPECT_EQ(f.get_float("t.f32_tiny"), static_cast<double>(1e-45f));
    EXPECT_TRUE(std::isinf(f.get_float("t.f32_inf")) && f.get_float("t.f32_inf") < 0);
    EXPECT_TRUE(std::signbit(f.get_float("t.f64_negzero")));
    EXPECT_EQ(f.get_float("t.f64"), -1.0e300);
    EXPECT_TRUE(f.get_bool("t.bool_true"));
    EXPECT_FALSE(f.get_bool("t.bool_false"));
    EXPECT_EQ(f.get_string("t.str_empty"), "");
    EXPECT_EQ(f.get_int_array("t.arr_i32"), (std::vector<int64_t>{-5, 0, 5, INT32_MAX}));
    EXPECT_EQ(f.get_float_array("t.arr_f32"), (std::vector<float>{0.5f, -2.25f, 1e-30f}));
    EXPECT_EQ(f.get_string_array("t.arr_str").size(), 20u);
    EXPECT_EQ(f.get_string_array("t.arr_str")[19], "s19");
    EXPECT_TRUE(f.get_int_array("t.arr_empty").empty());

    // Deep, typed comparison against values built independently of the file.
    const std::vector<std::pair<std::string, Value>> want = {
        {"t.nested", Value::array(ValueType::ARRAY, {Value::i32_array({1, 2}), Value::i32_array({}), Value::i32_array({3})})},
        {"t.nested3", Value::array(ValueType::ARRAY, {Value::array(ValueType::ARRAY, {Value::string_array({"x"}), Value::string_array({"y", "z"})})})},
        {"t.nested_mixed", Value::array(ValueType::ARRAY, {Value::string_array({"a", "b"}), Value::f32_array({1.5f})})},
        {"t.arr_u64", Value::array(ValueType::UINT64, {Value::u64(1ull << 63), Value::u64(3)})},
        {"t.arr_bool", Value::array(ValueType::BOOL, {Value::boolean(true), Value::boolean(false)})},
        {"t.arr_i16", Value::array(ValueType::INT16, {Value::i16(-2), Value::i16(300)})},
        {"t.f64_negzero", Value::f64(-0.0)},
    };
    for (const auto& [key, v] : want) {
        const Value* got = f.find(key);
        ASSERT_NE(got, nullptr) << key;
        expect_same(*got, v, key);
    }

    // Tensors: every type, sizes from the spec, aligned offsets, data exactly as the fillers wrote.
    const auto types = all_tensor_types();
    ASSERT_EQ(f.tensors().size(), types.size() + 1);
    uint64_t prev_end = 0;
    for (size_t k = 0; k < types.size(); ++k) {
        const auto& t = f.tensors()[k];
        const uint64_t bs = traits(types[k]).block_size;
        EXPECT_EQ(t.name, "t." + std::string(type_name(types[k])));
        EXPECT_EQ(t.type, types[k]);
        EXPECT_EQ(t.shape, (std::vector<uint64_t>{bs * 2, 3}));
        EXPECT_EQ(t.n_elements, bs * 6);
        EXPECT_EQ(t.n_bytes, 6 * spec_block_bytes(types[k])) << t.name;
        EXPECT_EQ(t.offset % align, 0u);
        EXPECT_GE(t.offset, prev_end);
        EXPECT_LT(t.offset, prev_end + align);
        prev_end = t.offset + t.n_bytes;
        std::vector<uint8_t> want_data(t.n_bytes);
        fill_tensor(t.type, want_data.data(), want_data.size(), 7 * 1000 + k);
        EXPECT_EQ(std::memcmp(f.tensor_data(t), want_data.data(), want_data.size()), 0) << t.name;
    }
    const auto& t4 = f.tensor("t.4d");
    EXPECT_EQ(t4.shape, (std::vector<uint64_t>{3, 2, 2, 5}));
    EXPECT_EQ(t4.n_bytes, 3u * 2 * 2 * 5 * 2);
}

INSTANTIATE_TEST_SUITE_P(Alignments, RoundTrip, ::testing::Values(32, 64));

TEST(GgufWriter, WriteToDiskEqualsToBytesAndFillersRunOncePerWrite) {
    int calls = 0;
    Writer w(64);
    w.set("general.architecture", Value::str("x"));
    w.add_tensor("big", GgmlType::Q8_0, {64, 100}, [&calls](uint8_t* dst, size_t n) {
        ++calls;
        fill_tensor(GgmlType::Q8_0, dst, n, 42);
    });
    const auto path = (scratch_dir() / "write.gguf").string();
    w.write(path);
    EXPECT_EQ(calls, 1);
    const auto bytes = w.to_bytes();
    EXPECT_EQ(calls, 2);
    const std::string disk = read_text(path);
    ASSERT_EQ(disk.size(), bytes.size());
    EXPECT_EQ(std::memcmp(disk.data(), bytes.data(), bytes.size()), 0);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    const File f = File::open(path);
    EXPECT_EQ(f.tensor("big").n_bytes, 100u * 2 * 34);
    EXPECT_EQ(f.file_size(), bytes.size());
}

TEST(GgufWriter, SetReplacesInPlaceKeepingOrder) {
    Writer w;
    w.set("a", Value::u32(1));
    w.set("b", Value::u32(2));
    w.set("a", Value::str("again"));
    const auto bytes = w.to_bytes();
    const File f = File::parse(bytes.data(), bytes.size());
    ASSERT_EQ(f.metadata().size(), 2u);
    EXPECT_EQ(f.metadata()[0].first, "a");
    EXPECT_EQ(f.get_string("a"), "again");
    EXPECT_EQ(f.metadata()[1].first, "b");
}

void expect_invalid_argument(const std::function<void()>& fn, const std::string& needle) {
    try {
        fn();
        ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::INVALID_ARGUMENT) << e.what();
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(GgufWriter, RejectsWhatItCannotWriteFaithfully) {
    expect_invalid_argument([] { Writer w(48); }, "alignment 48");
    expect_invalid_argument([] { Writer w(0); }, "alignment 0");
    Writer w;
    w.add_tensor("t", GgmlType::F32, {4}, std::vector<uint8_t>(16));
    expect_invalid_argument([&] { w.add_tensor("t", GgmlType::F32, {4}, std::vector<uint8_t>(16)); }, "'t': added twice");
    expect_invalid_argument([&] { w.add_tensor("u", GgmlType::F32, {4}, std::vector<uint8_t>(15)); }, "15 bytes given");
    expect_invalid_argument([&] { w.add_tensor("u", GgmlType::Q8_0, {48}, filler(GgmlType::Q8_0, 1)); }, "ne0 48");
    expect_invalid_argument([&] { w.add_tensor("u", GgmlType::F32, {}, filler(GgmlType::F32, 1)); }, "0 dimensions");
    expect_invalid_argument([&] { w.add_tensor("u", GgmlType::F32, {1, 2, 3, 4, 5}, filler(GgmlType::F32, 1)); }, "5 dimensions");
    expect_invalid_argument([&] { w.add_tensor("u", GgmlType::F32, {4, 0}, filler(GgmlType::F32, 1)); }, "dimension is 0");
    expect_invalid_argument([&] { w.add_tensor("u", GgmlType::F32, {1ull << 32, 1ull << 32}, filler(GgmlType::F32, 1)); }, "overflows");
    expect_invalid_argument([&] { w.set("k", Value{ValueType::UINT8, uint64_t{256}}); }, "'k' (UINT8): value 256 out of range");
    expect_invalid_argument([&] { w.set("k", Value{ValueType::INT32, uint64_t{1}}); }, "not held as a signed integer");
    expect_invalid_argument([&] { w.set("k", Value::array(ValueType::INT32, {Value::u32(1)})); }, "array of INT32 holds a UINT32");
    expect_invalid_argument([&] { w.set("general.alignment", Value::u32(64)); }, "general.alignment");
    Value deep = Value::i32_array({1});
    for (int i = 0; i < gguf::kMaxArrayDepth; ++i) deep = Value::array(ValueType::ARRAY, {deep});
    expect_invalid_argument([&] { w.set("deep", deep); }, "nested deeper");
    // What the writer still holds is intact.
    const auto bytes = w.to_bytes();
    EXPECT_EQ(File::parse(bytes.data(), bytes.size()).tensors().size(), 1u);
}

TEST(GgufWriter, WriteFailureIsIoErrorAndLeavesNoFile) {
    Writer w;
    w.set("a", Value::u8(1));
    try {
        w.write("/nonexistent-dir/x.gguf");
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::IO_ERROR);
        EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.gguf"), std::string::npos);
    }
}

}  // namespace
}  // namespace wo::gguf_test
