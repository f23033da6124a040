// Structured logging: one line per event, `event` first, then key=value fields.
// With WO_LOG_JSON=1 (the default for `serve`) every line is a JSON object.
#pragma once
#include <nlohmann/json.hpp>
#include <string_view>

namespace wo::log {

enum class Level { debug, info, warn, error };

void set_json(bool json);
void set_level(Level level);
// e.g. log::info("model.loaded", {{"arch", "gpt-oss"}, {"bytes", 123}});
void write(Level level, std::string_view event, const nlohmann::json& fields = nlohmann::json::object());
inline void debug(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { write(Level::debug, e, f); }
inline void info(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { write(Level::info, e, f); }
inline void warn(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { write(Level::warn, e, f); }
inline void error(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { write(Level::error, e, f); }

}  // namespace wo::log
