// Files written by our Writer are read by an independent parser (@huggingface/gguf, through
// tests/golden/check-gguf.mjs) and by our reader; keys, types, values, tensor infos and the data
// offset must agree. node and the package are required: make test installs them.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "gguf_test_util.h"

namespace wo::gguf_test {
namespace {

using nlohmann::json;

// How check-gguf.mjs encodes a float: a JSON number, or a string for -0 and non-finite values.
double json_float(const json& j) {
    if (j.is_number()) return j.get<double>();
    const std::string s = j.get<std::string>();
    if (s == "-0") return -0.0;
    if (s == "NaN") return NAN;
    if (s == "Infinity") return INFINITY;
    if (s == "-Infinity") return -INFINITY;
    ADD_FAILURE() << "unexpected float encoding " << j;
    return 0;
}

// 64-bit integers arrive as decimal strings, narrower ones as numbers.
std::string json_int(const json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_number_unsigned()) return std::to_string(j.get<uint64_t>());
    return std::to_string(j.get<int64_t>());
}

void expect_value(const Value& v, const json& j, const std::string& where) {
    if (const auto* u = std::get_if<uint64_t>(&v.data)) {
        EXPECT_EQ(json_int(j), std::to_string(*u)) << where;
    } else if (const auto* s = std::get_if<int64_t>(&v.data)) {
        EXPECT_EQ(json_int(j), std::to_string(*s)) << where;
    } else if (const auto* d = std::get_if<double>(&v.data)) {
        const double want = json_float(j);
        if (std::isnan(*d)) {
            EXPECT_TRUE(std::isnan(want)) << where;
        } else {
            EXPECT_EQ(*d, want) << where;
            EXPECT_EQ(std::signbit(*d), std::signbit(want)) << where;
        }
    } else if (const auto* b = std::get_if<bool>(&v.data)) {
        EXPECT_EQ(j, json(*b)) << where;
    } else if (const auto* str = std::get_if<std::string>(&v.data)) {
        // The reference decodes with TextDecoder, which drops a leading byte-order mark (U+FEFF,
        // a real token in Llama-2's vocabulary); the bytes after it must still agree.
        const std::string_view bom = "\xEF\xBB\xBF";
        const bool has_bom = str->size() >= 3 && std::string_view(*str).substr(0, 3) == bom;
        EXPECT_EQ(j, json(has_bom ? str->substr(3) : *str)) << where;
    } else {
        const auto& a = std::get<gguf::Array>(v.data);
        ASSERT_TRUE(j.is_array()) << where << ": " << j;
        ASSERT_EQ(j.size(), a.items.size()) << where;
        for (size_t i = 0; i < a.items.size(); ++i) expect_value(a.items[i], j[i], where + "[" + std::to_string(i) + "]");
    }
}

void crosscheck_file(const std::string& path) {
    const std::string name = std::filesystem::path(path).filename().string();
    const std::string cmd = std::string("NODE_PATH='") + WO_GOLDEN + "/node_modules' node '" + WO_SOURCE_DIR +
                            "/tests/golden/check-gguf.mjs' '" + path + "'";
    const RunResult r = run(cmd);
    ASSERT_EQ(r.status, 0) << "the reference parser failed (run scripts/goldens BUILD/golden to install it):\n"
                           << cmd << "\n" << r.err;
    const json ref = json::parse(r.out);
    const gguf::File f = gguf::File::open(path);

    EXPECT_EQ(ref["version"], f.version());
    EXPECT_EQ(ref["data_offset"], std::to_string(f.data_offset())) << name;
    EXPECT_EQ(ref["tensor_count"], std::to_string(f.tensors().size()));
    EXPECT_EQ(ref["kv_count"], std::to_string(f.metadata().size()));

    const json& meta = ref["metadata"];
    ASSERT_EQ(meta.size(), f.metadata().size()) << name;
    for (size_t i = 0; i < meta.size(); ++i) {
        const auto& [key, v] = f.metadata()[i];
        const json& m = meta[i];
        ASSERT_EQ(m["key"], key) << name << " key #" << i;
        EXPECT_EQ(m["type"], static_cast<uint32_t>(v.type)) << key;
        if (const auto* a = std::get_if<gguf::Array>(&v.data)) {
            EXPECT_EQ(m["sub_type"], static_cast<uint32_t>(a->elem_type)) << key;
        }
        expect_value(v, m["value"], name + " " + key);
    }

    const json& tensors = ref["tensors"];
    ASSERT_EQ(tensors.size(), f.tensors().size());
    for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& t = f.tensors()[i];
        const json& jt = tensors[i];
        EXPECT_EQ(jt["name"], t.name);
        EXPECT_EQ(jt["type"], static_cast<uint32_t>(t.type)) << t.name;
        EXPECT_EQ(jt["offset"], std::to_string(t.offset)) << t.name;
        ASSERT_EQ(jt["shape"].size(), t.shape.size()) << t.name;
        for (size_t d = 0; d < t.shape.size(); ++d) EXPECT_EQ(jt["shape"][d], std::to_string(t.shape[d])) << t.name;
    }
}

void crosscheck(const std::string& name, const Writer& w) {
    const auto path = (scratch_dir() / (name + ".gguf")).string();
    w.write(path);
    crosscheck_file(path);
}

TEST(GgufCrossCheck, EveryValueAndTensorTypeAlignment32) { crosscheck("every-type-32", every_type_writer(32)); }
TEST(GgufCrossCheck, EveryValueAndTensorTypeAlignment64) { crosscheck("every-type-64", every_type_writer(64)); }
TEST(GgufCrossCheck, GptOssLayout) { crosscheck("gpt-oss", gptoss_writer()); }
TEST(GgufCrossCheck, GptOssLayoutAlignment64) { crosscheck("gpt-oss-64", gptoss_writer({}, 64, 3)); }

TEST(GgufCrossCheck, NaNAndEmptyFile) {
    Writer w;
    w.set("nan", Value::f32(std::nanf("")));
    w.set("inf", Value::f64(INFINITY));
    w.set("empty_nested", Value::array(ValueType::ARRAY, {}));
    crosscheck("nan", w);
    crosscheck("empty", Writer());
}

// Files written by llama.cpp's own gguf-py (its vocab GGUFs, extracted with pinned sha256 by
// tests/golden/gen-tokenizer.mjs): vocab-only v3 files whose data section starts past their end.
TEST(GgufCrossCheck, LlamaCppVocabFiles) {
    for (const char* v : {"gpt-2", "llama-spm", "llama-bpe", "qwen2"}) {
        const std::string path = std::string(WO_GOLDEN) + "/tokenizer/ggml-vocab-" + v + ".gguf";
        ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: run scripts/goldens BUILD/golden";
        SCOPED_TRACE(path);
        crosscheck_file(path);
        const gguf::File f = gguf::File::open(path);
        EXPECT_GT(f.get_string_array("tokenizer.ggml.tokens").size(), 30000u);
        EXPECT_TRUE(f.tensors().empty());
    }
}

}  // namespace
}  // namespace wo::gguf_test
