// `worker-orcd inspect MODEL.gguf [--json] [--tensor NAME [--dump OUT.f32]]`: what a GGUF file
// holds (header, every metadata key, the tensor table, totals), as text for people or one JSON
// object for machines; optionally one tensor dequantized to little-endian float32.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "util/error.h"
#include "util/progress.h"

namespace wo::cli {
namespace {

using gguf::Value;
using gguf::ValueType;
using nlohmann::json;

constexpr size_t kShownItems = 8;  // longer arrays are summarised (tokenizer vocabularies)

struct InspectOptions {
    std::string path, tensor, dump;
    bool json = false;
};

std::string quoted(const std::string& s) {
    // JSON escaping makes control bytes and invalid UTF-8 visible instead of garbling the terminal.
    return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string number(double d, bool f32) {
    if (!std::isfinite(d)) return std::isnan(d) ? "nan" : (d > 0 ? "inf" : "-inf");
    char buf[64];
    auto r = f32 ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(d)) : std::to_chars(buf, buf + sizeof buf, d);
    return std::string(buf, r.ptr);
}

std::string type_label(const Value& v) {
    if (const auto* a = std::get_if<gguf::Array>(&v.data))
        return "ARRAY[" + std::string(gguf::value_type_name(a->elem_type)) + "]";
    return std::string(gguf::value_type_name(v.type));
}

std::string text_value(const Value& v, bool nested = false) {
    if (const auto* u = std::get_if<uint64_t>(&v.data)) return std::to_string(*u);
    if (const auto* s = std::get_if<int64_t>(&v.data)) return std::to_string(*s);
    if (const auto* d = std::get_if<double>(&v.data)) return number(*d, v.type == ValueType::FLOAT32);
    if (const auto* b = std::get_if<bool>(&v.data)) return *b ? "true" : "false";
    if (const auto* s = std::get_if<std::string>(&v.data)) return quoted(*s);
    const auto& a = std::get<gguf::Array>(v.data);
    std::string out = nested ? "[" : "(" + std::to_string(a.items.size()) + " items) [";
    for (size_t i = 0; i < a.items.size() && i < kShownItems; ++i)
        out += (i ? ", " : "") + text_value(a.items[i], true);
    if (a.items.size() > kShownItems) out += ", ... " + std::to_string(a.items.size() - kShownItems) + " more";
    return out + "]";
}

json json_value(const Value& v) {
    if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
    if (const auto* s = std::get_if<int64_t>(&v.data)) return *s;
    if (const auto* d = std::get_if<double>(&v.data)) {
        if (!std::isfinite(*d)) return number(*d, false);  // JSON has no NaN/Inf
        return v.type == ValueType::FLOAT32 ? json(static_cast<float>(*d)) : json(*d);
    }
    if (const auto* b = std::get_if<bool>(&v.data)) return *b;
    if (const auto* s = std::get_if<std::string>(&v.data)) return *s;
    const auto& a = std::get<gguf::Array>(v.data);
    json items = json::array();
    for (size_t i = 0; i < a.items.size() && i < kShownItems; ++i) items.push_back(json_value(a.items[i]));
    return {{"elem_type", gguf::value_type_name(a.elem_type)},
            {"length", a.items.size()},
            {"items", std::move(items)},
            {"truncated", a.items.size() > kShownItems}};
}

std::string shape_text(const std::vector<uint64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

json tensor_json(const gguf::TensorInfo& t) {
    return {{"name", t.name}, {"type", type_name(t.type)}, {"shape", t.shape},
            {"offset", t.offset}, {"bytes", t.n_bytes}, {"elements", t.n_elements}};
}

void dump_tensor(const gguf::File& f, const gguf::TensorInfo& t, const std::string& out_path) {
    std::FILE* out = std::fopen(out_path.c_str(), "wb");
    if (!out) throw Error(Code::IO_ERROR, "cannot create " + out_path + ": " + std::strerror(errno));
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> guard(out, std::fclose);
    // Row by row, so a large tensor needs one row of floats, not the whole tensor.
    const uint64_t ne0 = t.shape[0], rows = t.n_elements / ne0, stride = row_bytes(t.type, ne0);
    std::vector<float> row(ne0);
    const uint8_t* src = f.tensor_data(t);
    for (uint64_t r = 0; r < rows; ++r) {
        quant::dequantize_row(t.type, src + r * stride, row.data(), static_cast<int64_t>(ne0));
        if (std::fwrite(row.data(), sizeof(float), ne0, out) != ne0)
            throw Error(Code::IO_ERROR, "cannot write " + out_path + ": " + std::strerror(errno));
    }
    if (std::fclose(guard.release()) != 0)
        throw Error(Code::IO_ERROR, "cannot write " + out_path + ": " + std::strerror(errno));
}

void print_text(const InspectOptions& o, const gguf::File& f, const std::optional<std::string>& arch) {
    std::printf("file:         %s\n", o.path.c_str());
    std::printf("version:      %u\n", f.version());
    std::printf("alignment:    %llu\n", (unsigned long long)f.alignment());
    std::printf("architecture: %s\n", arch ? arch->c_str() : "(none)");
    std::printf("data offset:  %llu\n", (unsigned long long)f.data_offset());
    std::printf("file size:    %llu\n", (unsigned long long)f.file_size());
    std::printf("\nmetadata: %zu keys\n", f.metadata().size());
    for (const auto& [key, v] : f.metadata())
        std::printf("  %-48s %-14s %s\n", key.c_str(), type_label(v).c_str(), text_value(v).c_str());

    // Columns as wide as their longest entry, so 40-character gpt-oss names still line up.
    size_t wn = 4, wt = 4, ws = 5, wb = 5;
    for (const auto& t : f.tensors()) {
        wn = std::max(wn, t.name.size());
        wt = std::max(wt, type_name(t.type).size());
        ws = std::max(ws, shape_text(t.shape).size());
        wb = std::max(wb, std::to_string(t.n_bytes).size());
    }
    const int n = int(wn), ty = int(wt), sh = int(ws), by = int(wb);
    std::printf("\ntensors: %zu\n  %-*s  %-*s  %-*s  %*s\n", f.tensors().size(), n, "name", ty, "type", sh,
                "shape", by, "bytes");
    struct Sum {
        size_t tensors = 0;
        uint64_t bytes = 0, params = 0;
    };
    Sum all;
    std::map<std::string, Sum> per_type;
    for (const auto& t : f.tensors()) {
        const std::string tn(type_name(t.type));
        std::printf("  %-*s  %-*s  %-*s  %*llu\n", n, t.name.c_str(), ty, tn.c_str(), sh,
                    shape_text(t.shape).c_str(), by, (unsigned long long)t.n_bytes);
        for (Sum* x : {&all, &per_type[tn]}) {
            ++x->tensors;
            x->bytes += t.n_bytes;
            x->params += t.n_elements;
        }
    }
    std::printf("\ntotals: %zu tensors, %llu bytes, %llu parameters\ntypes:", all.tensors,
                (unsigned long long)all.bytes, (unsigned long long)all.params);
    const char* sep = " ";
    for (const auto& [name, x] : per_type) {
        std::printf("%s%s %zu", sep, name.c_str(), x.tensors);
        sep = ", ";
    }
    std::printf("\n\n  %-*s  %7s  %14s  %14s  %10s  %6s\n", ty, "type", "tensors", "parameters", "bytes",
                "size", "share");
    for (const auto& [name, x] : per_type)
        std::printf("  %-*s  %7zu  %14llu  %14llu  %10s  %5.1f%%\n", ty, name.c_str(), x.tensors,
                    (unsigned long long)x.params, (unsigned long long)x.bytes, human_bytes(x.bytes).c_str(),
                    all.bytes ? 100.0 * double(x.bytes) / double(all.bytes) : 0.0);
}

json to_json(const InspectOptions& o, const gguf::File& f, const std::optional<std::string>& arch) {
    json meta = json::array();
    for (const auto& [key, v] : f.metadata())
        meta.push_back({{"key", key}, {"type", gguf::value_type_name(v.type)}, {"value", json_value(v)}});
    json tensors = json::array(), per_type = json::object();
    uint64_t bytes = 0, params = 0;
    for (const auto& t : f.tensors()) {
        tensors.push_back(tensor_json(t));
        bytes += t.n_bytes;
        params += t.n_elements;
        const std::string tn(type_name(t.type));
        per_type[tn] = per_type.value(tn, 0) + 1;
    }
    return {{"file", o.path}, {"version", f.version()}, {"alignment", f.alignment()},
            {"architecture", arch ? json(*arch) : json(nullptr)}, {"data_offset", f.data_offset()},
            {"file_size", f.file_size()}, {"metadata", std::move(meta)}, {"tensors", std::move(tensors)},
            {"totals", {{"tensors", f.tensors().size()}, {"bytes", bytes}, {"parameters", params}, {"types", per_type}}}};
}

void run_inspect(const InspectOptions& o) {
    if (!o.dump.empty() && o.tensor.empty())
        throw Error(Code::INVALID_ARGUMENT, "--dump needs --tensor NAME");
    const gguf::File f = gguf::File::open(o.path);
    const auto arch = f.find_string("general.architecture");
    auto dumps = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };

    if (o.tensor.empty()) {
        if (o.json)
            std::printf("%s\n", dumps(to_json(o, f, arch)).c_str());
        else
            print_text(o, f, arch);
        return;
    }
    const gguf::TensorInfo* t = f.find_tensor(o.tensor);
    if (!t) throw Error(Code::INVALID_ARGUMENT, "no tensor named '" + o.tensor + "' in " + o.path);
    if (!o.dump.empty()) dump_tensor(f, *t, o.dump);
    if (o.json) {
        json j = tensor_json(*t);
        if (!o.dump.empty()) j["dump"] = o.dump;
        std::printf("%s\n", dumps(j).c_str());
    } else {
        std::printf("%s %s %s %llu bytes\n", t->name.c_str(), std::string(type_name(t->type)).c_str(),
                    shape_text(t->shape).c_str(), (unsigned long long)t->n_bytes);
        if (!o.dump.empty())
            std::printf("wrote %llu float32 values to %s\n", (unsigned long long)t->n_elements, o.dump.c_str());
    }
}

}  // namespace

void add_inspect(CLI::App& app, int& rc) {
    auto opts = std::make_shared<InspectOptions>();
    auto* sub = app.add_subcommand("inspect", "Print a GGUF file's header, metadata, tensors and totals");
    sub->add_option("model", opts->path, "GGUF file")->required();
    sub->add_flag("--json", opts->json, "Print one JSON object instead of text");
    sub->add_option("--tensor", opts->tensor, "Show only this tensor (default: all)");
    sub->add_option(
        "--dump", opts->dump,
        "With --tensor: write it dequantized as little-endian float32 to this file (default: none)");
    sub->callback([opts, &rc] {
        run_inspect(*opts);
        rc = 0;
    });
}

}  // namespace wo::cli
