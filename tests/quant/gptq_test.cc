// GPTQ rounding (src/quant/gptq.h): against an independent f64 implementation of the optimal-brain-
// surgeon update it is derived from, its output error against round-to-nearest, determinism,
// dead columns and singular or non-finite Gram matrices, and the `quantize --rounding gptq` command.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sys/resource.h>
#include <functional>
#include <random>
#include <vector>

#include "awq/model_dir.h"
#include "awq/model_ops.h"
#include "awq/thread_pool.h"
#include "quant/gptq.h"
#include "quant/group_quant.h"
#include "test_util.h"

using namespace awq;
using namespace awq::quant_detail;

namespace {

struct Case {
  int64_t n = 0, k = 0, T = 0;
  std::vector<float> w, x;  // w [n][k], x [T][k]
  std::vector<float> H;     // XᵀX (f64 sums, stored f32 as quantize stores it)
};

// Correlated inputs (x = z·A + noise, A random k/4 × k): the case where compensation matters.
Case make_case(int64_t n, int64_t k, int64_t T, uint32_t seed) {
  Case c{n, k, T, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t r = k / 4;
  std::vector<float> A(static_cast<size_t>(r * k)), z(static_cast<size_t>(T * r));
  for (float& v : A) v = nd(rng);
  for (float& v : z) v = nd(rng);
  c.x.assign(static_cast<size_t>(T * k), 0.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < k; ++j) {
      double s = 0.1 * double(nd(rng));
      for (int64_t m = 0; m < r; ++m) s += double(z[size_t(t * r + m)]) * double(A[size_t(m * k + j)]);
      c.x[size_t(t * k + j)] = float(s);
    }
  c.w.resize(static_cast<size_t>(n * k));
  for (float& v : c.w) v = 0.02f * nd(rng);
  c.H.resize(static_cast<size_t>(k * k));
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) {
      double s = 0;
      for (int64_t t = 0; t < T; ++t) s += double(c.x[size_t(t * k + a)]) * double(c.x[size_t(t * k + b)]);
      c.H[size_t(a * k + b)] = float(s);
    }
  return c;
}

struct Out {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  std::vector<int32_t> zeros;
};

Out run_gptq(const Case& c, const GptqFactor& f, int64_t group, const QParams& q, ThreadPool& pool) {
  Out o{std::vector<uint8_t>(c.w.size()), std::vector<float>(size_t(c.n * (c.k / group))), std::vector<int32_t>(size_t(c.n * (c.k / group)))};
  gptq_quantize(c.w.data(), c.n, c.k, f, group, q, nullptr, nullptr, o.codes.data(), o.scales.data(), o.zeros.data(), pool);
  return o;
}

Out run_nearest(const Case& c, int64_t group, const QParams& q) {
  Out o{std::vector<uint8_t>(c.w.size()), std::vector<float>(size_t(c.n * (c.k / group))), std::vector<int32_t>(size_t(c.n * (c.k / group)))};
  for (int64_t r = 0; r < c.n; ++r)
    for (int64_t g = 0; g < c.k / group; ++g) {
      const GroupQ p = quantize_group(c.w.data() + r * c.k + g * group, group, q, 1, 1, o.codes.data() + r * c.k + g * group);
      o.scales[size_t(r * (c.k / group) + g)] = p.scale;
      o.zeros[size_t(r * (c.k / group) + g)] = p.zero;
    }
  return o;
}

// ‖(Wq − W)·Xᵀ‖² in f64, straight from the tokens.
double output_error(const Case& c, const Out& o, int64_t group) {
  double acc = 0;
  for (int64_t r = 0; r < c.n; ++r)
    for (int64_t t = 0; t < c.T; ++t) {
      double y = 0;
      for (int64_t j = 0; j < c.k; ++j) {
        const size_t gi = size_t(r * (c.k / group) + j / group);
        const double wq = double(o.scales[gi] * float(int(o.codes[size_t(r * c.k + j)]) - o.zeros[gi]));
        y += (wq - double(c.w[size_t(r * c.k + j)])) * double(c.x[size_t(t * c.k + j)]);
      }
      acc += y * y;
    }
  return acc;
}

// The reference: the optimal-brain-surgeon form GPTQ is derived from, written independently of
// gptq.cc. H⁻¹ of the damped Gram matrix by Gauss-Jordan elimination (partial pivoting); for each
// column j in order: its group's scale and zero from the current weights at the group's first
// column (the group quantizer, which tests elsewhere hold to AutoAWQ's), q_j, then every later
// column w_m −= (w_j − q_j)/Hinv_jj · Hinv_jm, and j is eliminated from the inverse:
// Hinv ← Hinv − Hinv_{:,j}·Hinv_{j,:}/Hinv_jj. No Cholesky factor anywhere.
Out obs_reference(const Case& c, double damp, int64_t group, const QParams& q) {
  const int64_t k = c.k, ng = k / group;
  std::vector<double> h(static_cast<size_t>(k * k));
  double mean = 0;
  for (int64_t j = 0; j < k; ++j) mean += double(c.H[size_t(j * k + j)]);
  mean /= double(k);
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) h[size_t(a * k + b)] = double(c.H[size_t(a * k + b)]) + (a == b ? damp * mean : 0.0);
  std::vector<double> inv(static_cast<size_t>(k * k), 0.0);
  for (int64_t j = 0; j < k; ++j) inv[size_t(j * k + j)] = 1;
  for (int64_t col = 0; col < k; ++col) {
    int64_t piv = col;
    for (int64_t r = col + 1; r < k; ++r)
      if (std::fabs(h[size_t(r * k + col)]) > std::fabs(h[size_t(piv * k + col)])) piv = r;
    for (int64_t m = 0; m < k; ++m) {
      std::swap(h[size_t(col * k + m)], h[size_t(piv * k + m)]);
      std::swap(inv[size_t(col * k + m)], inv[size_t(piv * k + m)]);
    }
    const double d = h[size_t(col * k + col)];
    for (int64_t m = 0; m < k; ++m) {
      h[size_t(col * k + m)] /= d;
      inv[size_t(col * k + m)] /= d;
    }
    for (int64_t r = 0; r < k; ++r) {
      if (r == col) continue;
      const double f = h[size_t(r * k + col)];
      for (int64_t m = 0; m < k; ++m) {
        h[size_t(r * k + m)] -= f * h[size_t(col * k + m)];
        inv[size_t(r * k + m)] -= f * inv[size_t(col * k + m)];
      }
    }
  }
  Out o{std::vector<uint8_t>(c.w.size()), std::vector<float>(size_t(c.n * ng)), std::vector<int32_t>(size_t(c.n * ng))};
  std::vector<double> w(c.w.begin(), c.w.end());
  const int maxq = (1 << q.bits) - 1;
  std::vector<float> grp(static_cast<size_t>(group));
  for (int64_t j = 0; j < k; ++j) {
    for (int64_t r = 0; r < c.n; ++r) {
      double* wr = w.data() + r * k;
      const size_t gi = size_t(r * ng + j / group);
      if (j % group == 0) {
        for (int64_t m = 0; m < group; ++m) grp[size_t(m)] = float(wr[j + m]);
        const GroupQ p = quantize_group(grp.data(), group, q, 1, 1, nullptr);
        o.scales[gi] = p.scale;
        o.zeros[gi] = p.zero;
      }
      const float s = o.scales[gi];
      const int code = int(std::clamp(std::nearbyint(to_f16(float(wr[j]) / s)) + float(o.zeros[gi]), 0.0f, float(maxq)));
      o.codes[size_t(r * k + j)] = uint8_t(code);
      const double e = (wr[j] - double(s * float(code - o.zeros[gi]))) / inv[size_t(j * k + j)];
      for (int64_t m = j + 1; m < k; ++m) wr[m] -= e * inv[size_t(j * k + m)];
    }
    const double djj = inv[size_t(j * k + j)];
    for (int64_t a = j + 1; a < k; ++a)
      for (int64_t b = j + 1; b < k; ++b) inv[size_t(a * k + b)] -= inv[size_t(a * k + j)] * inv[size_t(j * k + b)] / djj;
  }
  return o;
}

