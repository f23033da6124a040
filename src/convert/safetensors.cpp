// safetensors reader: header parsing and validation (see safetensors.h for the format).
#include "convert/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "quant/fp16.h"
#include "util/error.h"
#include "util/mmap.h"

namespace wo::convert {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error(Code::CONVERT_FAILED, msg); }

int64_t dtype_size(const std::string& d) {
    static const std::map<std::string, int64_t> sizes = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
        {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8},
        {"F8_E4M3", 1}, {"F8_E5M2", 1},
    };
    auto it = sizes.find(d);
    return it == sizes.end() ? 0 : it->second;
}

}  // namespace

std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

float StTensor::at(int64_t i) const {
    if (fdt == Float::F32) {
        float f;
        std::memcpy(&f, data + i * 4, 4);
        return f;
    }
    uint16_t h;
    std::memcpy(&h, data + i * 2, 2);
    return fdt == Float::F16 ? quant::f16_to_f32(h) : quant::bf16_to_f32(h);
}

Checkpoint::~Checkpoint() = default;

std::vector<StTensor> parse_safetensors(const uint8_t* base, uint64_t size, const std::string& path) {
    std::vector<StTensor> out;
    if (size < 8) fail(path + ": " + std::to_string(size) + " bytes, too short for a safetensors header");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
    if (n > size - 8) fail(path + ": header length " + std::to_string(n) + " exceeds the file (" + std::to_string(size) + " bytes)");
    nlohmann::json h;
    try {
        h = nlohmann::json::parse(base + 8, base + 8 + n);
    } catch (const nlohmann::json::exception& e) {
        fail(path + ": header is not valid JSON: " + e.what());
    }
    if (!h.is_object()) fail(path + ": header is not a JSON object");
    const uint64_t data_size = size - 8 - n;
    const uint8_t* data = base + 8 + n;
    for (auto& [name, v] : h.items()) {
        if (name == "__metadata__") continue;
        const std::string where = path + ": tensor " + name;
        if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
            fail(where + ": entry needs dtype, shape and data_offsets");
        StTensor t;
        t.name = name;
        t.file = path;
        if (!v["dtype"].is_string()) fail(where + ": dtype is not a string");
        t.dtype = v["dtype"].get<std::string>();
        t.fdt = t.dtype == "F32"    ? StTensor::Float::F32
                : t.dtype == "F16"  ? StTensor::Float::F16
                : t.dtype == "BF16" ? StTensor::Float::BF16
                                    : StTensor::Float::NONE;
        const int64_t esize = dtype_size(t.dtype);
        if (esize == 0) fail(where + ": unknown dtype " + t.dtype);
        if (!v["shape"].is_array()) fail(where + ": shape is not an array");
        t.numel = 1;
        for (auto& d : v["shape"]) {
            if (!d.is_number_unsigned()) fail(where + ": shape has a non-integer or negative dimension");
            const uint64_t x = d.get<uint64_t>();
            if (x > (uint64_t{1} << 40) || (x && uint64_t(t.numel) > (uint64_t{1} << 46) / x))
                fail(where + ": shape " + v["shape"].dump() + " is too large");
            t.shape.push_back(static_cast<int64_t>(x));
            t.numel *= static_cast<int64_t>(x);
        }
        auto& off = v["data_offsets"];
        if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
            fail(where + ": data_offsets must be two non-negative integers");
        const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
        if (b > e || e > data_size)
            fail(where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] outside the " +
                 std::to_string(data_size) + "-byte data section");
        if (e - b != uint64_t(t.numel) * uint64_t(esize))
            fail(where + ": " + std::to_string(e - b) + " bytes of data for " + t.dtype + " " + shape_str(t.shape) +
                 " (expected " + std::to_string(uint64_t(t.numel) * uint64_t(esize)) + ")");
        t.data = data + b;
        t.n_bytes = e - b;
        out.push_back(std::move(t));
    }
    return out;
}

void Checkpoint::add_file(const std::string& path) {
    std::unique_ptr<MappedFile> m;
    try {
        m = std::make_unique<MappedFile>(path);
    } catch (const Error& e) {
        fail(std::string("cannot open checkpoint file: ") + e.what());
    }
    for (StTensor& t : parse_safetensors(m->data(), m->size(), path)) {
        if (tensors_.count(t.name)) fail(path + ": tensor " + t.name + ": tensor appears in more than one file");
        std::string name = t.name;
        tensors_.emplace(std::move(name), std::move(t));
    }
    files_.push_back(std::move(m));
}

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& dir) {
    std::unique_ptr<Checkpoint> ck(new Checkpoint());
    ck->dir_ = dir;
    const fs::path index = fs::path(dir) / "model.safetensors.index.json";
    const fs::path single = fs::path(dir) / "model.safetensors";
    if (fs::exists(index)) {
        std::ifstream in(index);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(in);
        } catch (const nlohmann::json::exception& e) {
            fail(index.string() + ": not valid JSON: " + e.what());
        }
        if (!j.contains("weight_map") || !j["weight_map"].is_object()) fail(index.string() + ": no weight_map object");
        std::set<std::string> shards;
        for (auto& [name, file] : j["weight_map"].items()) {
            if (!file.is_string()) fail(index.string() + ": weight_map entry " + name + " is not a file name");
            const std::string f = file.get<std::string>();
            if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
                fail(index.string() + ": weight_map entry " + name + " names a file outside the folder: " + f);
            shards.insert(f);
        }
        for (const auto& f : shards) ck->add_file((fs::path(dir) / f).string());
        for (auto& [name, file] : j["weight_map"].items()) {
            const StTensor* t = ck->find(name);
            if (!t) fail(index.string() + ": tensor " + name + " is listed in " + file.get<std::string>() + " but not found there");
            if (fs::path(t->file).filename() != file.get<std::string>())
                fail(index.string() + ": tensor " + name + " is listed in " + file.get<std::string>() + " but found in " + t->file);
        }
    } else if (fs::exists(single)) {
        ck->add_file(single.string());
    } else {
        fail(dir + ": neither model.safetensors nor model.safetensors.index.json found");
    }
    return ck;
}

const StTensor* Checkpoint::find(std::string_view name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

const StTensor& Checkpoint::get(std::string_view name) const {
    const StTensor* t = find(name);
    if (!t) fail("checkpoint " + dir_ + " has no tensor " + std::string(name));
    return *t;
}

const StTensor& Checkpoint::get(std::string_view name, const std::vector<int64_t>& shape) const {
    const StTensor& t = get(name);
    if (t.shape != shape)
        fail(t.file + ": tensor " + t.name + " has shape " + shape_str(t.shape) + ", expected " + shape_str(shape) +
             " from config.json");
    if (!t.is_float()) fail(t.file + ": tensor " + t.name + " has dtype " + t.dtype + ", expected F32, F16 or BF16");
    return t;
}

}  // namespace wo::convert
