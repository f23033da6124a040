// Structured logging on stderr: one line per event, `event` first, then key=value fields (text,
// for people) or one JSON object per line (for collectors). The CLI picks the format with
// --log-format: text when stderr is a terminal, JSON otherwise (cli/output.h).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace wo::log {

enum class Level { debug, info, warn, error };

void set_json(bool json);
bool is_json();
void set_level(Level level);
// The line write() would print (without the newline), for writers of their own stream (Progress).
std::string format(Level level, std::string_view event, const nlohmann::json& fields);
// While a self-updating status line (Progress on a terminal) is showing, each log line first
// erases it, so the two never share a line; the status line is redrawn on its next update.
void set_status_line(bool showing);
// e.g. log::info("model.loaded", {{"arch", "gpt-oss"}, {"bytes", 123}});
void write(Level level, std::string_view event, const nlohmann::json& fields = nlohmann::json::object());
inline void debug(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { write(Level::debug, e, f); }
inline void info(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { write(Level::info, e, f); }
inline void warn(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { write(Level::warn, e, f); }
inline void error(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { write(Level::error, e, f); }

}  // namespace wo::log