size_t differing(const Out& a, const Out& b) {
  size_t d = 0;
  for (size_t i = 0; i < a.codes.size(); ++i) d += a.codes[i] != b.codes[i];
  for (size_t i = 0; i < a.scales.size(); ++i) d += a.scales[i] != b.scales[i] || a.zeros[i] != b.zeros[i];
  return d;
}

}  // namespace

TEST(GptqRounding, EqualsAnIndependentObsReference) {
  ThreadPool pool(2);
  const QParams q{4, true};
  for (const auto& [n, k, group] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{21, 96, 32}, {5, 128, 64}}) {
    const Case c = make_case(n, k, 300, uint32_t(7 + k));
    const GptqFactor f = gptq_factor(c.H.data(), k, 0.01, pool);
    ASSERT_FALSE(f.u.empty());
    EXPECT_EQ(f.retries, 0);
    const Out got = run_gptq(c, f, group, q, pool), ref = obs_reference(c, 0.01, group, q);
    EXPECT_EQ(differing(got, ref), 0u) << "n " << n << " k " << k;
    // and it is not round to nearest
    EXPECT_GT(differing(got, run_nearest(c, group, q)), size_t(n * k / 10));
  }
}

// UᵀU is the inverse of the damped Gram matrix, and U is upper triangular with a positive diagonal.
TEST(GptqRounding, FactorIsTheUpperCholeskyFactorOfTheDampedInverse) {
  ThreadPool pool(3);
  const Case c = make_case(1, 64, 100, 3);
  const int64_t k = 64;
  const GptqFactor f = gptq_factor(c.H.data(), k, 0.05, pool);
  ASSERT_EQ(f.u.size(), size_t(k * k));
  double mean = 0;
  for (int64_t j = 0; j < k; ++j) mean += c.H[size_t(j * k + j)];
  EXPECT_NEAR(f.lambda, 0.05 * mean / double(k), 1e-9 * mean);
  double worst = 0;
  for (int64_t a = 0; a < k; ++a) {
    EXPECT_GT(f.u[size_t(a * k + a)], 0);
    for (int64_t b = 0; b < a; ++b) EXPECT_EQ(f.u[size_t(a * k + b)], 0.0);
    for (int64_t b = 0; b < k; ++b) {  // (H + λI)·(UᵀU) = I
      double s = 0;
      for (int64_t m = 0; m < k; ++m) {
        double uu = 0;  // (UᵀU)_{m b}
        for (int64_t l = 0; l <= std::min(m, b); ++l) uu += f.u[size_t(l * k + m)] * f.u[size_t(l * k + b)];
        s += (double(c.H[size_t(a * k + m)]) + (a == m ? f.lambda : 0.0)) * uu;
      }
      worst = std::max(worst, std::fabs(s - (a == b ? 1.0 : 0.0)));
    }
  }
  // U is computed in f64 and stored in f32 (gptq.h "Precision"): each entry carries a relative
  // rounding of up to 2^-24, which moves (H + λI)·UᵀU off I by about cond·k·2^-24 at most (this
  // case: measured 1.3e-6; with U kept in f64 it was below 1e-9). A wrong factor is off by O(1).
  EXPECT_LT(worst, 1e-5);
}

