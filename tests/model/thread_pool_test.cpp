// The CPU backend's fork-join pool: every index is visited exactly once, by a valid thread,
// for sizes around the chunking thresholds, and the pool is reusable across many jobs.
#include "backend/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace wo::cpu {
namespace {

TEST(ThreadPool, EveryIndexOnceByAValidThread) {
    for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        EXPECT_EQ(pool.size(), threads);
        for (int64_t n : {0, 1, 2, 7, 8, 9, 63, 64, 65, 1000}) {
            for (int64_t min_chunk : {1, 4, 16}) {
                std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
                std::atomic<bool> bad_thread{false};
                pool.parallel_for(n, min_chunk, [&](int64_t b, int64_t e, int t) {
                    if (t < 0 || t >= threads || b < 0 || e > n || b >= e) bad_thread = true;
                    for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
                });
                EXPECT_FALSE(bad_thread) << threads << " " << n;
                for (int64_t i = 0; i < n; ++i)
                    ASSERT_EQ(seen[static_cast<size_t>(i)].load(), 1)
                        << "threads " << threads << " n " << n << " i " << i;
            }
        }
    }
}

TEST(ThreadPool, ManyShortJobsInARow) {
    ThreadPool pool(2);
    std::atomic<int64_t> sum{0};
    for (int rep = 0; rep < 2000; ++rep)
        pool.parallel_for(10, 1, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) sum += i;
        });
    EXPECT_EQ(sum.load(), 2000 * 45);
}

}  // namespace
}  // namespace wo::cpu
