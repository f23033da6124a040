// spdlog sink on stderr; formats events as JSON lines or `event k=v` text.
#include "util/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <ctime>

namespace wo::log {
namespace {

std::atomic<bool> g_json{false};
std::atomic<bool> g_status_line{false};
std::atomic<int> g_level{static_cast<int>(Level::info)};

spdlog::logger& logger() {
    static auto l = [] {
        auto lg = spdlog::stderr_logger_mt("wo");
        lg->set_pattern("%v");
        lg->set_level(spdlog::level::trace);
        return lg;
    }();
    return *l;
}

const char* level_name(Level l) {
    switch (l) {
        case Level::debug: return "debug";
        case Level::info: return "info";
        case Level::warn: return "warn";
        case Level::error: return "error";
    }
    return "info";
}

std::string timestamp() {
    auto now = std::chrono::system_clock::now();
    auto t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[80];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

}  // namespace

void set_json(bool json) { g_json = json; }
bool is_json() { return g_json; }
void set_level(Level level) { g_level = static_cast<int>(level); }
void set_status_line(bool showing) { g_status_line = showing; }

std::string format(Level level, std::string_view event, const nlohmann::json& fields) {
    std::string line;
    if (g_json) {
        nlohmann::ordered_json j;
        j["ts"] = timestamp();
        j["level"] = level_name(level);
        j["event"] = event;
        for (auto it = fields.begin(); it != fields.end(); ++it) j[it.key()] = it.value();
        line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
        line = std::string(event);
        for (auto it = fields.begin(); it != fields.end(); ++it) {
            line += ' ';
            line += it.key();
            line += '=';
            line += it.value().is_string() ? it.value().get<std::string>()
                                           : it.value().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
    }
    return line;
}

void write(Level level, std::string_view event, const nlohmann::json& fields) {
    if (static_cast<int>(level) < g_level.load()) return;
    std::string line = format(level, event, fields);
    if (g_status_line) line = "\r\033[K" + line;  // erase the progress line this one would join
    logger().log(level == Level::error ? spdlog::level::err
                 : level == Level::warn ? spdlog::level::warn
                 : level == Level::debug ? spdlog::level::debug
                                         : spdlog::level::info,
                 line);
}

}  // namespace wo::log