TEST(GptqRounding, LowersTheOutputErrorAgainstRoundToNearest) {
  ThreadPool pool(2);
  for (const QParams q : {QParams{4, true}, QParams{4, false}, QParams{8, true}}) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      const Case c = make_case(16, 128, 400, seed);
      const GptqFactor f = gptq_factor(c.H.data(), c.k, 0.01, pool);
      const double e_gptq = output_error(c, run_gptq(c, f, 32, q, pool), 32), e_rtn = output_error(c, run_nearest(c, 32, q), 32);
      EXPECT_LT(e_gptq, 0.8 * e_rtn) << "bits " << q.bits << " zero point " << q.zero_point << " seed " << seed;
    }
  }
}

TEST(GptqRounding, SameBytesForAnyThreadCountAndRun) {
  const Case c = make_case(37, 96, 200, 11);  // 37 rows: not a multiple of the 16-row tile
  const QParams q{4, true};
  std::vector<Out> outs;
  for (int threads : {1, 3, 3, 2}) {
    ThreadPool pool(threads);
    outs.push_back(run_gptq(c, gptq_factor(c.H.data(), c.k, 0.01, pool), 32, q, pool));
  }
  for (size_t i = 1; i < outs.size(); ++i) EXPECT_EQ(differing(outs[0], outs[i]), 0u) << i;
}

