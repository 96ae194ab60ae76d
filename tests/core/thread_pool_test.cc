// ThreadPool: every task runs exactly once per run, back to back and after the workers fell asleep,
// with late workers (woken after the caller ran out of tasks) skipping the run; thread indices are
// unique among concurrent tasks; the first exception is rethrown.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "awq/thread_pool.h"

using namespace awq;

TEST(ThreadPool, EveryTaskOnceAcrossManyRunsAndSleeps) {
  for (int threads : {2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int run = 0; run < 3000; ++run) {
      const int64_t n = 1 + run % 7;  // few, tiny tasks: the caller often takes them all
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::vector<std::atomic<int>> in_use(static_cast<size_t>(threads));
      pool.run(n, [&](int64_t t, int th) {
        ASSERT_GE(th, 0);
        ASSERT_LT(th, threads);
        EXPECT_EQ(in_use[size_t(th)].fetch_add(1), 0) << "thread index shared by concurrent tasks";
        hits[size_t(t)].fetch_add(1);
        in_use[size_t(th)].fetch_sub(1);
      });
      for (int64_t t = 0; t < n; ++t) ASSERT_EQ(hits[size_t(t)].load(), 1) << "run " << run << " task " << t;
      if (run % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // workers go to sleep
    }
  }
}

TEST(ThreadPool, LongTasksAreShared) {
  ThreadPool pool(2);
  std::atomic<int> total{0};
  pool.run(64, [&](int64_t, int) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    total.fetch_add(1);
  });
  EXPECT_EQ(total.load(), 64);
}

TEST(ThreadPool, FirstExceptionIsRethrownAndThePoolStaysUsable) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.run(50, [&](int64_t t, int) {
    if (t % 10 == 3) throw std::runtime_error("task failed");
  }),
               std::runtime_error);
  std::atomic<int> n{0};
  pool.run(20, [&](int64_t, int) { n.fetch_add(1); });
  EXPECT_EQ(n.load(), 20);
}
