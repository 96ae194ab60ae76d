// The decoder ops (model_ops.h): every compiled SIMD target against the scalar references, on odd
// sizes (vector tails) and realistic ones; the references against direct formulas where those are
// the specification (RoPE rotate-half, llama3 inv_freq).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include "awq/dtype.h"
#include "awq/model_config.h"
#include "awq/model_ops.h"
#include "awq/thread_pool.h"
#include "kernels/kernel_test_util.h"

using namespace awq;
using namespace awq::kernels;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// |a − b| <= tol·(1 + |b|) elementwise.
void expect_close(const std::vector<float>& a, const std::vector<float>& b, float tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_LE(std::fabs(a[i] - b[i]), tol * (1 + std::fabs(b[i]))) << what << " at " << i << ": " << a[i] << " vs " << b[i];
}

const int64_t kSizes[] = {1, 3, 7, 16, 17, 64, 100, 128, 4096 + 5};

}  // namespace

TEST(ModelOps, RmsNormEveryTargetMatchesRef) {
  for (const auto& t : test::runnable_targets()) {
    test::TargetGuard g(t.bits);
    for (int64_t n : kSizes) {
      const auto x = randn(size_t(n), 1), w = randn(size_t(n), 2);
      std::vector<float> y(static_cast<size_t>(n)), y_ref(static_cast<size_t>(n));
      rms_norm(x.data(), w.data(), n, 1e-6f, y.data());
      rms_norm_ref(x.data(), w.data(), n, 1e-6f, y_ref.data());
      expect_close(y, y_ref, 1e-5f, t.name + " rms_norm n=" + std::to_string(n));
    }
  }
  // The reference is the formula: x / sqrt(mean(x²) + eps) · w.
  const std::vector<float> x = {3, 4}, w = {1, 2};
  std::vector<float> y(2);
  rms_norm_ref(x.data(), w.data(), 2, 0.f, y.data());
  const float r = std::sqrt(12.5f);
  EXPECT_FLOAT_EQ(y[0], 3 / r);
  EXPECT_FLOAT_EQ(y[1], 8 / r);
}

TEST(ModelOps, RopeEveryTargetMatchesRefAndRotateHalf) {
  const int64_t hd = 10, heads = 3;  // half = 5: a vector tail on every target
  const RopeTable tab = make_rope_table(rope_inv_freq(hd, 10000, RopeScaling{}), 8);
  for (int64_t head_dim : {hd}) {
    auto x = randn(size_t(heads * head_dim), 3);
    auto y_ref = x;
    rope_ref(y_ref.data(), heads, head_dim, tab.cos(5), tab.sin(5));
    // rotate_half: x·cos + cat(−x2, x1)·sin with cos/sin repeated over both halves.
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < head_dim; ++i) {
        const int64_t j = i % 5;
        const float rot = i < 5 ? -x[size_t(h * hd + i + 5)] : x[size_t(h * hd + i - 5)];
        EXPECT_NEAR(y_ref[size_t(h * hd + i)], x[size_t(h * hd + i)] * tab.cos(5)[j] + rot * tab.sin(5)[j], 1e-6);
      }
    for (const auto& t : test::runnable_targets()) {
      test::TargetGuard g(t.bits);
      for (int64_t d : {int64_t(10), int64_t(64), int64_t(128), int64_t(48)}) {
        const RopeTable tb = make_rope_table(rope_inv_freq(d, 500000, RopeScaling{}), 40);
        auto a = randn(size_t(4 * d), 4);
        auto b = a;
        rope(a.data(), 4, d, tb.cos(37), tb.sin(37));
        rope_ref(b.data(), 4, d, tb.cos(37), tb.sin(37));
        expect_close(a, b, 1e-6f, t.name + " rope d=" + std::to_string(d));
      }
    }
  }
}