// Columns no token reaches (H_jj = 0) are rounded to nearest and spread nothing; a Gram matrix of
// rank < k (fewer tokens than columns) with no damping needs the retry; no NaN anywhere.
TEST(GptqRounding, DeadColumnsAndSingularGramStayFinite) {
  ThreadPool pool(2);
  const QParams q{4, true};
  Case c = make_case(9, 64, 20, 5);  // 20 tokens: rank ≤ 20 < 64
  for (int64_t t = 0; t < c.T; ++t)
    for (int64_t j : {0, 17, 63}) c.x[size_t(t * c.k + j)] = 0;
  for (int64_t j : {0, 17, 63})
    for (int64_t m = 0; m < c.k; ++m) c.H[size_t(j * c.k + m)] = c.H[size_t(m * c.k + j)] = 0;
  for (double damp : {0.0, 0.01}) {
    const GptqFactor f = gptq_factor(c.H.data(), c.k, damp, pool);
    ASSERT_FALSE(f.u.empty()) << damp;
    EXPECT_EQ(f.dead, 3);
    if (damp == 0) EXPECT_GE(f.retries, 1);
    for (int64_t j : {0, 17, 63})
      for (int64_t m = j + 1; m < c.k; ++m) EXPECT_EQ(f.u[size_t(j * c.k + m)], 0.0) << "dead column " << j << " spreads error";
    const Out o = run_gptq(c, f, 32, q, pool);
    for (uint8_t v : o.codes) EXPECT_LE(v, 15);
    for (float s : o.scales) EXPECT_TRUE(std::isfinite(s) && s > 0);
    EXPECT_LT(output_error(c, o, 32), output_error(c, run_nearest(c, 32, q), 32)) << damp;
  }
  // A Gram matrix of zeros (no signal at all): every column dead, exactly round to nearest.
  std::vector<float> zero(c.H.size(), 0.0f);
  const GptqFactor fz = gptq_factor(zero.data(), c.k, 0.01, pool);
  EXPECT_EQ(fz.dead, c.k);
  EXPECT_EQ(differing(run_gptq(c, fz, 32, q, pool), run_nearest(c, 32, q)), 0u);
  // NaN or Inf in the Gram matrix: no factor, and gptq_quantize rounds to nearest.
  for (float bad : {std::nanf(""), INFINITY}) {
    std::vector<float> h = c.H;
    h[size_t(5 * c.k + 7)] = bad;
    const GptqFactor fb = gptq_factor(h.data(), c.k, 0.01, pool);
    EXPECT_TRUE(fb.u.empty());
    EXPECT_EQ(differing(run_gptq(c, fb, 32, q, pool), run_nearest(c, 32, q)), 0u);
  }
}

// The command: --rounding gptq (with AWQ and with --method rtn) writes a checkpoint `awq check`
// passes, different from round to nearest; the default is gptq with AWQ (and stays nearest with
// rtn: RtnEqualsAutoAwqBitForBit); bad --gptq-damp values are usage errors.
TEST(QuantizeCmd, GptqRoundingPassesCheckAndDiffersFromNearest) {
  test::TempDir tmp;
  std::string ids;
  std::mt19937 rng(23);
  for (int i = 0; i < 300; ++i) ids += std::to_string(rng() % 200u) + " ";
  test::write_bytes(tmp / "calib.txt", ids);
  const std::vector<std::string> base = {"quantize", test::data_path("models/llama2"), "--group-size", "32", "--calib-tokens", tmp / "calib.txt",
                                         "--samples", "6", "--seqlen", "32", "-q"};
  std::vector<std::string> bytes;
  for (const auto& [dir, extra] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"awq-nearest", {"--rounding", "nearest"}}, {"awq-gptq", {"--rounding", "gptq"}}, {"awq-default", {}},
           {"rtn", {"--method", "rtn"}}, {"rtn-gptq", {"--method", "rtn", "--rounding", "gptq"}}}) {
    std::vector<std::string> args = base;
    args.push_back("-o");
    args.push_back(tmp / dir);
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = test::run_awq(args);
    ASSERT_EQ(r.status, 0) << dir << ": " << r.err;
    if (dir.find("gptq") != std::string::npos) EXPECT_NE(r.out.find("gptq rounding: "), std::string::npos) << r.out;
    const auto chk = test::run_awq({"check", tmp / dir});
    EXPECT_EQ(chk.status, 0) << dir << ": " << chk.out;
    bytes.push_back(test::read_bytes(tmp / dir + "/model.safetensors"));
  }
  EXPECT_NE(bytes[0], bytes[1]);
  EXPECT_EQ(bytes[1], bytes[2]);
  EXPECT_NE(bytes[3], bytes[4]);
  for (const char* bad : {"-1", "nan", "inf"}) {
    std::vector<std::string> args = base;
    for (const char* a : {"-o", "unused", "--rounding", "gptq", "--gptq-damp"}) args.push_back(a);
    args.push_back(bad);
    const auto r = test::run_awq(args);
    EXPECT_EQ(r.status, 2) << bad << ": " << r.err;
  }
}

