// The sampler: greedy, top-k and top-p restrict the candidates as specified, the draw follows the
// softmax of logits / temperature, and a seed reproduces the sequence.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "awq/error.h"
#include "awq/model.h"

using namespace awq;

TEST(Sampler, GreedyTakesTheFirstMaximum) {
  Sampler s({});
  const std::vector<float> l = {0.5f, 2.f, -1.f, 2.f};
  EXPECT_EQ(s.sample(l), 1);
  EXPECT_EQ(argmax(l), 1);
}

TEST(Sampler, TopKAndTopPRestrictTheCandidates) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  std::map<int32_t, int> seen;
  Sampler k2({.temperature = 1, .top_k = 2, .seed = 1});
  for (int i = 0; i < 2000; ++i) ++seen[k2.sample(l)];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_NEAR(seen[0] / 2000.0, 0.5 / 0.8, 0.04);
  seen.clear();
  Sampler p({.temperature = 1, .top_p = 0.75f, .seed = 2});  // 0.5 + 0.3 is the shortest prefix reaching 0.75
  for (int i = 0; i < 2000; ++i) ++seen[p.sample(l)];
  EXPECT_EQ(seen.size(), 2u);
  seen.clear();
  Sampler all({.temperature = 1, .seed = 3});
  for (int i = 0; i < 4000; ++i) ++seen[all.sample(l)];
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_NEAR(seen[2] / 4000.0, 0.15, 0.03);
  seen.clear();
  Sampler hot({.temperature = 1000, .seed = 4});  // nearly uniform
  for (int i = 0; i < 4000; ++i) ++seen[hot.sample(l)];
  EXPECT_NEAR(seen[3] / 4000.0, 0.25, 0.04);
}

TEST(Sampler, SeedReproducesAndOptionsAreChecked) {
  std::vector<float> l(100);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(std::sin(double(i)));
  Sampler a({.temperature = 0.8f, .top_k = 50, .top_p = 0.9f, .seed = 42}), b({.temperature = 0.8f, .top_k = 50, .top_p = 0.9f, .seed = 42});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(l), b.sample(l));
  EXPECT_THROW(Sampler({.temperature = -1}), Error);
  EXPECT_THROW(Sampler({.top_k = -1}), Error);
  EXPECT_THROW(Sampler({.top_p = 0}), Error);
  EXPECT_THROW(Sampler({.top_p = 1.5f}), Error);
}
