// Runs `worker-orcd serve` as a child process on a free loopback port (--port 0; the port is
// read from the http_listening log line) and talks to it over HTTP.
#pragma once
#include <httplib.h>
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace wo::test {

struct SseEvent {
    std::string event;
    nlohmann::json data;
};

// Parses `event:`/`data:` blocks; comment lines (": ping") are skipped like any SSE client does.
inline std::vector<SseEvent> parse_sse(const std::string& body) {
    std::vector<SseEvent> out;
    std::istringstream in(body);
    std::string line, event, data;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) {
            if (!data.empty()) out.push_back({event, data == "[DONE]" ? nlohmann::json("[DONE]") : nlohmann::json::parse(data)});
            event.clear();
            data.clear();
        } else if (line.rfind("event: ", 0) == 0) {
            event = line.substr(7);
        } else if (line.rfind("data: ", 0) == 0) {
            data += line.substr(6);
        }
    }
    return out;
}

class ServeProcess {
public:
    // Extra serve arguments after --model; waits until /health is ready unless expect_fail.
    explicit ServeProcess(const std::string& model, std::vector<std::string> args = {}, bool wait_ready = true) {
        log_path_ = std::filesystem::temp_directory_path() /
                    ("wo-serve-" + std::to_string(getpid()) + "-" + std::to_string(counter()++) + ".log");
        std::vector<std::string> argv = {WO_BINARY, "serve", "--model", model, "--port", "0"};
        if (std::find(args.begin(), args.end(), "--host") == args.end()) argv.insert(argv.end(), {"--host", "127.0.0.1"});
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        if (posix_spawn(&pid_, WO_BINARY, &fa, nullptr, cargv.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&fa);
        if (pid_ <= 0) return;
        // The port appears in the log as soon as the socket is bound (before the model loads).
        for (int i = 0; i < 600 && port_ == 0 && alive(); ++i) {
            for (const auto& j : log_lines())
                if (j.value("event", "") == "http_listening") port_ = j.value("port", 0);
            if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (wait_ready && port_ > 0)
            for (int i = 0; i < 1200; ++i) {
                auto r = client().Get("/health");
                if (r && r->status == 200) break;
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
    }
    ~ServeProcess() {
        stop();
        std::error_code ec;
        std::filesystem::remove(log_path_, ec);
    }

    int port() const { return port_; }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port_);
        c.set_read_timeout(120, 0);
        return c;
    }
    bool alive() {
        if (exited_) return false;
        int st = 0;
        if (waitpid(pid_, &st, WNOHANG) == pid_) {
            exited_ = true;
            status_ = st;
        }
        return !exited_;
    }
    // Waits for the process to exit by itself; returns its exit code (-1 on timeout).
    int wait_exit(int timeout_ms) {
        for (int i = 0; i < timeout_ms / 20; ++i) {
            if (!alive()) return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return -1;
    }
    int stop() {
        if (pid_ > 0 && alive()) kill(pid_, SIGTERM);
        const int rc = wait_exit(20000);
        if (rc == -1 && pid_ > 0) {
            kill(pid_, SIGKILL);
            return wait_exit(5000);
        }
        return rc;
    }
    std::vector<nlohmann::json> log_lines() const {
        std::vector<nlohmann::json> out;
        std::ifstream in(log_path_);
        std::string line;
        while (std::getline(in, line)) {
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (!j.is_discarded()) out.push_back(j);
        }
        return out;
    }
    std::string log_text() const {
        std::ifstream in(log_path_);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

private:
    static int& counter() {
        static int c = 0;
        return c;
    }
    std::string log_path_;
    pid_t pid_ = -1;
    int port_ = 0;
    bool exited_ = false;
    int status_ = 0;
};

}  // namespace wo::test