// The blocked factor and the lazy-batch sweep against the straightforward _ref functions at a
// realistic size (k = 1024 with group 128, 70 rows; k = 1152 with group 96, which does not divide the
// 128-column block, dead columns; both with fewer tokens than columns, the damping making H
// definite), for the f32 factor (kAuto: these matrices pass its residual check) and the f64 one
// (kF64): the same factor, entry for entry, and the same codes, scales and zeros, for 1 and 3
// threads. Both compute each entry by the same fused multiply-adds in the same order, so the
// comparison is exact (a kernel that skipped the fusion, or summed in another order, fails it).
TEST(GptqRounding, FastPathEqualsTheStraightforwardOne) {
  struct Size {
    int64_t n, k, T, group;
    uint32_t seed;
  };
  for (const Size& s : {Size{70, 1024, 300, 128, 31u}, Size{21, 1152, 250, 96, 32u}}) {
    Case c = make_case(s.n, s.k, s.T, s.seed);
    if (s.k == 1152)
      for (int64_t j : {5, 200, 1151})
        for (int64_t m = 0; m < c.k; ++m) c.H[size_t(j * c.k + m)] = c.H[size_t(m * c.k + j)] = 0;
    for (const FactorPrecision prec : {FactorPrecision::kAuto, FactorPrecision::kF64}) {
      ThreadPool one(1), three(3);
      const GptqFactor ref = gptq_factor_ref(c.H.data(), c.k, 0.01, three, prec);
      ASSERT_FALSE(ref.u.empty());
      EXPECT_EQ(ref.f64, prec == FactorPrecision::kF64);
      for (ThreadPool* pool : {&one, &three}) {
        const GptqFactor fast = gptq_factor(c.H.data(), c.k, 0.01, *pool, prec);
        ASSERT_EQ(fast.u.size(), ref.u.size());
        EXPECT_EQ(fast.lambda, ref.lambda);
        EXPECT_EQ(fast.retries, ref.retries);
        EXPECT_EQ(fast.dead, ref.dead);
        EXPECT_EQ(fast.f64, ref.f64);
        size_t diff = 0;
        for (size_t i = 0; i < ref.u.size(); ++i) diff += fast.u[i] != ref.u[i];
        EXPECT_EQ(diff, 0u) << "k " << c.k << " threads " << pool->size() << " f64 " << ref.f64;
        for (const QParams q : {QParams{4, true}, QParams{4, false}}) {
          Out got{std::vector<uint8_t>(c.w.size()), std::vector<float>(size_t(c.n * (c.k / s.group))),
                  std::vector<int32_t>(size_t(c.n * (c.k / s.group)))};
          Out want = got;
          gptq_quantize(c.w.data(), c.n, c.k, fast, s.group, q, nullptr, nullptr, got.codes.data(), got.scales.data(), got.zeros.data(),
                        *pool);
          gptq_quantize_ref(c.w.data(), c.n, c.k, ref, s.group, q, nullptr, nullptr, want.codes.data(), want.scales.data(),
                            want.zeros.data(), three);
          EXPECT_EQ(differing(got, want), 0u) << "k " << c.k << " threads " << pool->size() << " zero point " << q.zero_point;
          EXPECT_GT(differing(got, run_nearest(c, s.group, q)), size_t(c.n * c.k / 10));  // it compensates
        }
      }
    }
  }
}

