// Kernels: repack, dequantize, GEMV/GEMM (f32 and int8 paths) on every compiled target the CPU can
// run, against the scalar references. Targets that cannot run are logged with the reason.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/kernels.h"
#include "awq/quant_linear.h"
#include "awq/thread_pool.h"
#include "kernel_test_util.h"

namespace awq::kernels {
namespace {

using namespace awq::test;  // kernel_test_util.h
using Spec = LayerSpec;

std::vector<Spec> specs() {
  std::vector<Spec> v;
  for (int64_t g : {32, 64, 128}) v.push_back({37, 3 * g + g / 2, g});  // partial last group, odd N
  v.push_back({16, 128, 128});                                         // a single group
  v.push_back({21, 77, 77});                                           // per-channel, K % 8 != 0
  v.push_back({48, 256, 128, ZeroMode::kSymmetric});
  v.push_back({33, 192, 64, ZeroMode::kScaledFma});
  v.push_back({40, 256, 64, ZeroMode::kInteger, true, true, false});
  v.push_back({24, 160, 32, ZeroMode::kInteger, false, true, true});
  v.push_back({35, 384, 128, ZeroMode::kInteger, false, false, false});
  v.push_back({35, 384, 128, ZeroMode::kInteger, false, true, false, true});  // f32 scales -> wide
  v.push_back({35, 200, 64, ZeroMode::kScaledFma, false, true, true});
  v.push_back({19, 96 * 5, 96});     // 128-column blocks straddle groups
  v.push_back({17, 768, 256});       // a group spans several blocks
  v.push_back({18, 1000, 1000});     // per-channel over several blocks, K % 32 != 0
  v.push_back({16, 1024, 1024, ZeroMode::kInteger, false, false, false, true});  // wide per-channel
  return v;
}

const std::vector<int64_t> kMs = {1, 2, 3, 5, 8, 9, 17};

TEST(Kernels, TargetsListedAndUnrunnableOnesLogged) {
  const auto all = compiled_targets();
  ASSERT_FALSE(all.empty());
  int runnable = 0;
  for (const auto& t : all) {
    if (t.runnable) {
      ++runnable;
      std::printf("[kernels] target %s: compiled, runnable, tested\n", t.name.c_str());
    } else {
      std::printf("[kernels] target %s: compiled, NOT runnable here (%s), not tested\n", t.name.c_str(), t.why_not.c_str());
    }
  }
  EXPECT_GE(runnable, 2);  // at least one x86 SIMD target and the portable fallback
  for (const auto& t : runnable_targets()) {
    TargetGuard g(t.bits);
    EXPECT_EQ(active_target(), t.name);
  }
}

TEST(Kernels, RepackedReferenceMatchesQuantLinearDequant) {
  for (const Spec& s : specs()) {
    const QuantLinear q = make_layer(s, 11);
    const PackedLinear p = repack(q);
    EXPECT_EQ(p.wide, s.f32_scales || s.zm == ZeroMode::kScaledFma) << describe(s);
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      std::vector<uint8_t> a(size_t(q.n * q.k) * dtype_size(dt)), b(a.size());
      awq::dequantize_ref(q, dt, a.data());
      kernels::dequantize_ref(p, dt, 0, q.n, b.data());
      if (s.f32_scales && s.zm == ZeroMode::kInteger) {
        // wide form: fma(q, s, -s·z) vs s·(q − z): equal to within one rounding of -s·z.
        for (size_t i = 0; i < size_t(q.n * q.k); ++i)
          ASSERT_NEAR(load_float(a.data(), dt, i), load_float(b.data(), dt, i), 1e-6) << describe(s);
      } else {
        ASSERT_EQ(a, b) << describe(s) << " dtype " << dtype_name(dt);
      }
    }
  }
}

TEST(Kernels, DequantEveryTargetMatchesReference) {
  for (const auto& t : runnable_targets()) {
    TargetGuard guard(t.bits);
    for (const Spec& s : specs()) {
      const PackedLinear p = repack(make_layer(s, 5));
      for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
        const int64_t r0 = s.n > 20 ? 3 : 0, r1 = s.n;
        // 64-byte aligned output, so the streaming-store paths run too.
        std::vector<uint8_t> a(size_t((r1 - r0) * s.k) * dtype_size(dt));
        AlignedBytes out(a.size());
        dequantize_ref(p, dt, r0, r1, a.data());
        dequantize(p, dt, r0, r1, out.data());
        const std::vector<uint8_t> b(out.data(), out.data() + out.size());
        if (s.exact || has_fma(t.name)) {
          ASSERT_EQ(a, b) << t.name << " " << describe(s) << " dtype " << dtype_name(dt);
        } else {
          for (size_t i = 0; i < size_t((r1 - r0) * s.k); ++i)
            ASSERT_NEAR(load_float(a.data(), dt, i), load_float(b.data(), dt, i),
                        1e-2 * std::fabs(load_float(a.data(), dt, i)) + 1e-6)
                << t.name << " " << describe(s);
        }
      }
    }
  }
}

