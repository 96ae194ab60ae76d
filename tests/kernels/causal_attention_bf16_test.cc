// causal_attention_bf16 (model_ops.h): the causal attention of quantize's bf16 forwards, on every
// compiled Highway target (AMX forced off) and on AMX-BF16 tiles (skipped with the reason where
// absent), against the scalar reference causal_attention_bf16_ref:
//  - exact inputs (small integers; every row's scores tie at its maximum or lie >= 181 below it, so
//    each p is 1 or 0 and every sum is exact): bit for bit;
//  - random inputs: within one bf16 ulp of the weights of the reference (the kernels' exp and sum
//    orders differ from the reference's), and within a bound derived from the bf16 roundings of the
//    f32 kernel causal_attention;
// for odd lengths, len < 16, sliding windows, GQA groups 1-4, head dims 64 and 128 (and tails: 24,
// 80, 1). Scratch is filled with NaN first (a read of unwritten scratch shows); padding columns of
// the output must stay untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "awq/dtype.h"
#include "awq/kernels.h"
#include "awq/model_ops.h"
#include "kernel_test_util.h"

using namespace awq;
using namespace awq::kernels;

namespace {

struct Case {
  int64_t hd, group, len, window;
};
const Case kCases[] = {{64, 1, 37, 0}, {64, 2, 512, 0}, {128, 4, 70, 0}, {128, 1, 13, 0}, {64, 3, 33, 17},
                       {24, 2, 9, 0},  {80, 1, 65, 5},  {128, 2, 100, 40}, {1, 1, 5, 0},  {64, 2, 16, 0}};

std::string describe(const Case& c) {
  return "hd=" + std::to_string(c.hd) + " group=" + std::to_string(c.group) + " len=" + std::to_string(c.len) +
         " window=" + std::to_string(c.window);
}

// Turns AMX off for its lifetime (the Highway kernels run).
struct NoAmx {
  NoAmx() { force_amx_unavailable(true); }
  ~NoAmx() { force_amx_unavailable(false); }
};

struct Inputs {
  int64_t qs, kvs, os;
  std::vector<float> q, k, v;
};

// Strided rows (padding columns between them). exact: see the file comment; else N(0, 1), q times qscale.
Inputs make_inputs(const Case& c, bool exact, float qscale, uint32_t seed) {
  Inputs in;
  in.qs = c.group * c.hd + 5;
  in.kvs = c.hd + 3;
  in.os = c.group * c.hd + 7;
  in.q.assign(size_t(c.len * in.qs), 0.0f);
  in.k.assign(size_t(c.len * in.kvs), 0.0f);
  in.v.assign(size_t(c.len * in.kvs), 0.0f);
  std::mt19937 rng(seed);
  if (!exact) {
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& x : in.q) x = qscale * nd(rng);
    for (auto& x : in.k) x = nd(rng);
    for (auto& x : in.v) x = nd(rng);
    return in;
  }
  // Key j: dim 0 is 0 (a "top" key) or -8; the other dims are the same for every key, so a row's
  // scores differ only by q[0]·k[j][0]: with q[0] = 256 the top keys tie and the others lie 2048
  // (x 1/sqrt(hd) >= 181) below, with q[0] = 0 every visible key ties.
  std::uniform_int_distribution<int> small(-4, 4), vv(-8, 8), coin(0, 9);
  std::vector<float> common(size_t(c.hd));
  for (auto& x : common) x = float(small(rng));
  for (int64_t j = 0; j < c.len; ++j) {
    for (int64_t d = 1; d < c.hd; ++d) in.k[size_t(j * in.kvs + d)] = common[size_t(d)];
    if (c.hd > 1) in.k[size_t(j * in.kvs)] = coin(rng) < 3 ? 0.0f : -8.0f;
    else in.k[size_t(j * in.kvs)] = coin(rng) < 3 ? 1.0f : -8.0f;
    for (int64_t d = 0; d < c.hd; ++d) in.v[size_t(j * in.kvs + d)] = float(vv(rng));
  }
  for (int64_t i = 0; i < c.len; ++i)
    for (int64_t g = 0; g < c.group; ++g) {
      float* qi = in.q.data() + i * in.qs + g * c.hd;
      qi[0] = coin(rng) < 7 ? 256.0f : 0.0f;
      for (int64_t d = 1; d < c.hd; ++d) qi[d] = float(small(rng));
    }
  return in;
}

