// causal_attention (model_ops.h), the blocked-GEMM attention of quantize's calibration forwards:
// on every compiled target, each query row equals the per-row scalar reference attention_ref over
// that row's visible keys (causal, with and without a sliding window), for head dims with vector
// tails, GQA groups and lengths that are not multiples of the tile sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "awq/model_ops.h"
#include "kernels/kernel_test_util.h"

using namespace awq;
using namespace awq::kernels;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct Case {
  int64_t hd, group, len, window;
};

// Runs causal_attention on strided q/k/v (padding columns between rows) and compares each row with
// attention_ref over keys [start(i), i]. Returns the largest relative difference.
double check(const Case& c, float qscale) {
  const int64_t qs = c.group * c.hd + 5, kvs = c.hd + 3, os = c.group * c.hd + 7;
  const auto q = randn(size_t(c.len * qs), 1, qscale), k = randn(size_t(c.len * kvs), 2, 1.0f), v = randn(size_t(c.len * kvs), 3, 1.0f);
  std::vector<float> out(size_t(c.len * os), -7.0f), scratch(causal_attention_scratch(c.len, c.hd));
  const float scale = 1.0f / std::sqrt(float(c.hd));
  causal_attention(q.data(), qs, c.group, c.hd, k.data(), v.data(), kvs, c.len, c.window, scale, out.data(), os, scratch.data());
  double worst = 0;
  std::vector<float> qrow(size_t(c.group * c.hd)), ref(size_t(c.group * c.hd)), s(size_t(c.group * c.len));
  for (int64_t i = 0; i < c.len; ++i) {
    const int64_t start = c.window > 0 ? std::max<int64_t>(0, i + 1 - c.window) : 0;
    std::copy(q.begin() + i * qs, q.begin() + i * qs + c.group * c.hd, qrow.begin());
    attention_ref(qrow.data(), c.group, c.hd, k.data() + start * kvs, v.data() + start * kvs, kvs, i + 1 - start, scale, ref.data(), s.data());
    for (int64_t j = 0; j < c.group * c.hd; ++j) {
      const double a = out[size_t(i * os + j)], b = ref[size_t(j)];
      worst = std::max(worst, std::fabs(a - b) / (1 + std::fabs(b)));
    }
    for (int64_t j = c.group * c.hd; j < os; ++j) EXPECT_EQ(out[size_t(i * os + j)], -7.0f) << "padding column written";
  }
  return worst;
}

}  // namespace

TEST(CausalAttention, EveryTargetMatchesPerRowReference) {
  const Case cases[] = {{64, 2, 512, 0}, {64, 1, 37, 0}, {128, 4, 70, 0}, {24, 2, 33, 0}, {13, 3, 19, 0}, {80, 1, 65, 0},
                        {64, 2, 100, 17}, {16, 1, 40, 1}};
  for (const auto& t : test::runnable_targets()) {
    test::TargetGuard g(t.bits);
    for (const Case& c : cases)
      for (float qs : {1.0f, 6.0f})  // 6: peaked softmax rows
        EXPECT_LE(check(c, qs), 2e-5) << t.name << " hd=" << c.hd << " group=" << c.group << " len=" << c.len << " window=" << c.window;
  }
}

// A mutation check on the mask: with every key visible (window 0), the first row must see only
// key 0, so its output is V[0] exactly whatever the scores.
TEST(CausalAttention, FirstRowIsTheFirstValue) {
  const int64_t hd = 32, len = 9;
  const auto q = randn(size_t(len * hd), 4, 3.0f), k = randn(size_t(len * hd), 5, 1.0f), v = randn(size_t(len * hd), 6, 1.0f);
  std::vector<float> out(size_t(len * hd)), scratch(causal_attention_scratch(len, hd));
  causal_attention(q.data(), hd, 1, hd, k.data(), v.data(), hd, len, 0, 0.2f, out.data(), hd, scratch.data());
  for (int64_t d = 0; d < hd; ++d) EXPECT_FLOAT_EQ(out[size_t(d)], v[size_t(d)]);
}