TEST(Kernels, ReferenceGemmAgreesWithNaiveDequantDot) {
  for (const Spec& s : specs()) {
    const QuantLinear q = make_layer(s, 3);
    const PackedLinear p = repack(q);
    for (int64_t m : {1, 4}) {
      const auto x = make_x(q, m, s.exact, 9, Peaks::kInPlace);
      const auto want = naive(q, x, m);
      std::vector<float> y(size_t(m * s.n));
      gemm_ref(p, x.data(), DType::F32, m, y.data(), DType::F32, Path::kF32);
      for (size_t i = 0; i < y.size(); ++i) {
        if (s.exact && !s.pqs) ASSERT_EQ(double(y[i]), want[i]) << describe(s);
        else ASSERT_NEAR(y[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << describe(s);
      }
    }
  }
}

void check_gemm_target(const TargetInfo& t, const Spec& s, Path path, DType xt, DType yt) {
  const QuantLinear q = make_layer(s, 21);
  const PackedLinear p = repack(q);
  for (int64_t m : kMs) {
    const auto xf = make_x(q, m, s.exact, uint32_t(100 + m), Peaks::kInPlace);
    const auto [want, got] = gemm_and_reference(p, xf, xt, m, yt, path);
    // int8: integer dot products, then the same f32 operations as the reference -> exact on FMA
    // targets. f32: several partial sums per output -> exact only for representable data.
    // int16: its d = max|x|/32639 is inexact even on small-integer data, so only FMA targets (whose
    // MulAdd is the reference's std::fma) match it bit for bit.
    const bool exact = (s.exact && path != Path::kInt16) || ((path == Path::kInt8 || path == Path::kInt16) && has_fma(t.name));
    for (size_t i = 0; i < size_t(m * s.n); ++i) {
      const float a = load_float(want.data(), yt, i), b = load_float(got.data(), yt, i);
      if (exact) {
        ASSERT_EQ(a, b) << t.name << " " << path_name(path) << " m=" << m << " i=" << i << " " << describe(s);
      } else {
        ASSERT_NEAR(a, b, 1e-4 * (1 + std::fabs(a))) << t.name << " " << path_name(path) << " m=" << m << " " << describe(s);
      }
    }
  }
}

TEST(Kernels, GemmEveryTargetMatchesReference) {
  for (const auto& t : runnable_targets()) {
    TargetGuard guard(t.bits);
    for (const Spec& s : specs())
      for (Path path : {Path::kF32, Path::kInt8, Path::kInt16}) check_gemm_target(t, s, path, DType::F32, DType::F32);
  }
}

TEST(Kernels, GemmBf16ActivationsAndOutputs) {
  const Spec s{45, 320, 64, ZeroMode::kInteger, false, true, true};
  for (const auto& t : runnable_targets()) {
    TargetGuard guard(t.bits);
    for (Path path : {Path::kF32, Path::kInt8, Path::kInt16}) {
      check_gemm_target(t, s, path, DType::BF16, DType::F32);
      check_gemm_target(t, s, path, DType::F32, DType::BF16);
    }
  }
}

TEST(Kernels, LargerShapeThreadedMatchesReference) {
  // Enough tiles and rows for several tasks, the K blocking (m > 8) and every micro-kernel width.
  const Spec s{300, 2048 + 128, 128, ZeroMode::kInteger, false, true, false};
  const QuantLinear q = make_layer(s, 8);
  const PackedLinear p = repack(q);
  // One thread: tasks of several tiles (the two-tile int8 micro-kernel); three: one tile each.
  for (int64_t m : {1, 8, 13, 21}) {
    const auto x = make_x(q, m, s.exact, 4, Peaks::kInPlace);
    for (Path path : {Path::kF32, Path::kInt8, Path::kInt16}) {
      std::vector<float> want(size_t(m * s.n)), got(want.size());
      gemm_ref(p, x.data(), DType::F32, m, want.data(), DType::F32, path);
      for (const auto& t : runnable_targets()) {
        TargetGuard guard(t.bits);
        for (int threads : {1, 3}) {
          ThreadPool pool(threads);
          gemm(p, x.data(), DType::F32, m, got.data(), DType::F32, {path, &pool});
          if ((path == Path::kInt8 || path == Path::kInt16) && has_fma(t.name)) {
            ASSERT_EQ(want, got) << t.name << " " << path_name(path) << " m=" << m << " threads=" << threads;
          } else {
            for (size_t i = 0; i < want.size(); ++i)
              ASSERT_NEAR(want[i], got[i], 1e-4 * (1 + std::fabs(want[i]))) << t.name << " m=" << m << " i=" << i;
          }
        }
      }
    }
  }
}

TEST(Kernels, Int8PathAccuracyAgainstF32) {
  // Gaussian activations, realistic f16 scales: the int8 path's error relative to the f32 path.
  const Spec s{256, 4096, 128, ZeroMode::kInteger, false};
  const QuantLinear q = make_layer(s, 17);
  const PackedLinear p = repack(q);
  const int64_t m = 4;
  const auto x = make_x(q, m, s.exact, 23, Peaks::kInPlace);
  std::vector<float> yf(size_t(m * s.n)), yi(yf.size());
  gemm(p, x.data(), DType::F32, m, yf.data(), DType::F32, {Path::kF32, nullptr});
  gemm(p, x.data(), DType::F32, m, yi.data(), DType::F32, {Path::kInt8, nullptr});
  const ErrorStats e = error_stats(yi, yf);
  std::printf("[kernels] int8 vs f32 path, K=4096 g128, N(0,1) activations: relative RMS error %.3g, max abs %.3g (rms y %.3g)\n",
              e.rel_rms, e.max_abs, e.rms_ref);
  EXPECT_LT(e.rel_rms, 0.02);
}

TEST(Kernels, Int16PathAccuracyAgainstF32) {
  // The int16 path rounds activations to 2^-16 of each group's max|x|: near the f32 path, and far
  // nearer than int8, also when one channel per group is 100x the rest (outlier channels).
  const Spec s{256, 4096, 128, ZeroMode::kInteger, false};
  const QuantLinear q = make_layer(s, 17);
  const PackedLinear p = repack(q);
  const int64_t m = 4;
  for (bool outliers : {false, true}) {
    auto x = make_x(q, m, s.exact, 23, Peaks::kInPlace);
    if (outliers)
      for (size_t i = 0; i < x.size(); i += 128) x[i] *= 100.f;
    std::vector<float> yf(size_t(m * s.n)), y8(yf.size()), y16(yf.size());
    gemm(p, x.data(), DType::F32, m, yf.data(), DType::F32, {Path::kF32, nullptr});
    gemm(p, x.data(), DType::F32, m, y8.data(), DType::F32, {Path::kInt8, nullptr});
    gemm(p, x.data(), DType::F32, m, y16.data(), DType::F32, {Path::kInt16, nullptr});
    const ErrorStats e8 = error_stats(y8, yf), e16 = error_stats(y16, yf);
    std::printf("[kernels] %s activations, K=4096 g128: relative RMS error vs f32: int16 %.3g, int8 %.3g\n",
                outliers ? "N(0,1) + one 100x channel per group" : "N(0,1)", e16.rel_rms, e8.rel_rms);
    EXPECT_LT(e16.rel_rms, 1e-4);
    EXPECT_LT(e16.rel_rms * 50, e8.rel_rms);  // 2^8 finer steps; a broken lo plane fails this
  }
}

TEST(Kernels, DenseBf16MatchesNaive) {
  std::mt19937 rng(1);
  for (int64_t m : {1, 3, 6}) {
    const int64_t n = 19, k = 77;
    std::vector<uint16_t> w(size_t(n * k));
    std::vector<float> x(size_t(m * k)), y(size_t(m * n));
    for (auto& v : w) v = f32_to_bf16(float(int(rng() % 9) - 4));
    for (auto& v : x) v = float(int(rng() % 9) - 4);
    for (const auto& t : runnable_targets()) {
      TargetGuard guard(t.bits);
      dense_bf16_gemm(w.data(), n, k, x.data(), m, y.data());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < n; ++r) {
          float acc = 0;
          for (int64_t c = 0; c < k; ++c) acc += bf16_to_f32(w[size_t(r * k + c)]) * x[size_t(i * k + c)];
          ASSERT_EQ(acc, y[size_t(i * n + r)]) << t.name;
        }
    }
  }
}

TEST(Kernels, RejectsUnsupportedInput) {
  Spec s{16, 64, 32};
  QuantLinear q = make_layer(s, 1);
  q.bits = 3;
  EXPECT_THROW(repack(q), Error);
  q = make_layer(s, 1);
  q.g_idx.assign(64, 0);
  q.g_idx[5] = 2;  // outside [0, n_groups = 2); act-order itself is tested in act_order_test.cc
  EXPECT_THROW(repack(q), Error);
  const PackedLinear p = repack(make_layer(s, 1));
  float x[64] = {}, y[16];
  EXPECT_THROW(gemm(p, x, DType::F16, 1, y, DType::F32), Error);
  EXPECT_THROW(dequantize(p, DType::F32, 0, 17, y), Error);
}

TEST(ThreadPool, RunsEveryTaskOnceAndRethrows) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.size(), 3);
  for (int rep = 0; rep < 50; ++rep) {
    std::vector<int> hits(97, 0);
    pool.run(97, [&](int64_t t, int thread) {
      ASSERT_LT(thread, 3);
      hits[size_t(t)]++;
    });
    for (int h : hits) ASSERT_EQ(h, 1);
  }
  EXPECT_THROW(pool.run(10, [](int64_t t, int) { if (t == 7) throw std::runtime_error("x"); }), std::runtime_error);
  int after = 0;
  pool.run(1, [&](int64_t, int) { ++after; });
  EXPECT_EQ(after, 1);
}

}  // namespace

}  // namespace awq::kernels
