#include "awq/thread_pool.h"

#include <chrono>
#include <memory>

namespace awq {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work(int thread) {
  for (;;) {
    const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= n_tasks_) return;
    try {
      (*fn_)(t, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Back-to-back loops (a model's layers) arrive within microseconds: spin ~100 µs on the
    // generation before sleeping, so the next run() does not pay a futex wake-up per worker.
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
    while (generation_seen_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spin_until) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    // Join the current loop unless the caller has already closed it (it ran every task while this
    // worker slept or its vCPU was taken): a late worker then costs the caller nothing.
    uint64_t st = join_.load(std::memory_order_acquire);
    while (!(st & kClosed))
      if (join_.compare_exchange_weak(st, st + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        work(index);
        done_.fetch_add(1, std::memory_order_acq_rel);
        break;
      }
  }
}

void ThreadPool::run(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
  if (n_tasks <= 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    done_.store(0, std::memory_order_relaxed);
    join_.store(0, std::memory_order_release);  // open: publishes fn_, n_tasks_ to joining workers
    ++generation_;
    generation_seen_.store(generation_, std::memory_order_release);
  }
  cv_.notify_all();
  work(0);
  // Close the loop: only the workers that joined before this point are waited for. They finish
  // their last task shortly after the caller runs out; spin briefly, then yield.
  const uint64_t joined = join_.fetch_or(kClosed, std::memory_order_acq_rel) & ~kClosed;
  for (int spins = 0; uint64_t(done_.load(std::memory_order_acquire)) != joined; ++spins)
    if (spins > 1000) std::this_thread::yield();
  if (error_) std::rethrow_exception(error_);
}

namespace {
std::unique_ptr<ThreadPool>& pool_slot() {
  static std::unique_ptr<ThreadPool> p;
  return p;
}
}  // namespace

ThreadPool& default_pool() {
  auto& p = pool_slot();
  if (!p) p = std::make_unique<ThreadPool>(0);
  return *p;
}

void set_default_threads(int threads) { pool_slot() = std::make_unique<ThreadPool>(threads); }

}  // namespace awq
