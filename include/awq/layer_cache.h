// A cache of ready (read and repacked) layers, bounded in bytes, shared by several open models and
// safe to use from any number of threads.
//
// Entries are type-erased (shared_ptr<const void>) and keyed by a string; each model uses its own
// key prefix (new_owner_id(): the key up to its first '/' names the entry's owner), so two models
// never share an entry. A caller holds what get() returns for as long as it uses it: eviction
// drops only the cache's reference, never memory in use. An entry that is not kept is still
// handed out (the model then streams: it reloads that layer on every use), so any budget, zero
// included, runs.
//
// Admission is scan-resistant, because a model reads its layers in a loop: under plain LRU a loop
// longer than the budget evicts every layer just before its reuse (0 hits). Here, when a new entry
// does not fit:
//   - it never evicts entries of its own owner: a model whose layers do not all fit keeps the ones
//     admitted first and streams the rest, so a budget of a quarter of the model serves a quarter
//     of its layers from memory on every pass;
//   - it may evict entries of another owner, most recently admitted first, only while that owner
//     keeps at least as many bytes as the newcomer's owner then holds: owners sharing a full cache
//     converge to equal shares (a model idle since the others opened gives up half, not all) and
//     never take entries back and forth;
//   - otherwise it is handed out and not kept.
// set_budget() evicts least recently used entries first, whatever their owner.
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
  // and keeps the result when the admission rule above lets it (evicting other owners' entries to
  // make room). Only one
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
    std::string owner;
    std::list<std::string>::iterator lru;       // position in lru_ (front: most recent)
    std::list<std::string>::iterator admitted;  // position in its owner's admission order
  };
  struct Owner {
    size_t bytes = 0;
    std::list<std::string> admitted;  // keys in admission order (back: newest)
  };
  static std::string owner_of(const std::string& key);
  void evict_to(size_t budget);          // lock held; least recently used first
  void erase(std::string key);           // lock held (by value: callers pass keys it frees)
  bool make_room(const std::string& owner, size_t need);  // lock held; the admission rule
  void touch(Entry& e);                  // lock held

  mutable std::mutex mu_;
  std::condition_variable loaded_;
  size_t budget_;
  size_t bytes_ = 0;
  std::list<std::string> lru_;
  std::unordered_map<std::string, Entry> map_;
  std::unordered_map<std::string, Owner> owners_;  // owners with entries
  std::unordered_map<std::string, int> loading_;  // keys being loaded now
  Stats stats_;
};

}  // namespace awq
