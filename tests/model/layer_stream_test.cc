// A model streaming its layers through a LayerCache (ModelOptions::layer_cache): any budget, from
// zero (every layer read again on every use) through less than one layer to the whole model, with
// prefetch on and off, gives logits byte-identical to the model with every layer loaded.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "awq/error.h"
#include "awq/layer_cache.h"
#include "awq/model.h"

namespace awq {
namespace {

const std::string kQuant = std::string(AWQ_TEST_DATA) + "/models/llama-awq-gemm-g32";
const std::string kDense = std::string(AWQ_TEST_DATA) + "/models/qwen3";

std::vector<float> decode_logits(const Model& m, const std::vector<int32_t>& prompt, int steps) {
  KvCache c = m.new_cache(1, int64_t(prompt.size()) + steps);
  std::vector<float> all, out;
  m.forward(c, {prompt}, true, out);
  all = out;
  for (int s = 0; s < steps; ++s) {
    m.forward(c, {{argmax(std::span<const float>(out.data() + out.size() - size_t(m.config().vocab), size_t(m.config().vocab)))}}, false, out);
    all.insert(all.end(), out.begin(), out.end());
  }
  return all;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(LayerStream, AnyBudgetGivesByteIdenticalLogits) {
  for (const std::string& dir : {kQuant, kDense}) {
    SCOPED_TRACE(dir);
    auto whole = Model::load(dir, {.threads = 1});
    const std::vector<int32_t> prompt = {1, 5, 9, 3, 7, 2};
    const auto want = decode_logits(*whole, prompt, 4);
    // The size of one layer, from a cache that keeps everything.
    auto probe_cache = std::make_shared<LayerCache>(size_t(1) << 40);
    auto probe = Model::load(dir, {.threads = 1, .layer_cache = probe_cache, .prefetch = 0});
    ASSERT_TRUE(same_bytes(decode_logits(*probe, prompt, 4), want));
    const auto full = probe_cache->stats();
    ASSERT_EQ(full.entries, size_t(probe->config().layers));
    const size_t model_bytes = full.bytes, layer = model_bytes / full.entries;
    for (size_t budget : {size_t(0), layer / 2, layer + 1, model_bytes / 2, model_bytes})
      for (int prefetch : {0, 1, 2}) {
        SCOPED_TRACE("budget " + std::to_string(budget) + " prefetch " + std::to_string(prefetch));
        auto cache = std::make_shared<LayerCache>(budget);
        auto m = Model::load(dir, {.threads = 1, .layer_cache = cache, .prefetch = prefetch});
        EXPECT_TRUE(same_bytes(decode_logits(*m, prompt, 4), want));
        EXPECT_LE(cache->stats().bytes, budget);
        if (budget < model_bytes) {
          EXPECT_GT(cache->stats().misses, uint64_t(probe->config().layers));  // layers were read again
        }
      }
  }
}

// A budget of a fraction of the model keeps that fraction of the layers resident across forward
// passes (the first admitted; the cache is scan-resistant), so every pass after the first serves
// exactly those layers from memory, with prefetch on or off, and the logits stay byte-identical.
TEST(LayerStream, AFractionOfTheModelKeepsThatFractionOfItsLayers) {
  const std::string bundled = std::string(AWQ_TEST_DATA) + "/../../models/kjv-llama";
  for (const auto& [dir, den] : {std::pair<std::string, size_t>{bundled, 4}, {kQuant, 2}}) {
    SCOPED_TRACE(dir);
    auto whole = Model::load(dir, {.threads = 1});
    const std::vector<int32_t> prompt = {1, 5, 9, 3, 7, 2};
    const int steps = 4, forwards = 1 + steps;
    const auto want = decode_logits(*whole, prompt, steps);
    auto probe_cache = std::make_shared<LayerCache>(size_t(1) << 40);
    auto probe = Model::load(dir, {.threads = 1, .layer_cache = probe_cache, .prefetch = 0});
    probe->prompt_logits(prompt);
    const size_t model_bytes = probe_cache->stats().bytes, layers = size_t(probe->config().layers);
    ASSERT_EQ(layers % den, 0u);
    for (int prefetch : {0, 1}) {
      SCOPED_TRACE("prefetch " + std::to_string(prefetch));
      auto cache = std::make_shared<LayerCache>(model_bytes / den);
      auto m = Model::load(dir, {.threads = 1, .layer_cache = cache, .prefetch = prefetch});
      EXPECT_TRUE(same_bytes(decode_logits(*m, prompt, steps), want));
      const auto s = cache->stats();
      EXPECT_EQ(s.entries, layers / den);
      EXPECT_EQ(s.hits, uint64_t(s.entries) * uint64_t(forwards - 1));  // under LRU: 0
      EXPECT_EQ(s.misses, layers + (layers - s.entries) * uint64_t(forwards - 1));
      EXPECT_EQ(s.evictions, 0u);
    }
  }
}

TEST(LayerStream, ClosingAModelDropsItsLayersFromASharedCache) {
  auto cache = std::make_shared<LayerCache>(size_t(1) << 40);
  auto a = Model::load(kQuant, {.threads = 1, .layer_cache = cache});
  auto b = Model::load(kDense, {.threads = 1, .layer_cache = cache});
  a->prompt_logits(std::vector<int32_t>{1, 2, 3});
  b->prompt_logits(std::vector<int32_t>{1, 2, 3});
  const size_t both = cache->stats().entries;
  EXPECT_EQ(both, size_t(a->config().layers + b->config().layers));
  a.reset();
  EXPECT_EQ(cache->stats().entries, size_t(b->config().layers));
}

}  // namespace
}  // namespace awq

namespace awq {
namespace {

// A GGUF file streams its layers like a checkpoint directory: the golden file mixing all seven
// block types (4-bit kernels, dequantized and in-place dense linears) gives byte-identical logits
// at every budget, prefetch on and off; half the model keeps one of its two layers.
TEST(LayerStream, AGgufModelStreamsWithByteIdenticalLogits) {
  const std::string path = std::string(AWQ_TEST_DATA) + "/gguf/model-llama.gguf";
  auto whole = Model::load(path, {.threads = 1});
  const std::vector<int32_t> prompt = {1, 5, 9, 3, 7, 2};
  const auto want = decode_logits(*whole, prompt, 4);
  auto probe_cache = std::make_shared<LayerCache>(size_t(1) << 40);
  auto probe = Model::load(path, {.threads = 1, .layer_cache = probe_cache, .prefetch = 0});
  ASSERT_TRUE(same_bytes(decode_logits(*probe, prompt, 4), want));
  EXPECT_EQ(probe->load_notes(), whole->load_notes());
  EXPECT_EQ(probe->quantized(), whole->quantized());
  const auto full = probe_cache->stats();
  ASSERT_EQ(full.entries, size_t(probe->config().layers));
  const size_t model_bytes = full.bytes, layer = model_bytes / full.entries;
  for (size_t budget : {size_t(0), layer / 2, model_bytes / 2, model_bytes})
    for (int prefetch : {0, 1, 2}) {
      SCOPED_TRACE("budget " + std::to_string(budget) + " prefetch " + std::to_string(prefetch));
      auto cache = std::make_shared<LayerCache>(budget);
      auto m = Model::load(path, {.threads = 1, .layer_cache = cache, .prefetch = prefetch});
      EXPECT_TRUE(same_bytes(decode_logits(*m, prompt, 4), want));
      EXPECT_LE(cache->stats().bytes, budget);
      if (budget == model_bytes / 2) {
        EXPECT_EQ(cache->stats().entries, 1u);
      }
    }
}

}  // namespace
}  // namespace awq
