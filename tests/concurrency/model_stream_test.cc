// Several threads open, run and evict across two models sharing one LayerCache smaller than both
// (so layers are evicted and re-read while others use them), with prefetch threads running: every
// thread's logits equal the single-threaded ones. Built alone under ThreadSanitizer (preset tsan).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "awq/layer_cache.h"
#include "awq/model.h"

namespace awq {
namespace {

TEST(ModelStreamConcurrency, ThreadsOpenRunAndEvictAcrossTwoModels) {
  const std::string dirs[2] = {std::string(AWQ_TEST_DATA) + "/models/llama-awq-gemm-g32",
                               std::string(AWQ_TEST_DATA) + "/models/qwen3"};
  const std::vector<int32_t> prompt = {1, 5, 9, 3};
  std::vector<float> want[2];
  size_t model_bytes = 0;
  for (int i = 0; i < 2; ++i) {
    auto all = std::make_shared<LayerCache>(size_t(1) << 40);
    want[i] = Model::load(dirs[i], {.threads = 1, .layer_cache = all})->prompt_logits(prompt);
    model_bytes += all->stats().bytes;
  }
  auto shared = std::make_shared<LayerCache>(model_bytes / 3);
  std::shared_ptr<Model> open[2] = {Model::load(dirs[0], {.threads = 1, .layer_cache = shared}),
                                    Model::load(dirs[1], {.threads = 1, .layer_cache = shared, .prefetch = 2})};
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int r = 0; r < 3; ++r) {
        const int i = (t + r) % 2;
        // Odd threads also open (and close) their own copy of the model on the shared cache.
        std::shared_ptr<Model> own;
        if (t % 2) own = Model::load(dirs[i], {.threads = 1, .layer_cache = shared, .prefetch = 1});
        const Model& m = own ? *own : *open[i];
        const auto got = m.prompt_logits(prompt);
        if (got.size() != want[i].size() || std::memcmp(got.data(), want[i].data(), got.size() * sizeof(float)) != 0)
          bad.fetch_add(1);
        if (r == 1) shared->set_budget(t == 0 ? 0 : model_bytes / 3);
      }
    });
  for (auto& th : ts) th.join();
  EXPECT_EQ(bad.load(), 0);
  const auto s = shared->stats();
  EXPECT_LE(s.bytes, s.budget);
}

}  // namespace
}  // namespace awq
