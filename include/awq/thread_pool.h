// A fixed-size pool of worker threads for data-parallel loops (kernels, benchmarks).
// The calling thread takes part in every loop, so a pool of size T runs T-1 worker threads.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace awq {

class ThreadPool {
 public:
  // threads <= 0 means std::thread::hardware_concurrency() (at least 1).
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(task, thread) once for every task in [0, n_tasks); thread is in [0, size()) and no two
  // concurrent calls share a thread index, so per-thread scratch can be indexed by it. Tasks are
  // handed out dynamically in increasing order; the caller runs tasks too, and a worker that wakes
  // after the caller took the last task does not join (so a descheduled worker delays nothing). Returns when all tasks are done. Not reentrant:
  // fn must not call run() on the same pool; one run() at a time per pool (callers serialize).
  // An exception thrown by fn is rethrown here (the first one; other tasks still run).
  void run(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

 private:
  void worker(int index);
  void work(int thread);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;  // guarded by mu_; bumped per run()
  std::atomic<uint64_t> generation_seen_{0};  // lock-free copy of generation_ for spinning workers
  bool stop_ = false;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  // Workers joined to the current run (low bits) and whether the caller closed it to late joiners
  // (kClosed); done_ counts joined workers that finished. The caller waits for joined == done_
  // only, never for a worker that was still asleep when the tasks ran out.
  static constexpr uint64_t kClosed = uint64_t(1) << 63;
  std::atomic<uint64_t> join_{kClosed};
  std::atomic<int> done_{0};
  std::exception_ptr error_;
  std::mutex error_mu_;
};

// The process-wide pool the kernels use when none is passed. Created on first use with
// hardware_concurrency() threads.
ThreadPool& default_pool();
// Replaces the default pool with one of `threads` threads (<= 0: hardware_concurrency()).
// Not thread-safe with concurrent kernel calls.
void set_default_threads(int threads);

}  // namespace awq
