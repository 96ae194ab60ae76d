// LayerCache: the scan-resistant admission (one owner's loop, owners' shares), LRU order under
// set_budget, the byte budget, entries larger than the budget, one load per key, and
// several threads sharing one cache across two "models" (key prefixes) while another evicts. The
// tests in tests/concurrency/ also build alone under ThreadSanitizer (preset tsan, scripts/sanitize.sh).
#include "awq/layer_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace awq {
namespace {

// An entry: `bytes` bytes all equal to `fill`, so a reader can check it got the layer it asked for.
LayerCache::Loader filled(size_t bytes, uint8_t fill, std::atomic<int>* loads = nullptr) {
  return [=] {
    if (loads) loads->fetch_add(1);
    auto v = std::make_shared<std::vector<uint8_t>>(bytes, fill);
    return LayerCache::Loaded{v, bytes};
  };
}
const std::vector<uint8_t>& as_bytes(const LayerCache::Value& v) {
  return *static_cast<const std::vector<uint8_t>*>(v.get());
}

// One owner looping over more layers than fit: the first admitted stay, the rest stream (under
// LRU each layer would be evicted just before its reuse: 0 hits).
TEST(LayerCache, OneOwnerLoopingKeepsTheFirstAdmittedAndStreamsTheRest) {
  LayerCache c(300);
  std::atomic<int> loads{0};
  const std::string m = LayerCache::new_owner_id();
  for (int pass = 0; pass < 4; ++pass)
    for (int l = 0; l < 8; ++l) EXPECT_EQ(as_bytes(c.get(m + std::to_string(l), filled(100, uint8_t(l), &loads)))[0], l);
  const auto s = c.stats();
  EXPECT_EQ(s.entries, 3u);
  EXPECT_EQ(s.bytes, 300u);
  EXPECT_EQ(s.hits, 3u * 3u);           // layers 0..2 on passes 2..4
  EXPECT_EQ(s.misses, 8u + 5u * 3u);    // everything once, then layers 3..7 on every pass
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_EQ(loads.load(), int(s.misses));
  for (int l = 0; l < 3; ++l) EXPECT_NE(c.find(m + std::to_string(l)), nullptr);
  EXPECT_EQ(c.find(m + "3"), nullptr);
}

// A second owner takes entries from one that holds more (its newest first) until both hold equal
// shares, then streams; neither takes them back, so both keep their hits on later passes.
TEST(LayerCache, OwnersSharingAFullCacheConvergeToEqualShares) {
  LayerCache c(400);
  const std::string a = LayerCache::new_owner_id(), b = LayerCache::new_owner_id();
  auto pass = [&](const std::string& m, uint8_t fill) {
    for (int l = 0; l < 6; ++l) c.get(m + std::to_string(l), filled(100, fill));
  };
  pass(a, 1);  // a holds layers 0..3
  EXPECT_EQ(c.stats().entries, 4u);
  pass(b, 2);  // b takes a's 3 and 2, keeps its own 0 and 1
  auto s = c.stats();
  EXPECT_EQ(s.evictions, 2u);
  for (const std::string& m : {a, b}) {
    EXPECT_NE(c.find(m + "0"), nullptr);
    EXPECT_NE(c.find(m + "1"), nullptr);
    EXPECT_EQ(c.find(m + "2"), nullptr);
  }
  const uint64_t hits = c.stats().hits;
  for (int i = 0; i < 3; ++i) {
    pass(a, 1);
    pass(b, 2);
  }
  s = c.stats();
  EXPECT_EQ(s.evictions, 2u);         // stable: nothing taken back and forth
  EXPECT_EQ(s.hits - hits, 3u * 4u);  // each pass of each model: its two resident layers
  EXPECT_EQ(s.bytes, 400u);
  EXPECT_EQ(c.evict_prefix(a), 2u);  // a closing frees its share for b
  pass(b, 2);
  EXPECT_EQ(c.stats().entries, 4u);
}

TEST(LayerCache, SetBudgetEvictsLeastRecentlyUsedFirst) {
  LayerCache c(300);
  std::atomic<int> loads{0};
  c.get("m/a", filled(100, 1, &loads));
  c.get("m/b", filled(100, 2, &loads));
  c.get("m/c", filled(100, 3, &loads));
  EXPECT_EQ(c.stats().bytes, 300u);
  c.get("m/a", filled(100, 1, &loads));  // hit: a becomes most recent, b is now the oldest
  EXPECT_EQ(loads.load(), 3);
  c.set_budget(200);
  EXPECT_EQ(c.find("m/b"), nullptr);
  EXPECT_NE(c.find("m/a"), nullptr);
  EXPECT_EQ(as_bytes(c.find("m/c"))[0], 3);
  const auto s = c.stats();
  EXPECT_EQ(s.bytes, 200u);
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.misses, 3u);
}

