// Connection handling that holds against slow, idle and abusive clients, on top of
// cpp-httplib 0.11 (Debian). httplib reads with a per-read timeout on a fixed thread pool, so a
// client sending one byte a second keeps a thread forever and a few hundred idle sockets starve
// /health. HttpServer replaces httplib's per-connection loop (its virtual
// process_and_close_socket) with one that
//   - gives each request one deadline for its headers and body together (not per read),
//   - bounds open connections, closing the oldest idle or still-reading one first when full
//     (and answering 503 when every connection is busy generating),
//   - runs each connection on its own thread from a pool that grows up to that bound, so a
//     cheap request never waits behind slow ones,
// and lets handlers on the connection's thread ask whether the client has left.
#pragma once
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace wo {

struct HttpLimits {
    int max_connections = 256;                              // open at once; beyond: evict idle, else 503
    std::chrono::milliseconds request_timeout{10000};       // headers + body of one request
    std::chrono::milliseconds keep_alive{5000};             // idle wait for the next request
    std::chrono::milliseconds write_timeout{30000};         // one write to a client that does not read
    int listen_backlog = 1024;
};

class HttpServer : public httplib::Server {
public:
    explicit HttpServer(HttpLimits limits);
    ~HttpServer() override;

    // Binds host:port (0 = any) without SO_REUSEPORT, so a second worker on a taken port fails
    // instead of sharing it; returns the port or -1.
    int bind_exclusive(const std::string& host, int port);
    int open_connections() const;
    // Since start: connections closed to make room, requests that missed their deadline (408),
    // connections refused with 503 because every open one was busy.
    uint64_t evicted() const { return evicted_; }
    uint64_t timed_out() const { return timed_out_; }
    uint64_t refused() const { return refused_; }

    // For code running on a connection's thread (handlers, content providers).
    // The request was read and a handler owns the connection: it is no longer idle.
    static void mark_busy();
    // Close the connection after this response (the body was not read, e.g. an early 413).
    static void close_after_response();
    // The request's deadline passed while it was being read.
    static bool request_timed_out();
    // The peer closed or reset the connection (checked without blocking).
    static bool client_gone();

    struct Conn;  // one open connection (http_conn.cpp)

private:
    class Pool;
    class Stream;
    bool process_and_close_socket(socket_t sock) override;
    bool admit(Conn& c);  // under the bound: true; else evicts an idle one or returns false

    HttpLimits limits_;
    int listen_fd_ = -1;
    mutable std::mutex mu_;
    std::list<Conn*> conns_;  // oldest first
    std::atomic<uint64_t> evicted_{0}, timed_out_{0}, refused_{0};
};

}  // namespace wo