// The kernel's output (padding columns pre-set to -7 and checked) and the reference's.
struct Outputs {
  std::vector<float> got, want;
};
Outputs run_both(const Case& c, const Inputs& in, float scale) {
  Outputs o;
  o.got.assign(size_t(c.len * in.os), -7.0f);
  o.want.assign(size_t(c.len * in.os), -7.0f);
  std::vector<float> scratch(causal_attention_bf16_scratch(c.len, c.group, c.hd), std::nanf(""));
  causal_attention_bf16(in.q.data(), in.qs, c.group, c.hd, in.k.data(), in.v.data(), in.kvs, c.len, c.window, scale, o.got.data(), in.os,
                        scratch.data());
  causal_attention_bf16_ref(in.q.data(), in.qs, c.group, c.hd, in.k.data(), in.v.data(), in.kvs, c.len, c.window, scale, o.want.data(),
                            in.os);
  for (int64_t i = 0; i < c.len; ++i)
    for (int64_t j = c.group * c.hd; j < in.os; ++j) EXPECT_EQ(o.got[size_t(i * in.os + j)], -7.0f) << "padding column written";
  return o;
}

float bf(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// Largest |v| over row i's visible keys.
double vmax(const Case& c, const Inputs& in, int64_t i) {
  const int64_t start = c.window > 0 ? std::max<int64_t>(0, i + 1 - c.window) : 0;
  double m = 0;
  for (int64_t j = start; j <= i; ++j)
    for (int64_t d = 0; d < c.hd; ++d) m = std::max(m, std::fabs(double(in.v[size_t(j * in.kvs + d)])));
  return m;
}

// Exact inputs bit for bit; random inputs (q scale 1, and 6 for peaked rows) within
//   |got − ref| <= 2^-7·max|v| + 1e-5:
// the kernels' p may each land one bf16 ulp (2^-8 relative) from the reference's where their exp
// (Highway's, <= 1 ulp off std::exp) or, on AMX, their score sums round the other way before the
// bf16 rounding; Σ_j |δw_j|·|v_j| <= 2·2^-8·max|v| over the normalised weights. Returns the largest
// |got − ref| / max|v| seen on random inputs.
double check_against_reference(const std::string& what) {
  double worst = 0;
  for (const Case& c : kCases) {
    const float scale = 1.0f / std::sqrt(float(c.hd));
    {
      const Inputs in = make_inputs(c, true, 1.0f, 11);
      const Outputs o = run_both(c, in, scale);
      EXPECT_EQ(0, std::memcmp(o.got.data(), o.want.data(), o.got.size() * 4)) << what << " exact " << describe(c);
    }
    for (float qscale : {1.0f, 6.0f}) {
      const Inputs in = make_inputs(c, false, qscale, 12);
      const Outputs o = run_both(c, in, scale);
      for (int64_t i = 0; i < c.len; ++i) {
        const double vm = vmax(c, in, i);
        for (int64_t j = 0; j < c.group * c.hd; ++j) {
          const double e = std::fabs(double(o.got[size_t(i * in.os + j)]) - double(o.want[size_t(i * in.os + j)]));
          worst = std::max(worst, e / vm);
          if (e > std::ldexp(vm, -7) + 1e-5) {
            ADD_FAILURE() << what << " random q x" << qscale << " " << describe(c) << " row " << i << " col " << j << ": |got − ref| " << e
                          << " > 2^-7·" << vm << " + 1e-5";
            return worst;
          }
        }
      }
    }
  }
  return worst;
}

// Against the f32 kernel on random inputs, per row i and head g: with Δ = scale·(2^-8 + 2^-20)·
// max_j Σ_d |q_d|·|k_jd| (the bf16 roundings of q and k move each product by < 2^-8 of itself, plus
// the f32 sums), each score moves by <= Δ, each weight by a factor within e^±(2Δ + 2^-8) (the p
// rounding, 2^-9 each way), so |out − out_f32| <= (e^(2Δ + 2^-8) − 1)·max|v| + 2^-9·max|v| (V's
// rounding) + 1e-5. Returns the largest |out − out_f32| / max|v| seen.
double check_against_f32(const std::string& what) {
  double worst = 0;
  for (const Case& c : kCases) {
    const float scale = 1.0f / std::sqrt(float(c.hd));
    for (float qscale : {1.0f, 6.0f}) {
      const Inputs in = make_inputs(c, false, qscale, 13);
      const Outputs o = run_both(c, in, scale);
      std::vector<float> f32(size_t(c.len * in.os)), scratch(causal_attention_scratch(c.len, c.hd));
      causal_attention(in.q.data(), in.qs, c.group, c.hd, in.k.data(), in.v.data(), in.kvs, c.len, c.window, scale, f32.data(), in.os,
                       scratch.data());
      for (int64_t i = 0; i < c.len; ++i) {
        const int64_t start = c.window > 0 ? std::max<int64_t>(0, i + 1 - c.window) : 0;
        const double vm = vmax(c, in, i);
        for (int64_t g = 0; g < c.group; ++g) {
          double qk = 0;
          for (int64_t j = start; j <= i; ++j) {
            double s = 0;
            for (int64_t d = 0; d < c.hd; ++d)
              s += std::fabs(double(in.q[size_t(i * in.qs + g * c.hd + d)])) * std::fabs(double(in.k[size_t(j * in.kvs + d)]));
            qk = std::max(qk, s);
          }
          const double delta = double(scale) * (std::ldexp(1.0, -8) + std::ldexp(1.0, -20)) * qk;
          const double bound = std::expm1(2 * delta + std::ldexp(1.0, -8)) * vm + std::ldexp(vm, -9) + 1e-5;
          for (int64_t d = 0; d < c.hd; ++d) {
            const size_t at = size_t(i * in.os + g * c.hd + d);
            const double e = std::fabs(double(o.got[at]) - double(f32[at]));
            worst = std::max(worst, e / vm);
            if (e > bound) {
              ADD_FAILURE() << what << " q x" << qscale << " " << describe(c) << " row " << i << " head " << g << " dim " << d
                            << ": |got − f32| " << e << " > bound " << bound;
              return worst;
            }
          }
        }
      }
    }
  }
  return worst;
}

class CausalAttentionBf16Target : public ::testing::TestWithParam<TargetInfo> {};

TEST_P(CausalAttentionBf16Target, HighwayKernelAgainstReferenceAndF32) {
  const TargetInfo& t = GetParam();
  if (!t.runnable) GTEST_SKIP() << t.name << " not runnable here: " << t.why_not;
  NoAmx off;
  test::TargetGuard g(t.bits);
  const double r = check_against_reference(t.name);
  const double f = check_against_f32(t.name);
  std::printf("[ %s ] largest |bf16 − ref| / max|v| %.3g, |bf16 − f32 kernel| / max|v| %.3g\n", t.name.c_str(), r, f);
}

std::string target_name(const ::testing::TestParamInfo<TargetInfo>& i) { return i.param.name; }
INSTANTIATE_TEST_SUITE_P(Targets, CausalAttentionBf16Target, ::testing::ValuesIn(compiled_targets()), target_name);

TEST(CausalAttentionBf16, AmxKernelAgainstReferenceAndF32) {
  std::string why;
  if (!amx_bf16_available(&why)) GTEST_SKIP() << "no AMX-BF16 here: " << why;
  const double r = check_against_reference("amx");
  const double f = check_against_f32("amx");
  std::printf("[ amx ] largest |bf16 − ref| / max|v| %.3g, |bf16 − f32 kernel| / max|v| %.3g\n", r, f);
}

// The roundings themselves, on both kernels: row 0 sees only key 0, so its output is bf16(V[0])
// exactly (1 + 3·2^-9 rounds up to 1 + 2^-7, 1 + 2^-8 is a tie that rounds to even 1); row 1's
// scores use bf16(q) = 1 (from 1 + 2^-8), not q.
TEST(CausalAttentionBf16, RoundsInputsToNearestEvenBf16) {
  const float q[2] = {1.0f + std::ldexp(1.0f, -8), 1.0f + std::ldexp(1.0f, -8)}, k[2] = {0.0f, 4.0f},
              v[2] = {1.0f + 3 * std::ldexp(1.0f, -9), 1.0f + std::ldexp(1.0f, -8)};
  for (bool amx : {false, true}) {
    if (amx && !amx_bf16_available()) continue;
    NoAmx* off = amx ? nullptr : new NoAmx;
    float out[2] = {0, 0};
    std::vector<float> scratch(causal_attention_bf16_scratch(2, 1, 1), std::nanf(""));
    causal_attention_bf16(q, 1, 1, 1, k, v, 1, 2, 0, 1.0f, out, 1, scratch.data());
    EXPECT_EQ(out[0], 1.0f + std::ldexp(1.0f, -7)) << (amx ? "amx" : "highway");
    // Row 1: x = (0, 4); p = (bf16(e^-4), 1); out = (p0·bf16(v0) + 1·1) / (p0 + 1).
    const float p0 = bf(std::exp(-4.0f)), want = (p0 * bf(v[0]) + 1.0f) * (1.0f / (p0 + 1.0f));
    EXPECT_EQ(out[1], want) << (amx ? "amx" : "highway");
    delete off;
  }
}

}  // namespace
