// A small fork-join pool for the CPU backend: parallel_for splits [0, n) into chunks that the
// calling thread and the workers take from a shared counter, and returns when all are done.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wo::cpu {

class ThreadPool {
public:
    // n_threads counts the caller; 0 = std::thread::hardware_concurrency().
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }
    // fn(begin, end, thread_index) with thread_index in [0, size()). Chunks are at least
    // min_chunk long so tiny loops do not pay for waking every worker.
    using Fn = std::function<void(int64_t, int64_t, int)>;
    void parallel_for(int64_t n, int64_t min_chunk, const Fn& fn);

private:
    void worker(int index);
    void run_chunks(int index);

    int n_threads_ = 1;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable start_cv_, done_cv_;
    uint64_t generation_ = 0;
    bool stop_ = false;
    int busy_ = 0;  // workers still inside the current job
    // The current job.
    const Fn* fn_ = nullptr;
    int64_t n_ = 0, chunk_ = 1;
    std::atomic<int64_t> next_{0};
};

}  // namespace wo::cpu