TEST(LayerCache, AnEntryLargerThanTheBudgetIsHandedOutNotKept) {
  LayerCache c(50);
  std::atomic<int> loads{0};
  auto v = c.get("big", filled(100, 7, &loads));
  EXPECT_EQ(as_bytes(v).size(), 100u);
  EXPECT_EQ(c.stats().bytes, 0u);
  c.get("big", filled(100, 7, &loads));  // streamed: loaded again
  EXPECT_EQ(loads.load(), 2);
  LayerCache zero(0);  // a zero budget runs too
  EXPECT_EQ(as_bytes(zero.get("x", filled(10, 9)))[0], 9);
}

TEST(LayerCache, EvictionNeverFreesAnEntryInUse) {
  LayerCache c(100);
  auto held = c.get("a", filled(100, 1));
  c.set_budget(0);  // evicts a from the cache
  EXPECT_EQ(c.find("a"), nullptr);
  EXPECT_EQ(as_bytes(held)[99], 1);  // still valid for its holder
}

TEST(LayerCache, AFailedLoadPropagatesAndLeavesNothing) {
  LayerCache c(100);
  EXPECT_THROW(c.get("a", [] () -> LayerCache::Loaded { throw std::runtime_error("bad layer"); }), std::runtime_error);
  EXPECT_FALSE(c.present_or_loading("a"));
  EXPECT_EQ(as_bytes(c.get("a", filled(10, 3)))[0], 3);
}

TEST(LayerCache, EvictPrefixDropsOneModelsEntries) {
  LayerCache c(1000);
  const std::string m1 = LayerCache::new_owner_id(), m2 = LayerCache::new_owner_id();
  ASSERT_NE(m1, m2);
  for (int i = 0; i < 3; ++i) {
    c.get(m1 + std::to_string(i), filled(10, 1));
    c.get(m2 + std::to_string(i), filled(10, 2));
  }
  EXPECT_EQ(c.evict_prefix(m1), 3u);
  EXPECT_EQ(c.stats().entries, 3u);
  EXPECT_EQ(c.find(m1 + "0"), nullptr);
  EXPECT_NE(c.find(m2 + "0"), nullptr);
  c.set_budget(15);
  EXPECT_EQ(c.stats().entries, 1u);
}

TEST(LayerCacheConcurrency, OneLoadPerKeyUnderContention) {
  LayerCache c(1 << 20);
  std::atomic<int> loads{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 50; ++i) EXPECT_EQ(as_bytes(c.get("k" + std::to_string(i % 5), filled(64, uint8_t(i % 5), &loads)))[0], i % 5);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(loads.load(), 5);  // the budget holds all five: each loaded exactly once
}

// Several threads run two "models" (key prefixes, 8 layers each) through one cache smaller than
// both, while another thread shrinks, grows and evicts: every reader gets the layer it asked for
// and the cache never holds more than its budget.
TEST(LayerCacheConcurrency, TwoModelsManyThreadsWithEviction) {
  constexpr size_t kLayer = 256;
  LayerCache c(6 * kLayer);
  const std::string model[2] = {LayerCache::new_owner_id(), LayerCache::new_owner_id()};
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 6; ++t)
    ts.emplace_back([&, t] {
      const std::string& m = model[t % 2];
      for (int step = 0; step < 400; ++step) {
        const int layer = (step + t) % 8;
        const uint8_t fill = uint8_t((t % 2) * 16 + layer);
        const auto v = c.get(m + "layer" + std::to_string(layer), filled(kLayer, fill));
        const auto& b = as_bytes(v);
        if (b.size() != kLayer || b.front() != fill || b.back() != fill) bad.fetch_add(1);
        const auto s = c.stats();  // one consistent snapshot
        if (s.bytes > s.budget) bad.fetch_add(1);
      }
    });
  std::thread evictor([&] {
    int i = 0;
    while (!stop.load()) {
      if (i % 3 == 0) c.evict_prefix(model[i % 2]);
      c.set_budget((i % 4 == 0 ? 2 : 6) * kLayer);
      ++i;
      std::this_thread::yield();
    }
  });
  for (auto& t : ts) t.join();
  stop = true;
  evictor.join();
  EXPECT_EQ(bad.load(), 0);
  const auto s = c.stats();
  EXPECT_LE(s.bytes, c.budget());
  EXPECT_GT(s.hits + s.misses, 0u);
}

}  // namespace
}  // namespace awq
