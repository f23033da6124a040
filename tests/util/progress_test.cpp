// Progress: events are JSON lines, throttled to one per 500 ms, with monotonic bytes ending at
// the total; the terminal form is one line redrawn with '\r' that ends at 100%; concurrent add()
// loses nothing; off writes nothing.
#include "util/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "util/log.h"

namespace wo {
namespace {

using nlohmann::json;

// A temporary FILE the Progress writes to, read back as a string.
class Capture {
public:
    Capture() : f_(std::tmpfile()) {}
    ~Capture() { std::fclose(f_); }
    std::FILE* file() const { return f_; }
    std::string text() const {
        std::fflush(f_);
        std::rewind(f_);
        std::string s;
        char buf[4096];
        while (size_t n = std::fread(buf, 1, sizeof buf, f_)) s.append(buf, n);
        return s;
    }

private:
    std::FILE* f_;
};

std::vector<json> json_lines(const std::string& text) {
    std::vector<json> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) out.push_back(json::parse(line));  // throws on a non-JSON line
    return out;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

TEST(Progress, EventsAreThrottledJsonLinesWithMonotonicBytesEndingAtTheTotal) {
    log::set_json(true);
    Capture cap;
    {
        Progress p("test_progress", {{"out", "x.gguf"}}, Progress::Mode::events, cap.file());
        p.start(1000, "test");
        for (int i = 0; i < 10; ++i) {
            sleep_ms(130);
            p.add(100);
        }
        p.finish();
    }
    log::set_json(false);
    const auto ev = json_lines(cap.text());
    // Start, at least one during the 1.3 s of work, and the final one.
    ASSERT_GE(ev.size(), 3u) << cap.text();
    uint64_t prev = 0;
    for (size_t i = 0; i < ev.size(); ++i) {
        const json& e = ev[i];
        EXPECT_EQ(e["event"], "test_progress");
        EXPECT_EQ(e["level"], "info");
        EXPECT_EQ(e["out"], "x.gguf");
        EXPECT_EQ(e["total_bytes"], 1000);
        const uint64_t b = e["bytes"];
        EXPECT_GE(b, prev) << e.dump();
        EXPECT_EQ(e["percent"], b * 100 / 1000) << e.dump();
        prev = b;
        // At most one event per 500 ms; only the final one may follow sooner.
        if (i > 0 && i + 1 < ev.size())
            EXPECT_GE(e["elapsed_s"].get<double>() - ev[i - 1]["elapsed_s"].get<double>(), 0.498)
                << cap.text();
    }
    EXPECT_EQ(ev.front()["bytes"], 0);
    EXPECT_EQ(ev.back()["bytes"], 1000);
    EXPECT_EQ(ev.back()["percent"], 100);
}

TEST(Progress, ConcurrentAddsAreAllCounted) {
    log::set_json(true);
    Capture cap;
    Progress p("test_progress", json::object(), Progress::Mode::events, cap.file());
    p.start(4000, "test");
    std::vector<std::thread> th;
    for (int t = 0; t < 4; ++t)
        th.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) p.add(1);
        });
    for (auto& t : th) t.join();
    EXPECT_EQ(p.done(), 4000u);
    p.finish();
    log::set_json(false);
    const auto ev = json_lines(cap.text());
    ASSERT_GE(ev.size(), 2u);
    EXPECT_EQ(ev.back()["bytes"], 4000);
}

TEST(Progress, AddNeverPassesTheTotal) {
    Capture cap;
    Progress p("test_progress", json::object(), Progress::Mode::off, cap.file());
    p.start(100, "test");
    p.add(60);
    p.add(60);
    EXPECT_EQ(p.done(), 100u);
    p.finish();
    EXPECT_EQ(cap.text(), "") << "off writes nothing";
}

// Splits a terminal progress line into its redraws ('\r' first, "\033[K" erasing the rest).
std::vector<std::string> redraws(std::string line) {
    std::vector<std::string> out;
    size_t p = 0;
    while ((p = line.find("\033[K")) != std::string::npos) line.erase(p, 3);
    std::istringstream in(line);
    std::string seg;
    while (std::getline(in, seg, '\r'))
        if (!seg.empty()) out.push_back(seg);
    return out;
}

TEST(Progress, TerminalIsOneLineRedrawnInPlaceEndingAt100Percent) {
    Capture cap;
    {
        Progress p("test_progress", json::object(), Progress::Mode::terminal, cap.file());
        p.start(3 << 20, "synth");
        for (int i = 0; i < 3; ++i) {
            sleep_ms(120);
            p.add(1 << 20);
        }
        p.finish();
    }
    const std::string out = cap.text();
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.find('\n'), out.size() - 1) << "one line, ended once: " << out;
    EXPECT_EQ(out.front(), '\r');
    const auto segs = redraws(out.substr(0, out.size() - 1));
    ASSERT_GE(segs.size(), 2u) << out;  // the start, maybe some updates, the end
    int prev = -1;
    for (const auto& s : segs) {
        ASSERT_EQ(s.rfind("synth ", 0), 0u) << s;
        const int pct = std::stoi(s.substr(6));
        EXPECT_GE(pct, prev) << s;
        prev = pct;
    }
    EXPECT_NE(segs.front().find("  0%  0.00/3.00 MiB"), std::string::npos) << segs.front();
    EXPECT_NE(segs.back().find("100%  3.00/3.00 MiB"), std::string::npos) << segs.back();
    EXPECT_NE(segs.back().find("/s  done in 0:0"), std::string::npos) << segs.back();
    if (segs.size() > 2) EXPECT_NE(segs[1].find(" left"), std::string::npos) << segs[1];
}

TEST(Progress, AnUnfinishedTerminalLineIsEndedSoAnErrorStartsOnItsOwnLine) {
    Capture cap;
    {
        Progress p("test_progress", json::object(), Progress::Mode::terminal, cap.file());
        p.start(100, "load");
        p.add(40);
    }  // no finish(): an exception unwound through it
    const std::string out = cap.text();
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.back(), '\n');
    EXPECT_EQ(out.find("100%"), std::string::npos) << out;
}

TEST(Progress, HumanBytes) {
    EXPECT_EQ(human_bytes(0), "0 B");
    EXPECT_EQ(human_bytes(1023), "1023 B");
    EXPECT_EQ(human_bytes(1536), "1.50 KiB");
    EXPECT_EQ(human_bytes(uint64_t(612) << 20), "612 MiB");
    EXPECT_EQ(human_bytes(uint64_t(11.04 * (1 << 30))), "11.0 GiB");
}

}  // namespace
}  // namespace wo
