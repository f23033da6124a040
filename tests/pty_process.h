// Runs a command on a pseudo-terminal, so it sees what a person at a terminal gives it (isatty
// on stdin, stdout and stderr), and collects what it prints there. The terminal turns "\n" into
// "\r\n"; output() turns it back, leaving the lone '\r' a program writes itself.
#pragma once
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace wo::test {

class PtyProcess {
public:
    explicit PtyProcess(const std::vector<std::string>& argv) {
        winsize ws{};
        ws.ws_row = 40;
        ws.ws_col = 200;  // wide enough that no line wraps
        pid_ = forkpty(&fd_, nullptr, nullptr, &ws);
        if (pid_ == 0) {
            std::vector<char*> a;
            for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
            a.push_back(nullptr);
            execv(a[0], a.data());
            _exit(127);
        }
    }
    ~PtyProcess() {
        if (pid_ > 0 && status_ < 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (fd_ >= 0) close(fd_);
    }
    PtyProcess(const PtyProcess&) = delete;
    PtyProcess& operator=(const PtyProcess&) = delete;

    bool started() const { return pid_ > 0; }

    // Reads until `needle` is in the output; false when it is not there within timeout_ms.
    bool wait_for(const std::string& needle, int timeout_ms) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (output().find(needle) == std::string::npos) {
            if (std::chrono::steady_clock::now() >= end || !read_some(end)) return false;
        }
        return true;
    }

    // Reads to the end and returns the exit status; -1 when it runs past timeout_ms (then killed).
    int wait_exit(int timeout_ms) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (read_some(end)) {
        }
        while (std::chrono::steady_clock::now() < end) {
            int st = 0;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return status_;
            }
            usleep(10000);
        }
        return -1;
    }

    void signal(int sig) { kill(pid_, sig); }

    std::string output() const {
        std::string s;
        for (size_t i = 0; i < raw_.size(); ++i)
            if (!(raw_[i] == '\r' && i + 1 < raw_.size() && raw_[i + 1] == '\n')) s += raw_[i];
        return s;
    }

private:
    // One read; false at the end of output (the child closed the terminal) or at the deadline.
    bool read_some(std::chrono::steady_clock::time_point end) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
        char buf[4096];
        const ssize_t n = read(fd_, buf, sizeof buf);
        if (n <= 0) return false;  // EIO once the child and its descendants closed the pty
        raw_.append(buf, static_cast<size_t>(n));
        return true;
    }

    pid_t pid_ = -1;
    int fd_ = -1;
    int status_ = -1;
    std::string raw_;
};

}  // namespace wo::test