// The f32 factor against the f64 one on the same Gram matrix (k = 512, correlated inputs): U within
// a relative 1e-3 of the f64 U's largest entry in each row (f32 carries ~7 digits; the measured
// residual, below kF32Residual, bounds how far UᵀU is from the inverse), and GPTQ's output error with
// it within 1 % of the f64 factor's (the sweep is the same f32 code; only U differs). Measured on
// this case with the f32 factor forced (kF32) at smaller damping, f32/f64 output error: damping 1e-2
// residual 1.1e-4, 1.0019; 1e-3: 1.3e-3, 0.9958; 1e-4: 1.45e-2, 0.9891; 1e-5: an f32 pivot fails.
TEST(GptqRounding, F32FactorAgreesWithTheF64One) {
  ThreadPool pool(2);
  const QParams q{4, true};
  const Case c = make_case(48, 512, 400, 77);
  const GptqFactor f32 = gptq_factor(c.H.data(), c.k, 0.01, pool), f64 = gptq_factor(c.H.data(), c.k, 0.01, pool, FactorPrecision::kF64);
  ASSERT_FALSE(f32.u.empty());
  ASSERT_FALSE(f64.u.empty());
  EXPECT_FALSE(f32.f64);
  EXPECT_TRUE(f64.f64);
  EXPECT_LT(f32.residual, kF32Residual);
  EXPECT_LT(f64.residual, f32.residual);
  double worst = 0;
  for (int64_t a = 0; a < c.k; ++a) {
    double top = 0, d = 0;
    for (int64_t b = a; b < c.k; ++b) {
      top = std::max(top, std::fabs(double(f64.u[size_t(a * c.k + b)])));
      d = std::max(d, std::fabs(double(f32.u[size_t(a * c.k + b)]) - double(f64.u[size_t(a * c.k + b)])));
    }
    worst = std::max(worst, d / top);
  }
  EXPECT_LT(worst, 1e-3);
  const double e32 = output_error(c, run_gptq(c, f32, 32, q, pool), 32), e64 = output_error(c, run_gptq(c, f64, 32, q, pool), 32);
  EXPECT_NEAR(e32, e64, 0.01 * e64);
}

// An ill-conditioned Gram matrix (rank 40 of 256, damping 1e-4 of the mean diagonal): the f32 try is
// rejected (a pivot below 1e-4 of its entry, or the residual) and the factor is the f64 one, with
// a residual below the bar (measured 5.6e-4); with damping 0 the f32 try is skipped (λ = 0 needs the
// f64 retries).
TEST(GptqRounding, IllConditionedGramFallsBackToF64) {
  ThreadPool pool(2);
  const Case c = make_case(4, 256, 40, 9);
  const double damp = 1e-4;
  const GptqFactor f = gptq_factor(c.H.data(), c.k, damp, pool);
  ASSERT_FALSE(f.u.empty());
  EXPECT_TRUE(f.f64);
  EXPECT_EQ(f.retries, 0);
  EXPECT_LT(f.residual, kF32Residual);
  const GptqFactor ref = gptq_factor_ref(c.H.data(), c.k, damp, pool);
  EXPECT_TRUE(ref.f64);
  EXPECT_EQ(ref.u, f.u);
  const GptqFactor z = gptq_factor(c.H.data(), c.k, 0.0, pool);
  ASSERT_FALSE(z.u.empty());
  EXPECT_TRUE(z.f64);
  EXPECT_GE(z.retries, 1);
}

