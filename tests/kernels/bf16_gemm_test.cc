// The dense GEMM on bf16-rounded inputs (kernels.h "Dense GEMM on bf16-rounded inputs") and XᵀX on
// it, against the scalar reference bf16_gemm_ref. One test case per compiled Highway target (AMX
// forced off): bit for bit on small integers and on random data (the Highway kernels perform the
// reference's arithmetic). The AMX-BF16 kernel (skipped with the reason where absent): bit for bit on
// small integers (every partial sum exact), within the stated f32 summation bound on random data.
// Odd m/n/k, m < 16, k not a multiple of 32, 1 and 2 threads, accumulate, and the rounding itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/kernels.h"
#include "awq/thread_pool.h"
#include "kernel_test_util.h"

namespace awq::kernels {
namespace {

struct Shape {
  int64_t m, n, k;
};
// m < 16, odd m/n/k, k not a multiple of 32, partial 256-row/column blocks, several K slices.
const std::vector<Shape> kShapes = {{1, 1, 1},    {3, 5, 7},     {15, 17, 33},  {16, 16, 32},  {17, 31, 95},
                                    {33, 40, 64}, {70, 129, 515}, {257, 300, 77}, {300, 513, 600}};

std::vector<float> small_ints(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(int(rng() % 17) - 8);
  return v;
}
std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// bf16_gemm (B packed) against bf16_gemm_ref on one shape: plain and accumulating onto c0, with pool.
// exact: bit for bit; otherwise |got − want| <= 2·k·2^-24·Σ|bf16(a)·bf16(b)| per output.
void check_shape(const Shape& s, bool ints, bool exact, ThreadPool& pool, const std::string& what) {
  const auto a = ints ? small_ints(size_t(s.m * s.k), 1) : randn(size_t(s.m * s.k), 1);
  const auto b = ints ? small_ints(size_t(s.n * s.k), 2) : randn(size_t(s.n * s.k), 2);
  const auto c0 = ints ? small_ints(size_t(s.m * s.n), 3) : randn(size_t(s.m * s.n), 3);
  const Bf16Matrix bp = bf16_pack(b.data(), s.n, s.k, &pool);
  for (bool acc : {false, true}) {
    std::vector<float> want = c0, got = c0;
    if (!acc) std::fill(got.begin(), got.end(), std::nanf(""));  // every output must be written
    bf16_gemm_ref(a.data(), s.m, b.data(), s.n, s.k, want.data(), acc);
    bf16_gemm(a.data(), s.m, bp, got.data(), &pool, acc);
    const std::string at = what + " m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
                           " threads=" + std::to_string(pool.size()) + (acc ? " accumulate" : "");
    if (exact) {
      ASSERT_TRUE(same_bits(got, want)) << at;
      continue;
    }
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j) {
        double mag = acc ? std::fabs(double(c0[size_t(i * s.n + j)])) : 0.0;
        for (int64_t kk = 0; kk < s.k; ++kk)
          mag += std::fabs(double(bf16_to_f32(f32_to_bf16(a[size_t(i * s.k + kk)]))) * bf16_to_f32(f32_to_bf16(b[size_t(j * s.k + kk)])));
        const double bound = 2.0 * double(s.k + 1) * std::ldexp(1.0, -24) * mag;
        ASSERT_LE(std::fabs(double(got[size_t(i * s.n + j)]) - double(want[size_t(i * s.n + j)])), bound) << at << " at " << i << "," << j;
      }
  }
}

// Turns AMX off for its lifetime (the Highway kernels run).
struct NoAmx {
  NoAmx() { force_amx_unavailable(true); }
  ~NoAmx() { force_amx_unavailable(false); }
};

class Bf16GemmTarget : public ::testing::TestWithParam<TargetInfo> {};

TEST_P(Bf16GemmTarget, EqualsTheReferenceBitForBit) {
  const TargetInfo& t = GetParam();
  if (!t.runnable) GTEST_SKIP() << t.name << " not runnable here: " << t.why_not;
  NoAmx off;
  test::TargetGuard g(t.bits);
  ThreadPool one(1), two(2);
  for (const Shape& s : kShapes)
    for (ThreadPool* p : {&one, &two}) {
      check_shape(s, true, true, *p, t.name + " small integers");
      check_shape(s, false, true, *p, t.name + " random");
    }
  // XᵀX over more than one 4096-token chunk: the reference's sums, exactly symmetric.
  const int64_t T = 4100, k = 37;
  const auto x = randn(size_t(T * k), 9);
  std::vector<float> xt(size_t(k * T)), want(size_t(k * k)), got(size_t(k * k), std::nanf(""));
  for (int64_t tt = 0; tt < T; ++tt)
    for (int64_t i = 0; i < k; ++i) xt[size_t(i * T + tt)] = x[size_t(tt * k + i)];
  bf16_gemm_ref(xt.data(), k, xt.data(), k, T, want.data());
  bf16_gram(x.data(), T, k, got.data(), &two);
  EXPECT_TRUE(same_bits(got, want)) << t.name << " gram";
}

std::string target_name(const ::testing::TestParamInfo<TargetInfo>& i) { return i.param.name; }
INSTANTIATE_TEST_SUITE_P(Targets, Bf16GemmTarget, ::testing::ValuesIn(compiled_targets()), target_name);

TEST(Bf16Gemm, RoundsEachInputToNearestEvenBf16) {
  // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: nearest even gives 1; 1 + 3·2^-9 gives 1 + 2^-7.
  const float a[2] = {1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -9)}, b[2] = {1.0f, 1.0f};
  for (bool amx : {false, true}) {
    if (amx && !amx_bf16_available()) continue;
    NoAmx* off = amx ? nullptr : new NoAmx;
    float c[2] = {0, 0};
    bf16_gemm(a, 2, b, 1, 1, c);
    EXPECT_EQ(c[0], 1.0f) << (amx ? "amx" : "highway");
    EXPECT_EQ(c[1], 1.0f + std::ldexp(1.0f, -7)) << (amx ? "amx" : "highway");
    delete off;
  }
}

