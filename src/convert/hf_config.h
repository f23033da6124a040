// config.json of an HF checkpoint: typed access with errors that name the key, and the RoPE
// settings in both the transformers 4 (`rope_theta` + `rope_scaling`) and 5 (`rope_parameters`)
// spellings.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace wo::convert {

struct RopeConfig {
    std::string type = "default";  // default, linear, yarn, llama3, longrope, ...
    double theta = 10000.0;
    nlohmann::json params = nlohmann::json::object();  // the scaling dictionary as written
};

class HfConfig {
public:
    static HfConfig load(const std::string& dir);  // DIR/config.json; CONVERT_FAILED when unusable
    explicit HfConfig(nlohmann::json j, std::string path) : j_(std::move(j)), path_(std::move(path)) {}

    // The HF class name (architectures[0]) or, when absent, one derived from model_type.
    std::string architecture() const;

    bool has(const std::string& key) const;  // present and not null
    int64_t req_int(const std::string& key) const;
    std::optional<int64_t> opt_int(const std::string& key) const;
    double req_float(const std::string& key) const;
    std::optional<double> opt_float(const std::string& key) const;
    std::optional<std::string> opt_string(const std::string& key) const;
    bool opt_bool(const std::string& key, bool dflt) const;
    RopeConfig rope(double default_theta) const;
    const nlohmann::json& json() const { return j_; }

    [[noreturn]] void fail(const std::string& what) const;  // CONVERT_FAILED "<path>: what"

private:
    nlohmann::json j_;
    std::string path_;
};

}  // namespace wo::convert
