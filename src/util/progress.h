// Progress of long work counted in bytes (convert, synth, model load, bench).
//   terminal: one self-updating line on stderr, redrawn in place with '\r' at most every 100 ms:
//             "synth  42%  4.63/11.04 GiB  612 MiB/s  0:10 left", ending "... done in 0:18\n".
//   events:   log events (JSON lines unless the logs are text) named by the caller, with bytes,
//             total_bytes, percent and elapsed_s: one at start, then at most one per 500 ms,
//             and a last one at 100% from finish().
//   off:      nothing (--quiet).
// The default mode is terminal when stderr is a terminal and the logs are text, else events.
// add() may be called from any thread.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace wo {

class Progress {
public:
    enum class Mode { off, terminal, events };

    static void set_quiet(bool quiet);  // --quiet: default_mode() becomes off
    static Mode default_mode();

    // `event` names the log events in events mode; `fields` are added to each of them.
    explicit Progress(std::string event, nlohmann::json fields = nlohmann::json::object(),
                      Mode mode = default_mode(), std::FILE* out = stderr);
    ~Progress();  // ends an unfinished terminal line, so an error message starts on its own line
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    void start(uint64_t total_bytes, std::string label);  // `label` leads the terminal line
    void add(uint64_t bytes);                             // done grows by bytes, up to the total
    void finish();                                        // done = total; the 100% line or event
    uint64_t done() const;

    static constexpr std::chrono::milliseconds kEventInterval{500};
    static constexpr std::chrono::milliseconds kRedrawInterval{100};

private:
    void emit(bool final);  // caller holds mu_
    std::string terminal_line(bool final, double elapsed) const;

    const std::string event_;
    const nlohmann::json fields_;
    const Mode mode_;
    std::FILE* const out_;
    mutable std::mutex mu_;
    std::string label_;
    uint64_t total_ = 0, done_ = 0;
    bool started_ = false, finished_ = false;
    std::chrono::steady_clock::time_point t0_, last_;
};

// "11.04 GiB", "612 MiB", "512 B": binary units, 3 significant digits (for people).
std::string human_bytes(uint64_t bytes);

}  // namespace wo