TEST(ModelOps, RopeTableIsTransformersFormulaWithLlama3Scaling) {
  RopeScaling s;
  s.type = RopeScaling::Type::kLlama3;
  s.factor = 8;
  s.low_freq_factor = 1;
  s.high_freq_factor = 4;
  s.original_max_positions = 8192;
  const int64_t d = 128;
  const auto inv = rope_inv_freq(d, 500000, s);
  const double pi = std::numbers::pi;
  int scaled = 0, smoothed = 0, kept = 0;
  for (int64_t i = 0; i < d / 2; ++i) {
    const double f = 1.0 / std::pow(500000.0, double(2 * i) / double(d));
    const double wavelen = 2 * pi / f;
    double want = f;
    if (wavelen > 8192) {
      want = f / 8, ++scaled;
    } else if (wavelen >= 8192 / 4.0) {
      const double sm = (8192 / wavelen - 1) / (4 - 1);
      want = (1 - sm) * f / 8 + sm * f, ++smoothed;
    } else {
      ++kept;
    }
    EXPECT_NEAR(inv[size_t(i)], want, 1e-5 * want) << i;
  }
  EXPECT_GT(scaled, 0);
  EXPECT_GT(smoothed, 0);
  EXPECT_GT(kept, 0);
  const RopeTable t = make_rope_table(inv, 3);
  EXPECT_FLOAT_EQ(t.cos(2)[7], std::cos(2.0f * inv[7]));
  EXPECT_FLOAT_EQ(t.sin(0)[7], 0.f);
}

TEST(ModelOps, SoftmaxAndSiluEveryTargetMatchesRef) {
  for (const auto& t : test::runnable_targets()) {
    test::TargetGuard g(t.bits);
    for (int64_t n : kSizes) {
      auto x = randn(size_t(n), 5, 4.f);
      auto y = x, y_ref = x;
      softmax(y.data(), n);
      softmax_ref(y_ref.data(), n);
      expect_close(y, y_ref, 1e-5f, t.name + " softmax n=" + std::to_string(n));
      double sum = 0;
      for (float v : y) sum += v;
      EXPECT_NEAR(sum, 1.0, 1e-5);

      auto gate = randn(size_t(n), 6, 5.f), up = randn(size_t(n), 7);
      if (n > 3) gate[1] = -200.f, gate[2] = 200.f;  // saturation: silu(−200) = −0, silu(200) = 200
      std::vector<float> o(static_cast<size_t>(n)), o_ref(static_cast<size_t>(n));
      silu_mul(gate.data(), up.data(), n, o.data());
      silu_mul_ref(gate.data(), up.data(), n, o_ref.data());
      expect_close(o, o_ref, 1e-5f, t.name + " silu_mul n=" + std::to_string(n));
    }
  }
  std::vector<float> g = {0.f, 1.f}, u = {2.f, 3.f}, o(2);
  silu_mul_ref(g.data(), u.data(), 2, o.data());
  EXPECT_FLOAT_EQ(o[0], 0.f);
  EXPECT_FLOAT_EQ(o[1], 3.f / (1.f + std::exp(-1.f)));
}

TEST(ModelOps, AttentionEveryTargetMatchesRef) {
  for (const auto& t : test::runnable_targets()) {
    test::TargetGuard g(t.bits);
    for (int64_t hd : {int64_t(24), int64_t(64), int64_t(128), int64_t(13)})
      for (int64_t group : {int64_t(1), int64_t(4)})
        for (int64_t n : {int64_t(1), int64_t(5), int64_t(33)}) {
          const int64_t stride = hd + 3;
          const auto q = randn(size_t(group * hd), 8), k = randn(size_t(n * stride), 9), v = randn(size_t(n * stride), 10);
          std::vector<float> o(size_t(group * hd)), o_ref(size_t(group * hd)), s(size_t(group * n)), s2(size_t(group * n));
          const float scale = 1 / std::sqrt(float(hd));
          attention(q.data(), group, hd, k.data(), v.data(), stride, n, scale, o.data(), s.data());
          attention_ref(q.data(), group, hd, k.data(), v.data(), stride, n, scale, o_ref.data(), s2.data());
          expect_close(o, o_ref, 1e-5f, t.name + " attention hd=" + std::to_string(hd) + " n=" + std::to_string(n));
        }
  }
  // One key: the output is that key's value row whatever the scores.
  const std::vector<float> q = {1, 2}, k = {3, 4}, v = {5, 6};
  std::vector<float> o(2), s(1);
  attention_ref(q.data(), 1, 2, k.data(), v.data(), 2, 1, 1.f, o.data(), s.data());
  EXPECT_FLOAT_EQ(o[0], 5.f);
  EXPECT_FLOAT_EQ(o[1], 6.f);
}

