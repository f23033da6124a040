// gpt-oss checkpoints that hold dequantized experts (transformers saves `mlp.experts.gate_up_proj`
// [E, hidden, 2*ff] and `down_proj` [E, ff, hidden] after loading with dequantize=True): every
// block lies on the MXFP4 grid, so convert writes MXFP4, losslessly, whatever --type says, and logs
// that it did. Built here from the MXFP4 fixture, the result must equal the direct repack element
// for element. (Experts off the grid: float_experts_test.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert/convert.h"
#include "convert/safetensors.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace wo {
namespace {

namespace fs = std::filesystem;

struct Out {
    std::string dtype;
    std::vector<int64_t> shape;
    std::string bytes;
};

void write_safetensors(const fs::path& p, const std::map<std::string, Out>& ts) {
    nlohmann::json h = nlohmann::json::object();
    std::string data;
    for (const auto& [name, t] : ts) {
        h[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
        data += t.bytes;
    }
    const std::string hs = h.dump();
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(hs.size()) >> (8 * i)) & 0xFF);
    std::ofstream(p, std::ios::binary) << out << hs << data;
}

TEST(DequantizedExperts, QuantizedBackToTheSameMxfp4) {
    const fs::path src = fs::path(WO_FIXTURES) / "gpt-oss-tiny";
    const fs::path dir = fs::temp_directory_path() / ("wo-deq-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    fs::copy(src / "config.json", dir / "config.json");
    auto ck = convert::Checkpoint::open(src.string());
    const int64_t E = 16, H = 64, FF = 96;
    const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    // HF MXFP4 row decoded by the spec, rows of K elements.
    auto decode = [&](const convert::StTensor& bl, const convert::StTensor& sc, int64_t row, int64_t k) {
        const int64_t nb = k / 32;
        std::vector<float> r(static_cast<size_t>(k));
        for (int64_t i = 0; i < k; ++i) {
            const uint8_t byte = bl.data[(row * nb + i / 32) * 16 + (i % 32) / 2];
            r[size_t(i)] = std::ldexp(e2m1[i % 2 ? byte >> 4 : byte & 0xF], int(sc.data[row * nb + i / 32]) - 127);
        }
        return r;
    };
    auto bf16 = [](float v) {
        const uint16_t h = quant::f32_to_bf16(v);
        return std::string(reinterpret_cast<const char*>(&h), 2);
    };
    std::map<std::string, Out> out;
    for (const auto& [name, t] : ck->tensors()) {
        if (name.find("_blocks") != std::string::npos || name.find("_scales") != std::string::npos) continue;
        out[name] = {t.dtype, t.shape, std::string(reinterpret_cast<const char*>(t.data), t.n_bytes)};
    }
    for (int il = 0; il < 4; ++il) {
        const std::string X = "model.layers." + std::to_string(il) + ".mlp.experts.";
        // transformers' module layout: gate_up [E, in=H, out=2FF], down [E, in=FF, out=H].
        std::vector<float> gu(size_t(E * H * 2 * FF)), dn(size_t(E * FF * H));
        for (int64_t e = 0; e < E; ++e) {
            for (int64_t r = 0; r < 2 * FF; ++r) {
                const auto row = decode(ck->get(X + "gate_up_proj_blocks"), ck->get(X + "gate_up_proj_scales"), e * 2 * FF + r, H);
                for (int64_t k = 0; k < H; ++k) gu[size_t((e * H + k) * 2 * FF + r)] = row[size_t(k)];
            }
            for (int64_t r = 0; r < H; ++r) {
                const auto row = decode(ck->get(X + "down_proj_blocks"), ck->get(X + "down_proj_scales"), e * H + r, FF);
                for (int64_t k = 0; k < FF; ++k) dn[size_t((e * FF + k) * H + r)] = row[size_t(k)];
            }
        }
        std::string a, b;
        for (float v : gu) a += bf16(v);
        for (float v : dn) b += bf16(v);
        out[X + "gate_up_proj"] = {"BF16", {E, H, 2 * FF}, a};
        out[X + "down_proj"] = {"BF16", {E, FF, H}, b};
    }
    write_safetensors(dir / "model.safetensors", out);

    convert::ConvertOptions o;
    o.type = GgmlType::F32;
    const std::string p1 = (dir / "direct.gguf").string(), p2 = (dir / "requant.gguf").string();
    convert::convert_hf(src.string(), p1, o);
    ::testing::internal::CaptureStderr();
    convert::convert_hf(dir.string(), p2, o);
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("convert.experts from=BF16 to=MXFP4 why=lossless: every block of 32 lies on the MXFP4 grid"),
              std::string::npos)
        << log;
    EXPECT_EQ(log.find("convert.requantized"), std::string::npos) << log;
    auto f1 = gguf::File::open(p1), f2 = gguf::File::open(p2);
    ASSERT_EQ(f1.tensors().size(), f2.tensors().size());
    for (const auto& t : f1.tensors()) {
        const auto& u = f2.tensor(t.name);
        ASSERT_EQ(t.type, u.type) << t.name;
        ASSERT_EQ(t.shape, u.shape) << t.name;
        std::vector<float> x(t.n_elements), y(t.n_elements);
        quant::dequantize_row(t.type, f1.tensor_data(t), x.data(), int64_t(t.n_elements));
        quant::dequantize_row(u.type, f2.tensor_data(u), y.data(), int64_t(u.n_elements));
        EXPECT_EQ(x, y) << t.name;
    }
    fs::remove_all(dir);
}

}  // namespace
}  // namespace wo
