// Progress lines and events (see progress.h).
#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "util/log.h"

namespace wo {
namespace {

std::atomic<bool> g_quiet{false};

constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};

int unit_of(uint64_t bytes) {
    int u = 0;
    for (double v = double(bytes); v >= 1024 && u < 4; v /= 1024) ++u;
    return u;
}

// The value in unit u with 3 significant digits ("4.63", "11.0", "612"); bytes are whole.
std::string in_unit(uint64_t bytes, int u) {
    const double v = double(bytes) / std::pow(1024.0, u);
    char buf[32];
    if (u == 0)
        std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(bytes));
    else
        std::snprintf(buf, sizeof buf, v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f", v);
    return buf;
}

std::string clock_text(double seconds) {
    const long s = std::lround(std::max(0.0, seconds));
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

}  // namespace

std::string human_bytes(uint64_t bytes) {
    const int u = unit_of(bytes);
    return in_unit(bytes, u) + " " + kUnits[u];
}

void Progress::set_quiet(bool quiet) { g_quiet = quiet; }

Progress::Mode Progress::default_mode() {
    if (g_quiet) return Mode::off;
    return isatty(STDERR_FILENO) && !log::is_json() ? Mode::terminal : Mode::events;
}

Progress::Progress(std::string event, nlohmann::json fields, Mode mode, std::FILE* out)
    : event_(std::move(event)), fields_(std::move(fields)), mode_(mode), out_(out) {}

Progress::~Progress() {
    std::lock_guard lock(mu_);
    if (mode_ == Mode::terminal && started_ && !finished_) {
        std::fputc('\n', out_);
        std::fflush(out_);
        log::set_status_line(false);
    }
}

void Progress::start(uint64_t total_bytes, std::string label) {
    std::lock_guard lock(mu_);
    label_ = std::move(label);
    total_ = total_bytes;
    done_ = 0;
    started_ = true;
    finished_ = false;
    t0_ = last_ = std::chrono::steady_clock::now();
    if (mode_ == Mode::terminal) log::set_status_line(true);
    emit(false);
}

void Progress::add(uint64_t bytes) {
    std::lock_guard lock(mu_);
    if (!started_ || finished_) return;
    done_ = std::min(total_, done_ + bytes);
    if (mode_ == Mode::off) return;
    const auto interval = mode_ == Mode::terminal ? kRedrawInterval : kEventInterval;
    if (std::chrono::steady_clock::now() - last_ >= interval) emit(false);
}

void Progress::finish() {
    std::lock_guard lock(mu_);
    if (!started_ || finished_) return;
    done_ = total_;
    emit(true);
    finished_ = true;
    if (mode_ == Mode::terminal) log::set_status_line(false);
}

uint64_t Progress::done() const {
    std::lock_guard lock(mu_);
    return done_;
}

std::string Progress::terminal_line(bool final, double elapsed) const {
    const int pct = total_ ? static_cast<int>(done_ * 100 / total_) : 100;
    const int u = unit_of(total_);
    char head[64];
    std::snprintf(head, sizeof head, " %3d%%  ", pct);
    std::string s = label_ + head + in_unit(done_, u) + "/" + in_unit(total_, u) + " " + kUnits[u];
    // The rate needs a moment of work to mean anything; before that it is left out.
    const double rate = elapsed > 0.05 ? double(done_) / elapsed : 0;
    if (rate > 0) s += "  " + human_bytes(static_cast<uint64_t>(rate)) + "/s";
    if (final)
        s += "  done in " + clock_text(elapsed);
    else if (rate > 0)
        s += "  " + clock_text(double(total_ - done_) / rate) + " left";
    return s;
}

void Progress::emit(bool final) {
    const auto now = std::chrono::steady_clock::now();
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - t0_).count();
    std::string line;
    if (mode_ == Mode::terminal) {
        // '\r' returns to the start of the line, "\033[K" erases what a longer line left behind.
        line = "\r" + terminal_line(final, elapsed) + "\033[K" + (final ? "\n" : "");
    } else if (mode_ == Mode::events) {
        nlohmann::json f = fields_;
        f["bytes"] = done_;
        f["total_bytes"] = total_;
        f["percent"] = total_ ? static_cast<int>(done_ * 100 / total_) : 100;
        f["elapsed_s"] = std::round(elapsed * 1000) / 1000;
        line = log::format(log::Level::info, event_, f) + "\n";
    } else {
        return;
    }
    // One fwrite per line: stdio locks the stream per call, so log lines never split it.
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fflush(out_);
}

}  // namespace wo