// The f16 KV cache's attention: SIMD equals the reference on every target, and the reference is
// attention_ref on the widened values (so its only error is the f16 rounding of K and V).
TEST(ModelOps, AttentionF16EveryTargetMatchesRef) {
  for (const auto& t : test::runnable_targets()) {
    test::TargetGuard g(t.bits);
    for (int64_t hd : {int64_t(24), int64_t(64), int64_t(128), int64_t(13)})
      for (int64_t group : {int64_t(1), int64_t(4)})
        for (int64_t n : {int64_t(1), int64_t(5), int64_t(33)}) {
          const int64_t stride = hd + 3;
          const auto q = randn(size_t(group * hd), 8), k = randn(size_t(n * stride), 9), v = randn(size_t(n * stride), 10);
          std::vector<uint16_t> kh(k.size()), vh(v.size());
          kv_to_f16(k.data(), int64_t(k.size()), kh.data());
          kv_to_f16(v.data(), int64_t(v.size()), vh.data());
          std::vector<float> kw(k.size()), vw(v.size());
          for (size_t i = 0; i < k.size(); ++i) kw[i] = f16_to_f32(kh[i]), vw[i] = f16_to_f32(vh[i]);
          std::vector<float> o(size_t(group * hd)), o_ref(size_t(group * hd)), o_w(size_t(group * hd));
          std::vector<float> s(size_t(group * n)), s2(size_t(group * n));
          const float scale = 1 / std::sqrt(float(hd));
          attention_f16(q.data(), group, hd, kh.data(), vh.data(), stride, n, scale, o.data(), s.data());
          attention_f16_ref(q.data(), group, hd, kh.data(), vh.data(), stride, n, scale, o_ref.data(), s2.data());
          attention_ref(q.data(), group, hd, kw.data(), vw.data(), stride, n, scale, o_w.data(), s2.data());
          const std::string what = t.name + " attention_f16 hd=" + std::to_string(hd) + " n=" + std::to_string(n);
          expect_close(o, o_ref, 1e-5f, what);
          EXPECT_EQ(o_ref, o_w) << what;
        }
  }
}

TEST(ModelOps, KvToF16RoundsNearestAndSaturates) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {1.f, 1.f + 1.f / 4096.f, 1e5f, -1e5f, 65504.f, 65520.f, inf, -inf,
                                std::numeric_limits<float>::quiet_NaN(), 1e-8f};
  std::vector<uint16_t> h(x.size());
  kv_to_f16(x.data(), int64_t(x.size()), h.data());
  EXPECT_EQ(h[0], 0x3c00);
  EXPECT_EQ(h[1], 0x3c00);  // halfway between 1 and the next f16: to even
  EXPECT_EQ(h[2], 0x7bff);  // 65504, not +inf
  EXPECT_EQ(h[3], 0xfbff);
  EXPECT_EQ(h[4], 0x7bff);
  EXPECT_EQ(h[5], 0x7bff);  // would round to +inf unsaturated
  EXPECT_EQ(h[6], 0x7c00);  // an infinity stays one
  EXPECT_EQ(h[7], 0xfc00);
  EXPECT_TRUE(std::isnan(f16_to_f32(h[8])));
  EXPECT_EQ(h[9], f32_to_f16(1e-8f));  // subnormal f16, as f32_to_f16 makes it
}

TEST(ModelOps, DenseF32EveryTargetMatchesRef) {
  ThreadPool pool(2);
  for (const auto& t : test::runnable_targets()) {
    test::TargetGuard g(t.bits);
    for (auto [n, k, m] : {std::tuple<int64_t, int64_t, int64_t>{7, 13, 1}, {64, 128, 3}, {33, 100, 6}, {256, 64, 9}}) {
      const auto w = randn(size_t(n * k), 11), x = randn(size_t(m * k), 12);
      std::vector<float> y(size_t(m * n)), y_ref(size_t(m * n));
      dense_f32_gemm(w.data(), n, k, x.data(), m, y.data(), &pool);
      dense_f32_gemm_ref(w.data(), n, k, x.data(), m, y_ref.data());
      expect_close(y, y_ref, 1e-4f, t.name + " dense_f32 n=" + std::to_string(n));
      std::vector<uint16_t> w16(w.size());
      for (size_t i = 0; i < w.size(); ++i) w16[i] = f32_to_f16(w[i]);
      dense_f16_gemm(w16.data(), n, k, x.data(), m, y.data(), &pool);
      dense_f16_gemm_ref(w16.data(), n, k, x.data(), m, y_ref.data());
      expect_close(y, y_ref, 1e-4f, t.name + " dense_f16 n=" + std::to_string(n));
    }
  }
}