// Not a test: the timing bench BENCHMARKS.md quotes (never run by ctest). One n × k linear:
// GPTQ_BENCH_N / _K / _THREADS set the shape and pool. The Gram matrix: GPTQ_BENCH_TOKENS = 0 (the
// default) a random, diagonally dominant one (the same as the bench of the f64 version before it, so
// the two binaries time the same matrix); T > 0: XᵀX of T random tokens whose channels have
// log-normal scales and 1 % outlier channels ×20 (rank ≤ T: the damping makes it definite).
// GPTQ_BENCH_REF=1 times the _ref functions too and checks they agree. Prints process CPU and wall
// seconds of each phase and the peak RSS after it:
//   GPTQ_BENCH_K=4096 build/release/tests/awq_tests --gtest_also_run_disabled_tests --gtest_filter='*DISABLED_Bench*'
TEST(GptqRounding, DISABLED_Bench) {
  auto env = [](const char* name, int64_t def) { const char* v = std::getenv(name); return v ? std::atoll(v) : def; };
  const int64_t n = env("GPTQ_BENCH_N", 4096), k = env("GPTQ_BENCH_K", 4096), threads = env("GPTQ_BENCH_THREADS", 2);
  const int64_t tokens = env("GPTQ_BENCH_TOKENS", 0);
  const bool ref = env("GPTQ_BENCH_REF", 0) != 0;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  ThreadPool pool{int(threads)};
  std::vector<float> H(size_t(k * k)), w(size_t(n * k));
  if (tokens == 0) {
    for (int64_t a = 0; a < k; ++a) {
      for (int64_t b = 0; b < a; ++b) H[size_t(a * k + b)] = H[size_t(b * k + a)] = ud(rng);
      H[size_t(a * k + a)] = float(k) + 1.0f;
    }
  } else {
    std::vector<float> scale(static_cast<size_t>(k)), xt(static_cast<size_t>(k * tokens));  // xt = Xᵀ [k][T]
    for (float& s : scale) s = std::exp(0.5f * nd(rng)) * (rng() % 100 == 0 ? 20.0f : 1.0f);
    for (int64_t c = 0; c < k; ++c)
      for (int64_t t = 0; t < tokens; ++t) xt[size_t(c * tokens + t)] = scale[size_t(c)] * nd(rng);
    kernels::dense_f32_gemm_tall(xt.data(), k, tokens, xt.data(), k, H.data(), &pool);  // H[a][b] = Σ_t X[t][a]·X[t][b]
  }
  for (float& v : w) v = 0.02f * nd(rng);
  const QParams q{4, true};
  const int64_t group = 128;
  std::vector<uint8_t> codes(w.size()), codes_ref;
  std::vector<float> scales(size_t(n * (k / group)));
  std::vector<int32_t> zeros(scales.size());
  auto timed = [](const char* what, const std::function<void()>& fn) {
    const auto w0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    fn();
    const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf("%-14s cpu %8.2f s  wall %8.2f s  peak RSS %6.0f MB\n", what, cpu, wall, double(ru.ru_maxrss) / 1024.0);
  };
  std::printf("n %lld k %lld threads %lld tokens %lld\n", (long long)n, (long long)k, (long long)threads, (long long)tokens);
  timed("inputs", [] {});
  GptqFactor f, fr;
  timed("factor", [&] { f = gptq_factor(H.data(), k, 0.01, pool); });
  ASSERT_FALSE(f.u.empty());
  std::printf("factor: lambda %g retries %d, %s, residual %.3g, U %.0f MB\n", f.lambda, f.retries, f.f64 ? "f64" : "f32", f.residual,
              double(f.u.size() * sizeof(f.u[0])) / 1e6);
  if (env("GPTQ_BENCH_F64", 0) != 0) timed("factor_f64", [&] { fr = gptq_factor(H.data(), k, 0.01, pool, FactorPrecision::kF64); });
  if (!fr.u.empty()) std::printf("factor_f64: residual %.3g\n", fr.residual);
  timed("sweep", [&] { gptq_quantize(w.data(), n, k, f, group, q, nullptr, nullptr, codes.data(), scales.data(), zeros.data(), pool); });
  if (!ref) return;
  timed("factor_ref", [&] { fr = gptq_factor_ref(H.data(), k, 0.01, pool); });
  EXPECT_EQ(fr.u, f.u);
  codes_ref = codes;
  timed("sweep_ref", [&] { gptq_quantize_ref(w.data(), n, k, fr, group, q, nullptr, nullptr, codes_ref.data(), scales.data(), zeros.data(), pool); });
  EXPECT_EQ(codes_ref, codes);
}
