// Path::kBF16 (AVX-512 BF16 intrinsics behind our own CPU check) against its scalar reference
// gemm_ref(..., Path::kBF16). Where the CPU has avx512_bf16 every case must match bit for bit (the
// reference emulates VDPBF16PS exactly, so this holds for any data, not only exactly
// representable data); where it does not, the log names the path and why, and gemm() must throw.
#include <gtest/gtest.h>

#include <immintrin.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/kernels.h"
#include "awq/quant_linear.h"
#include "awq/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/internal.h"

namespace awq::kernels {
namespace {

using namespace awq::test;  // kernel_test_util.h

// One layer shape and parameter style. exact: small-integer codes, power-of-two scales and
// small-integer activations, so every bf16 rounding and f32 sum is exact.
using Case = LayerSpec;
const LayerDraws kDraws{.name_prefix = "bf16test."};  // the name shows in the unavailable-path message

std::vector<Case> cases() {
  std::vector<Case> v;
  for (int64_t g : {32, 64, 128}) v.push_back({37, 3 * g + g / 2, g});  // partial last group, odd N
  v.push_back({16, 128, 128});                                         // one group, one tile
  v.push_back({21, 77, 77});                                           // per-channel, K % 8 != 0
  v.push_back({48, 256, 128, ZeroMode::kSymmetric});
  v.push_back({33, 192, 64, ZeroMode::kScaledFma});                    // wide params
  v.push_back({40, 256, 64, ZeroMode::kInteger, true, true, false});   // bias
  v.push_back({24, 160, 32, ZeroMode::kInteger, true, true, true});    // bias + pqs, exact
  v.push_back({70, 384, 128, ZeroMode::kInteger, false, false, false});
  v.push_back({35, 384, 128, ZeroMode::kInteger, false, true, false, true});  // f32 scales -> wide
  v.push_back({35, 200, 64, ZeroMode::kScaledFma, false, true, true});
  return v;
}

const std::vector<int64_t> kMs = {1, 2, 3, 8, 17, 64};

bool bf16_runnable(std::string* why = nullptr) { return path_available(Path::kBF16, why); }

// gemm (bf16 path) vs gemm_ref (bf16 path), bit for bit, for every M.
void expect_matches_reference(const Case& c, DType xt, DType yt, ThreadPool* pool = nullptr,
                              const std::vector<int64_t>& ms = kMs) {
  const QuantLinear q = make_layer(c, 21, kDraws);
  const PackedLinear p = repack(q);
  for (int64_t m : ms) {
    const auto xf = make_x(q, m, c.exact, uint32_t(100 + m), Peaks::kNone);
    const auto [want, got] = gemm_and_reference(p, xf, xt, m, yt, Path::kBF16, pool);
    for (size_t i = 0; i < size_t(m * c.n); ++i)
      ASSERT_EQ(load_float(want.data(), yt, i), load_float(got.data(), yt, i))
          << "m=" << m << " i=" << i << " x " << dtype_name(xt) << " y " << dtype_name(yt) << " " << describe(c);
    ASSERT_EQ(want, got) << "m=" << m << " (bit patterns) " << describe(c);
  }
}

TEST(Bf16Path, AvailabilityLogged) {
  std::string why;
  if (bf16_runnable(&why)) {
    std::printf("[kernels] path bf16 (AVX-512 BF16 intrinsics, own CPU check): runnable, tested\n");
  } else {
    std::printf("[kernels] path bf16 (AVX-512 BF16 intrinsics, own CPU check): NOT runnable here (%s), not tested; "
                "checking that gemm() refuses it\n", why.c_str());
    EXPECT_NE(why.find("lacks"), std::string::npos) << why;
  }
  EXPECT_STREQ(path_name(Path::kBF16), "bf16");
  EXPECT_TRUE(path_available(Path::kF32));
  EXPECT_TRUE(path_available(Path::kInt8));
}

// gemm() with kBF16 where the path cannot run throws awq::Error naming the layer and the missing
// feature. Simulated here so that it is exercised on every machine.
TEST(Bf16Path, UnavailableThrowsNamingLayerAndFeature) {
  const PackedLinear p = repack(make_layer({16, 64, 32}, 1, kDraws));
  std::vector<float> x(64, 1.f), y(16);
  struct Off {
    Off() { force_path_unavailable(Path::kBF16, true); }
    ~Off() { force_path_unavailable(Path::kBF16, false); }
  } off;
  std::string why;
  EXPECT_FALSE(path_available(Path::kBF16, &why));
  try {
    gemm(p, x.data(), DType::F32, 1, y.data(), DType::F32, {Path::kBF16, nullptr});
    FAIL() << "gemm with an unavailable bf16 path did not throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p.name), std::string::npos) << msg;
    EXPECT_NE(msg.find("avx512_bf16"), std::string::npos) << msg;
    std::printf("[kernels] unavailable bf16 path: %s\n", msg.c_str());
  }
  // The scalar reference runs on any CPU.
  EXPECT_NO_THROW(gemm_ref(p, x.data(), DType::F32, 1, y.data(), DType::F32, Path::kBF16));
}

TEST(Bf16Path, RealCpuCheckAgreesWithCompilerBuiltin) {
  __builtin_cpu_init();
  const bool builtin = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512f") &&
                       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                       __builtin_cpu_supports("avx512dq");
  EXPECT_EQ(bf16_runnable(), builtin);
}

// On exactly representable data the bf16 reference equals the f32 reference (every rounding is exact).
TEST(Bf16Path, ReferenceEqualsF32ReferenceOnExactData) {
  for (const Case& c : cases()) {
    if (!c.exact) continue;
    const QuantLinear q = make_layer(c, 3, kDraws);
    const PackedLinear p = repack(q);
    for (int64_t m : {1, 5}) {
      const auto x = make_x(q, m, c.exact, 9, Peaks::kNone);
      std::vector<float> a(size_t(m * c.n)), b(a.size());
      gemm_ref(p, x.data(), DType::F32, m, a.data(), DType::F32, Path::kF32);
      gemm_ref(p, x.data(), DType::F32, m, b.data(), DType::F32, Path::kBF16);
      ASSERT_EQ(a, b) << describe(c);
    }
  }
}

// The scalar lane emulation (dpbf16_lane, f32_to_bf16_ftz) against the instructions themselves,
// on random bf16 values over a wide exponent range (denormals, underflowing products included).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void hw_dot(const uint32_t* a, const uint32_t* b,
                                                                           const float* acc, float* out) {
  const __m512i va = _mm512_loadu_si512(a), vb = _mm512_loadu_si512(b);
  const __m512 r = _mm512_dpbf16_ps(_mm512_loadu_ps(acc), reinterpret_cast<const __m512bh&>(va),
                                    reinterpret_cast<const __m512bh&>(vb));
  _mm512_storeu_ps(out, r);
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void hw_cvt(const float* lo, const float* hi,
                                                                           uint16_t* out) {
  const __m512bh r = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(hi), _mm512_loadu_ps(lo));
  _mm512_storeu_si512(out, reinterpret_cast<const __m512i&>(r));
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(Bf16Path, LaneEmulationMatchesInstructions) {
  std::string why;
  if (!bf16_runnable(&why)) GTEST_SKIP() << "path bf16 not runnable here (" << why << ")";
  std::mt19937 rng(5);
  auto any_bf16 = [&] {  // sign, exponent 0 (denormal/zero) 1 in 6, else 1..160, random mantissa
    const uint32_t e = rng() % 6 == 0 ? 0 : 1 + rng() % 160;
    return uint16_t(((rng() & 1) << 15) | (e << 7) | (rng() & 0x7F));
  };
  for (int it = 0; it < 20000; ++it) {
    uint32_t a[16], b[16];
    float acc[16], out[16], lo[16], hi[16];
    for (int i = 0; i < 16; ++i) {
      a[i] = any_bf16() | uint32_t(any_bf16()) << 16;
      b[i] = any_bf16() | uint32_t(any_bf16()) << 16;
      const uint32_t e = rng() % 5 == 0 ? 0 : rng() % 90;
      const uint32_t u = (rng() & 0x807FFFFFu) | e << 23;
      std::memcpy(&acc[i], &u, 4);
      lo[i] = acc[i] * float(int(rng() % 7) - 3);
      hi[i] = std::ldexp(float(rng() % 100000) - 50000.f, int(rng() % 60) - 150);
    }
    hw_dot(a, b, acc, out);
    uint16_t cv[32];
    hw_cvt(lo, hi, cv);
    for (int i = 0; i < 16; ++i) {
      const float want = dpbf16_lane(acc[i], bf16_to_f32(uint16_t(a[i])), bf16_to_f32(uint16_t(a[i] >> 16)),
                                     bf16_to_f32(uint16_t(b[i])), bf16_to_f32(uint16_t(b[i] >> 16)));
      ASSERT_EQ(bits_of(want), bits_of(out[i])) << "lane " << i << " iteration " << it;
      ASSERT_EQ(f32_to_bf16_ftz(lo[i]), cv[i]) << lo[i];
      ASSERT_EQ(f32_to_bf16_ftz(hi[i]), cv[16 + i]) << hi[i];
    }
  }
}

TEST(Bf16Path, GemmMatchesReferenceEveryCase) {
  std::string why;
  if (!bf16_runnable(&why)) GTEST_SKIP() << "path bf16 not runnable here (" << why << "); gemm() refusal checked above";
  for (const Case& c : cases()) expect_matches_reference(c, DType::F32, DType::F32);
}

TEST(Bf16Path, GemmBf16ActivationsAndOutputs) {
  std::string why;
  if (!bf16_runnable(&why)) GTEST_SKIP() << "path bf16 not runnable here (" << why << ")";
  for (const Case& c : {Case{45, 320, 64, ZeroMode::kInteger, false, true, true}, Case{24, 160, 32, ZeroMode::kInteger, true, true, true},
                        Case{35, 384, 128, ZeroMode::kInteger, false, true, false, true}}) {
    expect_matches_reference(c, DType::BF16, DType::F32);
    expect_matches_reference(c, DType::F32, DType::BF16);
    expect_matches_reference(c, DType::BF16, DType::BF16);
  }
}

TEST(Bf16Path, LargerShapeThreadedMatchesReference) {
  std::string why;
  if (!bf16_runnable(&why)) GTEST_SKIP() << "path bf16 not runnable here (" << why << ")";
  // 19 tiles (5 panels, the last partial), K blocked for m > 6, several tasks per thread count.
  const Case c{300, 2048 + 128, 128, ZeroMode::kInteger, false, true, false};
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    expect_matches_reference(c, DType::F32, DType::F32, &pool, {1, 7, 13, 64, 200});
  }
}

// Tiny magnitudes: f32 activation denormals (flushed by the bf16 rounding), products and partial
// sums below FLT_MIN (flushed by VDPBF16PS); the reference emulates both.
TEST(Bf16Path, DenormalsFlushedLikeTheReference) {
  std::string why;
  if (!bf16_runnable(&why)) GTEST_SKIP() << "path bf16 not runnable here (" << why << ")";
  const Case c{40, 256, 64, ZeroMode::kInteger, false, false, false, true};
  QuantLinear q = make_layer(c, 2, kDraws);
  for (auto& s : q.scales) s = std::ldexp(s, -60);
  const PackedLinear p = repack(q);
  ASSERT_TRUE(p.wide);
  std::mt19937 rng(4);
  for (int64_t m : {1, 9}) {
    std::vector<float> x(size_t(m * c.k));
    for (auto& v : x) v = std::ldexp(std::normal_distribution<float>(0.f, 1.f)(rng), -int(rng() % 120) - 30);
    std::vector<float> want(size_t(m * c.n)), got(want.size());
    gemm_ref(p, x.data(), DType::F32, m, want.data(), DType::F32, Path::kBF16);
    gemm(p, x.data(), DType::F32, m, got.data(), DType::F32, {Path::kBF16, nullptr});
    int zeros = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(bits_of(want[i]), bits_of(got[i])) << "m=" << m << " i=" << i;
      zeros += want[i] == 0.f;
    }
    EXPECT_LT(zeros, int(want.size()));  // not everything flushed: the case is meaningful
  }
}

