#include "awq/layer_cache.h"

#include <atomic>

namespace awq {

LayerCache::LayerCache(size_t budget_bytes) : budget_(budget_bytes) {}

void LayerCache::touch(Entry& e) { lru_.splice(lru_.begin(), lru_, e.lru); }

void LayerCache::evict_to(size_t budget) {
  while (bytes_ > budget && !lru_.empty()) {
    auto it = map_.find(lru_.back());
    bytes_ -= it->second.bytes;
    map_.erase(it);
    lru_.pop_back();
    ++stats_.evictions;
  }
}

LayerCache::Value LayerCache::find(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  touch(it->second);
  ++stats_.hits;
  return it->second.value;
}

bool LayerCache::present_or_loading(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.count(key) != 0 || loading_.count(key) != 0;
}

LayerCache::Value LayerCache::get(const std::string& key, const Loader& load) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto it = map_.find(key);
    if (it != map_.end()) {
      touch(it->second);
      ++stats_.hits;
      return it->second.value;
    }
    if (!loading_.count(key)) break;
    // Another thread is loading it: wait for that load (if it failed, or the entry was too big to
    // keep or already evicted, this thread loads it itself).
    loaded_.wait(lock, [&] { return !loading_.count(key); });
  }
  ++stats_.misses;
  loading_[key] = 1;
  lock.unlock();
  Loaded got;
  try {
    got = load();
  } catch (...) {
    lock.lock();
    loading_.erase(key);
    loaded_.notify_all();
    throw;
  }
  lock.lock();
  loading_.erase(key);
  if (got.bytes <= budget_) {
    evict_to(budget_ - got.bytes);
    lru_.push_front(key);
    map_.emplace(key, Entry{got.value, got.bytes, lru_.begin()});
    bytes_ += got.bytes;
  }
  loaded_.notify_all();
  return got.value;
}

size_t LayerCache::evict_prefix(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (auto it = map_.begin(); it != map_.end();) {
    if (it->first.compare(0, prefix.size(), prefix) == 0) {
      bytes_ -= it->second.bytes;
      lru_.erase(it->second.lru);
      it = map_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

void LayerCache::set_budget(size_t budget_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  budget_ = budget_bytes;
  evict_to(budget_);
}

size_t LayerCache::budget() const {
  std::lock_guard<std::mutex> lock(mu_);
  return budget_;
}

LayerCache::Stats LayerCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s = stats_;
  s.bytes = bytes_;
  s.entries = map_.size();
  s.budget = budget_;
  return s;
}

std::string LayerCache::new_owner_id() {
  static std::atomic<uint64_t> next{0};
  return "m" + std::to_string(next.fetch_add(1)) + "/";
}

}  // namespace awq
