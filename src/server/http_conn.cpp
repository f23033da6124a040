// The connection loop, its socket stream and the growing thread pool (see http_conn.h).
#include "server/http_conn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace wo {

using Clock = std::chrono::steady_clock;

struct HttpServer::Conn {
    enum class State { Idle, Reading, Busy };
    HttpServer* owner = nullptr;
    int fd = -1;
    State state = State::Idle;  // guarded by owner->mu_
    Clock::time_point since;    // when the state began
    bool evicted = false;       // guarded by owner->mu_
    bool close_after = false;   // this thread only
    bool timed_out = false;     // this thread only
    size_t written = 0;         // bytes of the current response
    bool registered = false;
    std::list<Conn*>::iterator it;
};

namespace {

thread_local HttpServer::Conn* t_conn = nullptr;  // the connection this thread serves

// Waits for `events` on fd until `deadline`, in slices so a stopping server is noticed.
// `stop` is checked between slices (nullptr: never stop early).
int wait_fd(int fd, short events, Clock::time_point deadline, const std::atomic<socket_t>* svr_sock) {
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return 0;
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 200)));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r > 0) return p.revents;
        if (svr_sock && *svr_sock == INVALID_SOCKET) return -1;
    }
}

void send_all_best_effort(int fd, const std::string& s) {
    size_t off = 0;
    const auto deadline = Clock::now() + std::chrono::milliseconds(200);
    while (off < s.size()) {
        const ssize_t k = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (k > 0) {
            off += static_cast<size_t>(k);
        } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline, nullptr) <= 0) return;
        } else {
            return;
        }
    }
}

std::string raw_error(int status, const char* reason, const char* code, const char* message, bool retriable) {
    const std::string body = std::string("{\"error\":{\"code\":\"") + code + "\",\"message\":\"" + message +
                             "\",\"retriable\":" + (retriable ? "true" : "false") + "}}";
    return "HTTP/1.1 " + std::to_string(status) + " " + reason +
           "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
}

}  // namespace

// Grows one thread per concurrent connection up to a bound; threads stay for reuse.
class HttpServer::Pool : public httplib::TaskQueue {
public:
    explicit Pool(size_t max_threads) : max_(max_threads) {}
    void enqueue(std::function<void()> fn) override {
        std::lock_guard lock(mu_);
        jobs_.push_back(std::move(fn));
        if (idle_ < jobs_.size() && threads_.size() < max_) threads_.emplace_back([this] { work(); });
        cv_.notify_one();
    }
    void shutdown() override {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();  // no enqueue after shutdown: the accept loop has ended
    }

private:
    void work() {
        std::unique_lock lock(mu_);
        for (;;) {
            ++idle_;
            cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
            --idle_;
            if (jobs_.empty()) return;
            auto fn = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            fn();
            lock.lock();
        }
    }
    const size_t max_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    size_t idle_ = 0;
    bool stop_ = false;
};

// A non-blocking socket read against the request's deadline (one for all reads of a request)
// and written with a per-write timeout.
class HttpServer::Stream : public httplib::Stream {
public:
    Stream(HttpServer& s, Conn& c) : srv_(s), c_(c) {}
    void start_request(Clock::time_point deadline) { deadline_ = deadline; }
    // Waits for the first byte of a request; false when the connection is done.
    bool wait_request(Clock::time_point until) {
        if (pos_ < len_) return true;
        const int r = wait_fd(c_.fd, POLLIN, until, &srv_.svr_sock_);
        return r > 0 && fill() > 0;
    }

    bool is_readable() const override {
        return pos_ < len_ || wait_fd(c_.fd, POLLIN, deadline_, &srv_.svr_sock_) > 0;
    }
    bool is_writable() const override {
        const int r = wait_fd(c_.fd, POLLOUT, Clock::now() + srv_.limits_.write_timeout, nullptr);
        return r > 0 && !(r & (POLLERR | POLLHUP)) && !HttpServer::client_gone();
    }
    ssize_t read(char* ptr, size_t size) override {
        if (pos_ == len_) {
            const int r = wait_fd(c_.fd, POLLIN, deadline_, &srv_.svr_sock_);
            if (r == 0) c_.timed_out = true;
            if (r <= 0) return -1;
            const ssize_t k = fill();
            if (k <= 0) return k;
        }
        const size_t m = std::min(size, len_ - pos_);
        std::memcpy(ptr, buf_ + pos_, m);
        pos_ += m;
        return static_cast<ssize_t>(m);
    }
    ssize_t write(const char* ptr, size_t size) override {
        size_t off = 0;
        while (off < size) {
            const ssize_t k = ::send(c_.fd, ptr + off, size - off, MSG_NOSIGNAL);
            if (k > 0) {
                off += static_cast<size_t>(k);
            } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (wait_fd(c_.fd, POLLOUT, Clock::now() + srv_.limits_.write_timeout, nullptr) <= 0) return -1;
            } else {
                return -1;
            }
        }
        c_.written += size;
        return static_cast<ssize_t>(size);
    }
    void get_remote_ip_and_port(std::string& ip, int& port) const override { addr(true, ip, port); }
    void get_local_ip_and_port(std::string& ip, int& port) const override { addr(false, ip, port); }
    socket_t socket() const override { return c_.fd; }

