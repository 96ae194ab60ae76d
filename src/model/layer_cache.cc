#include "awq/layer_cache.h"

#include <atomic>
#include <iterator>
#include <vector>

namespace awq {

LayerCache::LayerCache(size_t budget_bytes) : budget_(budget_bytes) {}

void LayerCache::touch(Entry& e) { lru_.splice(lru_.begin(), lru_, e.lru); }

std::string LayerCache::owner_of(const std::string& key) {
  const size_t slash = key.find('/');
  return slash == std::string::npos ? std::string() : key.substr(0, slash + 1);
}

void LayerCache::erase(std::string key) {
  auto it = map_.find(key);
  Entry& e = it->second;
  auto o = owners_.find(e.owner);
  o->second.bytes -= e.bytes;
  o->second.admitted.erase(e.admitted);
  if (o->second.admitted.empty()) owners_.erase(o);
  bytes_ -= e.bytes;
  lru_.erase(e.lru);
  map_.erase(it);
}

void LayerCache::evict_to(size_t budget) {
  while (bytes_ > budget && !lru_.empty()) {
    erase(lru_.back());
    ++stats_.evictions;
  }
}

bool LayerCache::make_room(const std::string& owner, size_t need) {
  if (need > budget_) return false;
  auto self = owners_.find(owner);
  const size_t own = self == owners_.end() ? 0 : self->second.bytes;
  // Plan first (nothing is evicted unless the entry then fits): take from the owner holding the
  // most bytes, its newest entry first, while it keeps at least what `owner` will hold.
  std::unordered_map<std::string, size_t> left;  // owner -> bytes after the planned evictions
  std::unordered_map<std::string, std::list<std::string>::const_reverse_iterator> next;
  std::vector<std::string> victims;
  size_t freed = 0;
  while (bytes_ - freed + need > budget_) {
    const std::string* richest = nullptr;
    size_t most = 0;
    for (const auto& [name, o] : owners_) {
      if (name == owner) continue;
      const size_t b = left.count(name) ? left[name] : o.bytes;
      if (b > most) most = b, richest = &name;
    }
    if (!richest) return false;
    const Owner& v = owners_.at(*richest);
    auto [pos, fresh] = next.try_emplace(*richest, v.admitted.crbegin());
    if (pos->second == v.admitted.crend()) return false;
    const size_t b = map_.at(*pos->second).bytes;
    if (most - b < own + need) return false;  // the victim's owner would end below the newcomer's
    victims.push_back(*pos->second);
    ++pos->second;
    left[*richest] = most - b;
    freed += b;
  }
  for (const std::string& k : victims) {
    erase(k);
    ++stats_.evictions;
  }
  return true;
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
  const std::string owner = owner_of(key);
  if (make_room(owner, got.bytes)) {
    Owner& o = owners_[owner];
    lru_.push_front(key);
    o.admitted.push_back(key);
    map_.emplace(key, Entry{got.value, got.bytes, owner, lru_.begin(), std::prev(o.admitted.end())});
    o.bytes += got.bytes;
    bytes_ += got.bytes;
  }
  loaded_.notify_all();
  return got.value;
}

size_t LayerCache::evict_prefix(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  std::vector<std::string> keys;
  for (const auto& [key, _] : map_)
    if (key.compare(0, prefix.size(), prefix) == 0) keys.push_back(key);
  for (const std::string& k : keys) erase(k);
  n = keys.size();
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