TEST(Bf16Gemm, AmxSmallIntegersBitForBitRandomWithinTheBound) {
  std::string why;
  if (!amx_bf16_available(&why)) GTEST_SKIP() << "no AMX-BF16 here: " << why;
  ThreadPool one(1), two(2);
  for (const Shape& s : kShapes)
    for (ThreadPool* p : {&one, &two}) {
      check_shape(s, true, true, *p, "amx small integers");
      check_shape(s, false, false, *p, "amx random");
    }
}

TEST(Bf16Gemm, AmxSameBitsForAnyThreadCountAndExactlySymmetricGram) {
  std::string why;
  if (!amx_bf16_available(&why)) GTEST_SKIP() << "no AMX-BF16 here: " << why;
  ThreadPool one(1), two(2);
  const int64_t m = 300, n = 513, k = 600;
  const auto a = randn(size_t(m * k), 4), b = randn(size_t(n * k), 5);
  std::vector<float> c1(size_t(m * n)), c2(size_t(m * n));
  bf16_gemm(a.data(), m, b.data(), n, k, c1.data(), &one);
  bf16_gemm(a.data(), m, b.data(), n, k, c2.data(), &two);
  EXPECT_TRUE(same_bits(c1, c2));
  // XᵀX: 4100 tokens (two chunks), 300 features (a block below the diagonal is mirrored).
  const int64_t T = 4100, f = 300;
  const auto xi = small_ints(size_t(T * f), 6), xr = randn(size_t(T * f), 7);
  std::vector<float> xt(size_t(f * T)), want(size_t(f * f)), g1(size_t(f * f)), g2(size_t(f * f), std::nanf(""));
  for (int64_t tt = 0; tt < T; ++tt)
    for (int64_t i = 0; i < f; ++i) xt[size_t(i * T + tt)] = xi[size_t(tt * f + i)];
  bf16_gemm_ref(xt.data(), f, xt.data(), f, T, want.data());
  bf16_gram(xi.data(), T, f, g2.data(), &two);
  EXPECT_TRUE(same_bits(g2, want)) << "gram of small integers";
  bf16_gram(xr.data(), T, f, g1.data(), &one);
  bf16_gram(xr.data(), T, f, g2.data(), &two);
  EXPECT_TRUE(same_bits(g1, g2)) << "gram, 1 vs 2 threads";
  for (int64_t i = 0; i < f; ++i)
    for (int64_t j = 0; j < f; ++j) ASSERT_EQ(g2[size_t(i * f + j)], g2[size_t(j * f + i)]) << i << "," << j;
}

TEST(Bf16Gemm, ABPackedForTheOtherKernelIsRefused) {
  std::string why;
  if (!amx_bf16_available(&why)) GTEST_SKIP() << "no AMX-BF16 here: " << why;
  const std::vector<float> a(64, 1.0f), b(64, 1.0f);
  std::vector<float> c(4);
  const Bf16Matrix amx = bf16_pack(b.data(), 2, 32);
  NoAmx off;
  EXPECT_THROW(bf16_gemm(a.data(), 2, amx, c.data()), Error);
  const Bf16Matrix hwy = bf16_pack(b.data(), 2, 32);
  EXPECT_NO_THROW(bf16_gemm(a.data(), 2, hwy, c.data()));
  EXPECT_EQ(c[0], 32.0f);
}

}  // namespace
}  // namespace awq::kernels