private:
    ssize_t fill() {
        for (;;) {
            const ssize_t k = ::recv(c_.fd, buf_, sizeof buf_, 0);
            if (k < 0 && errno == EINTR) continue;
            if (k < 0 && errno == EAGAIN) {
                if (wait_fd(c_.fd, POLLIN, deadline_, &srv_.svr_sock_) <= 0) return -1;
                continue;
            }
            pos_ = 0;
            len_ = k > 0 ? static_cast<size_t>(k) : 0;
            return k;
        }
    }
    void addr(bool peer, std::string& ip, int& port) const {
        sockaddr_storage a{};
        socklen_t n = sizeof a;
        if ((peer ? getpeername(c_.fd, reinterpret_cast<sockaddr*>(&a), &n)
                  : getsockname(c_.fd, reinterpret_cast<sockaddr*>(&a), &n)) != 0)
            return;
        char buf[INET6_ADDRSTRLEN] = {};
        if (a.ss_family == AF_INET) {
            auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
            inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
            port = ntohs(v4->sin_port);
        } else if (a.ss_family == AF_INET6) {
            auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
            inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
            port = ntohs(v6->sin6_port);
        }
        ip = buf;
    }

    HttpServer& srv_;
    Conn& c_;
    Clock::time_point deadline_;
    char buf_[8192];
    size_t pos_ = 0, len_ = 0;
};

HttpServer::HttpServer(HttpLimits limits) : limits_(limits) {
    const size_t threads = static_cast<size_t>(limits_.max_connections) + 16;
    new_task_queue = [threads] { return new Pool(threads); };
    set_keep_alive_max_count(100);
}

HttpServer::~HttpServer() = default;

int HttpServer::bind_exclusive(const std::string& host, int port) {
    // httplib's default sets SO_REUSEPORT, which lets a second process bind the same port and
    // take half the connections. SO_REUSEADDR alone only reuses ports in TIME_WAIT.
    set_socket_options([this](socket_t s) {
        int yes = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        listen_fd_ = s;
    });
    const int p = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
    // httplib listens with a backlog of 5; listening again only changes the backlog.
    if (p > 0 && listen_fd_ >= 0) ::listen(listen_fd_, limits_.listen_backlog);
    return p;
}

int HttpServer::open_connections() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(std::count_if(conns_.begin(), conns_.end(), [](Conn* c) { return !c->evicted; }));
}

bool HttpServer::admit(Conn& c) {
    std::lock_guard lock(mu_);
    int live = 0;
    Conn* victim = nullptr;
    auto rank = [](const Conn* x) { return x->state == Conn::State::Idle ? 0 : 1; };  // idle before reading
    for (Conn* o : conns_) {
        if (o->evicted) continue;
        ++live;
        if (o->state == Conn::State::Busy) continue;
        if (!victim || rank(o) < rank(victim) || (rank(o) == rank(victim) && o->since < victim->since)) victim = o;
    }
    if (live >= limits_.max_connections) {
        if (!victim) return false;
        victim->evicted = true;
        ::shutdown(victim->fd, SHUT_RDWR);  // its thread sees EOF and closes it
        ++evicted_;
    }
    c.it = conns_.insert(conns_.end(), &c);
    c.registered = true;
    return true;
}

bool HttpServer::process_and_close_socket(socket_t sock) {
    const auto accepted = Clock::now();
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Conn c;
    c.owner = this;
    c.fd = sock;
    c.since = accepted;
    bool ok = false;
    if (!admit(c)) {
        ++refused_;
        send_all_best_effort(sock, raw_error(503, "Service Unavailable", "QUEUE_FULL",
                                             "too many open connections, all busy", true));
    } else {
        t_conn = &c;
        Stream strm(*this, c);
        for (size_t n = 0; n < keep_alive_max_count_; ++n) {
            // The first request's deadline counts from accept, so an idle new socket gets no
            // more than the request timeout; later ones from their first byte.
            const auto wait_until = n == 0 ? accepted + limits_.request_timeout : Clock::now() + limits_.keep_alive;
            if (!strm.wait_request(wait_until)) break;
            {
                std::lock_guard lock(mu_);
                c.state = Conn::State::Reading;
                if (n > 0) c.since = Clock::now();
                if (c.evicted) break;
            }
            strm.start_request(n == 0 ? accepted + limits_.request_timeout : Clock::now() + limits_.request_timeout);
            c.written = 0;
            bool closed = false;
            ok = process_request(strm, n + 1 == keep_alive_max_count_, closed, nullptr);
            if (c.timed_out) ++timed_out_;
            if (c.timed_out && c.written == 0)
                send_all_best_effort(sock, raw_error(408, "Request Timeout", "REQUEST_TIMEOUT",
                                                     "the request was not received in time", false));
            if (!ok || closed || c.close_after || c.timed_out) break;
            std::lock_guard lock(mu_);
            if (c.evicted) break;
            c.state = Conn::State::Idle;
            c.since = Clock::now();
        }
        t_conn = nullptr;
    }
    {
        std::lock_guard lock(mu_);
        if (c.registered) conns_.erase(c.it);
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ok;
}

void HttpServer::mark_busy() {
    if (!t_conn) return;
    std::lock_guard lock(t_conn->owner->mu_);
    t_conn->state = Conn::State::Busy;
}

void HttpServer::close_after_response() {
    if (t_conn) t_conn->close_after = true;
}

bool HttpServer::request_timed_out() { return t_conn && t_conn->timed_out; }

bool HttpServer::client_gone() {
    if (!t_conn) return false;
    pollfd p{t_conn->fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
    if (p.revents & POLLIN) {  // data (a pipelined request) or EOF
        char b;
        const ssize_t k = ::recv(t_conn->fd, &b, 1, MSG_PEEK);
        return k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR);
    }
    return false;
}

}  // namespace wo
