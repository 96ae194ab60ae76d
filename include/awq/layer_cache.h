// A cache of ready (read and repacked) layers, least recently used first out, bounded in bytes,
// shared by several open models and safe to use from any number of threads.
//
// Entries are type-erased (shared_ptr<const void>) and keyed by a string; each model uses its own
// key prefix (new_owner_id()), so two models never share an entry. A caller holds what get()
// returns for as long as it uses it: eviction drops only the cache's reference, never memory in
// use. An entry larger than the whole budget is handed out but not kept (the model then streams:
// it reloads that layer on every use), so any budget, zero included, runs.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace awq {

class LayerCache {
 public:
  using Value = std::shared_ptr<const void>;
  struct Loaded {
    Value value;
    size_t bytes = 0;  // what the entry holds in memory (counted against the budget)
  };
  using Loader = std::function<Loaded()>;
  struct Stats {
    uint64_t hits = 0, misses = 0, evictions = 0;
    size_t bytes = 0, entries = 0, budget = 0;  // bytes <= budget always holds
  };

  explicit LayerCache(size_t budget_bytes);
  LayerCache(const LayerCache&) = delete;
  LayerCache& operator=(const LayerCache&) = delete;

  // The entry for `key`; when absent, runs `load` (on the calling thread, without the cache's lock)
  // and keeps the result, evicting least recently used entries until the budget holds. Only one
  // thread loads a given key at a time: others asking for it wait for that load. An exception
  // from `load` propagates to its caller (and to nobody else: a waiter then loads it itself).
  Value get(const std::string& key, const Loader& load);
  // The entry if cached (counts as a use), else null; never loads.
  Value find(const std::string& key);
  // Whether `key` is cached or being loaded (for prefetchers: nothing to do then). Not a use.
  bool present_or_loading(const std::string& key) const;

  // Drops every entry whose key starts with `prefix` (a model closing); returns how many.
  size_t evict_prefix(const std::string& prefix);
  // Changes the budget, evicting down to it.
  void set_budget(size_t budget_bytes);
  size_t budget() const;
  Stats stats() const;

  // A process-unique key prefix ("m<N>/") for one model's entries.
  static std::string new_owner_id();

 private:
  struct Entry {
    Value value;
    size_t bytes;
    std::list<std::string>::iterator lru;  // position in lru_ (front: most recent)
  };
  void evict_to(size_t budget);  // lock held
  void touch(Entry& e);          // lock held

  mutable std::mutex mu_;
  std::condition_variable loaded_;
  size_t budget_;
  size_t bytes_ = 0;
  std::list<std::string> lru_;
  std::unordered_map<std::string, Entry> map_;
  std::unordered_map<std::string, int> loading_;  // keys being loaded now
  Stats stats_;
};

}  // namespace awq
