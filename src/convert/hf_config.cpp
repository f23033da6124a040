// config.json access (see hf_config.h).
#include "convert/hf_config.h"

#include <filesystem>
#include <fstream>
#include <map>

#include "util/error.h"

namespace wo::convert {

HfConfig HfConfig::load(const std::string& dir) {
    const std::string path = (std::filesystem::path(dir) / "config.json").string();
    std::ifstream in(path);
    if (!in) throw Error(Code::CONVERT_FAILED, path + ": cannot open (an HF checkpoint folder needs config.json)");
    try {
        nlohmann::json j = nlohmann::json::parse(in);
        if (!j.is_object()) throw Error(Code::CONVERT_FAILED, path + ": not a JSON object");
        return HfConfig(std::move(j), path);
    } catch (const nlohmann::json::exception& e) {
        throw Error(Code::CONVERT_FAILED, path + ": not valid JSON: " + e.what());
    }
}

void HfConfig::fail(const std::string& what) const { throw Error(Code::CONVERT_FAILED, path_ + ": " + what); }

std::string HfConfig::architecture() const {
    if (has("architectures") && j_["architectures"].is_array() && !j_["architectures"].empty() &&
        j_["architectures"][0].is_string())
        return j_["architectures"][0].get<std::string>();
    static const std::map<std::string, std::string> by_type = {
        {"gpt_oss", "GptOssForCausalLM"}, {"gpt2", "GPT2LMHeadModel"}, {"llama", "LlamaForCausalLM"},
        {"qwen2", "Qwen2ForCausalLM"},    {"phi3", "Phi3ForCausalLM"},
    };
    const auto mt = opt_string("model_type");
    if (!mt) fail("neither architectures nor model_type is set");
    auto it = by_type.find(*mt);
    if (it == by_type.end()) fail("model_type '" + *mt + "' is not supported (gpt_oss, gpt2, llama, qwen2, phi3)");
    return it->second;
}

bool HfConfig::has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }

std::optional<int64_t> HfConfig::opt_int(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    const auto& v = j_[key];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())))
        return static_cast<int64_t>(v.get<double>());
    fail("key " + key + " is " + v.dump() + ", expected an integer");
}

int64_t HfConfig::req_int(const std::string& key) const {
    auto v = opt_int(key);
    if (!v) fail("missing key " + key);
    return *v;
}

std::optional<double> HfConfig::opt_float(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    if (!j_[key].is_number()) fail("key " + key + " is " + j_[key].dump() + ", expected a number");
    return j_[key].get<double>();
}

double HfConfig::req_float(const std::string& key) const {
    auto v = opt_float(key);
    if (!v) fail("missing key " + key);
    return *v;
}

std::optional<std::string> HfConfig::opt_string(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    if (!j_[key].is_string()) fail("key " + key + " is " + j_[key].dump() + ", expected a string");
    return j_[key].get<std::string>();
}

bool HfConfig::opt_bool(const std::string& key, bool dflt) const {
    if (!has(key)) return dflt;
    if (!j_[key].is_boolean()) fail("key " + key + " is " + j_[key].dump() + ", expected true or false");
    return j_[key].get<bool>();
}

RopeConfig HfConfig::rope(double default_theta) const {
    RopeConfig r;
    r.theta = opt_float("rope_theta").value_or(default_theta);
    const char* key = has("rope_parameters") ? "rope_parameters" : has("rope_scaling") ? "rope_scaling" : nullptr;
    if (!key) return r;
    const auto& p = j_[key];
    if (!p.is_object()) fail(std::string(key) + " is not an object");
    r.params = p;
    if (p.contains("rope_theta")) {
        if (!p["rope_theta"].is_number()) fail(std::string(key) + ".rope_theta is not a number");
        r.theta = p["rope_theta"].get<double>();
    }
    const char* tkey = p.contains("rope_type") ? "rope_type" : p.contains("type") ? "type" : nullptr;
    if (tkey) {
        if (!p[tkey].is_string()) fail(std::string(key) + "." + tkey + " is not a string");
        r.type = p[tkey].get<std::string>();
    }
    return r;
}

}  // namespace wo::convert