TEST(Bf16Path, AccuracyAgainstF32) {
  // Gaussian activations, realistic f16 scales: the bf16 path's error relative to the f32 path
  // (same data as Kernels.Int8PathAccuracyAgainstF32). Uses the scalar reference where the CPU
  // lacks the path (identical results).
  const Case c{256, 4096, 128, ZeroMode::kInteger, false};
  const QuantLinear q = make_layer(c, 17, kDraws);
  const PackedLinear p = repack(q);
  const int64_t m = 4;
  const auto x = make_x(q, m, c.exact, 23, Peaks::kNone);
  std::vector<float> yf(size_t(m * c.n)), yb(yf.size());
  gemm(p, x.data(), DType::F32, m, yf.data(), DType::F32, {Path::kF32, nullptr});
  if (bf16_runnable()) gemm(p, x.data(), DType::F32, m, yb.data(), DType::F32, {Path::kBF16, nullptr});
  else gemm_ref(p, x.data(), DType::F32, m, yb.data(), DType::F32, Path::kBF16);
  const ErrorStats e = error_stats(yb, yf);
  std::printf("[kernels] bf16 vs f32 path, K=4096 g128, N(0,1) activations: relative RMS error %.3g, max abs %.3g (rms y %.3g)\n",
              e.rel_rms, e.max_abs, e.rms_ref);
  EXPECT_LT(e.rel_rms, 0.0035);  // measured 0.27 %
}

}  // namespace
}  // namespace awq::kernels
