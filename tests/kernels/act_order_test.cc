// Kernels on GPTQ act-order layers (non-trivial g_idx): repack orders the input columns by group and
// records source_col; the activation pass gathers through it and dequantize scatters through it.
// Checked on every runnable target against the scalar references, against QuantLinear's own
// dequantization, and on a real AutoGPTQ act-order checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/formats.h"
#include "awq/kernels.h"
#include "awq/model_dir.h"
#include "awq/quant_linear.h"
#include "awq/thread_pool.h"
#include "kernel_test_util.h"
#include "test_util.h"

namespace awq::kernels {
namespace {

using namespace awq::test;  // kernel_test_util.h, test_util.h
using Spec = LayerSpec;

// GPTQ act-order: columns visited in a random order perm; g_idx[perm[i]] = i / group.
std::vector<int32_t> gptq_g_idx(int64_t k, int64_t group, uint32_t seed) {
  std::vector<int32_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  std::vector<int32_t> g(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) g[size_t(perm[size_t(i)])] = int32_t(i / group);
  return g;
}

// Arbitrary g_idx over n_groups groups: group sizes very unequal (group g drawn with weight g + 1),
// groups `empty_a` and `empty_b` get no column.
std::vector<int32_t> irregular_g_idx(int64_t k, int64_t n_groups, int64_t empty_a, int64_t empty_b, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<double> weight(static_cast<size_t>(n_groups));
  for (int64_t g = 0; g < n_groups; ++g) weight[size_t(g)] = (g == empty_a || g == empty_b) ? 0.0 : double(g + 1);
  std::discrete_distribution<int32_t> pick(weight.begin(), weight.end());
  std::vector<int32_t> g(static_cast<size_t>(k));
  for (auto& v : g) v = pick(rng);
  return g;
}

int64_t groups_for(const std::vector<int32_t>& g_idx) { return *std::max_element(g_idx.begin(), g_idx.end()) + 1; }

// This file's layers: GPTQ act-order over n_groups groups, zeros up to 16 (GPTQ v1's stored + 1), a
// realistic scale drawn before every scale (discarded when exact).
QuantLinear make(const Spec& s, std::vector<int32_t> g_idx, int64_t n_groups, uint32_t seed) {
  return make_layer(s, seed,
                     {.name_prefix = "act_order.", .zero_levels = 17, .scale_draw_always = true,
                      .g_idx = std::move(g_idx), .n_groups = n_groups});
}

QuantLinear make_gptq(const Spec& s, uint32_t seed) {
  return make(s, gptq_g_idx(s.k, s.group, seed), (s.k + s.group - 1) / s.group, seed + 1);
}

int64_t round_up8(int64_t v) { return (v + 7) / 8 * 8; }

// gemm on every runnable target against gemm_ref, and the reference against the naive dense product.
// Exact data: all equal, except the int8 path with pre_quant_scale (x·pqs is then not quantized with
// d = 1), which equals its reference on FMA targets only. Realistic data: the f32 path within f32
// rounding, the int8 path within its quantization error (relative RMS, as in kernels_test.cc).
void check_gemm(const QuantLinear& q, bool exact, const std::string& what) {
  const PackedLinear p = repack(q);
  ASSERT_FALSE(p.source_col.empty()) << what;
  for (int64_t m : {1, 2, 5, 9, 17}) {
    const auto x = make_x(q, m, exact, uint32_t(40 + m), Peaks::kOverwrite);
    const auto want = naive(q, x, m);
    for (Path path : {Path::kF32, Path::kInt8, Path::kInt16}) {
      std::vector<float> ref(size_t(m * q.n)), got(ref.size());
      gemm_ref(p, x.data(), DType::F32, m, ref.data(), DType::F32, path);
      // int16: d = max|x|/32639 is inexact even on small-integer data.
      const bool exact_path = exact && (path == Path::kF32 || (path == Path::kInt8 && q.pre_quant_scale.empty()));
      double err2 = 0, ref2 = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        if (exact_path) ASSERT_EQ(double(ref[i]), want[i]) << what << " " << path_name(path) << " m=" << m << " i=" << i;
        else if (path == Path::kF32) ASSERT_NEAR(ref[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << what;
        err2 += (ref[i] - want[i]) * (ref[i] - want[i]);
        ref2 += want[i] * want[i];
      }
      if (!exact) EXPECT_LT(std::sqrt(err2 / ref2), 0.02) << what << " " << path_name(path) << " m=" << m;
      for (const auto& t : runnable_targets()) {
        TargetGuard guard(t.bits);
        std::fill(got.begin(), got.end(), -1.f);
        gemm(p, x.data(), DType::F32, m, got.data(), DType::F32, {path, nullptr});
        const bool bitwise = exact_path || ((path == Path::kInt8 || path == Path::kInt16) && has_fma(t.name));
        for (size_t i = 0; i < ref.size(); ++i) {
          if (bitwise) ASSERT_EQ(ref[i], got[i]) << t.name << " " << what << " " << path_name(path) << " m=" << m << " i=" << i;
          // int16 without FMA: the zero-point term o·d·Σr cancels most of s·d·Σq·r (and the activation
          // peaks make both large), so mul+add's extra roundings show more than in the f32 path.
          else ASSERT_NEAR(ref[i], got[i], (path == Path::kInt16 ? 1e-3 : 1e-4) * (1 + std::fabs(ref[i])))
              << t.name << " " << what << " " << path_name(path) << " m=" << m;
        }
      }
    }
  }
}

// kernels::dequantize (every target, 1 and 3 threads) and dequantize_ref equal QuantLinear's
// dequantize_rows_ref bit for bit, full rows and a partial row range.
void check_dequant(const QuantLinear& q, const std::string& what) {
  const PackedLinear p = repack(q);
  ASSERT_FALSE(p.source_col.empty()) << what;
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, q.n}, {std::min<int64_t>(3, q.n), q.n}, {q.n / 2, q.n / 2 + 1}}) {
      const size_t bytes = size_t((r1 - r0) * q.k) * dtype_size(dt);
      std::vector<uint8_t> want(bytes), got(bytes);
      awq::dequantize_rows_ref(q, dt, r0, r1, want.data());
      kernels::dequantize_ref(p, dt, r0, r1, got.data());
      ASSERT_EQ(want, got) << what << " ref " << dtype_name(dt) << " rows " << r0 << ".." << r1;
      for (const auto& t : runnable_targets()) {
        TargetGuard guard(t.bits);
        for (int threads : {1, 3}) {
          ThreadPool pool(threads);
          std::fill(got.begin(), got.end(), uint8_t(0xAB));
          dequantize(p, dt, r0, r1, got.data(), &pool);
          ASSERT_EQ(want, got) << t.name << " " << what << " " << dtype_name(dt) << " rows " << r0 << ".." << r1
                               << " threads=" << threads;
        }
      }
    }
  }
}

std::vector<Spec> gptq_specs() {
  std::vector<Spec> v;
  for (int64_t g : {32, 64, 128}) v.push_back({37, 3 * g + g / 2 + 3, g});  // odd N, K % 8 != 0, short last group
  v.push_back({16, 256, 64});                                              // whole groups only
  v.push_back({21, 77, 40});                                               // two groups, K % 8 != 0
  v.push_back({.n = 33, .k = 200, .group = 64, .zm = ZeroMode::kSymmetric, .bias = true});
  v.push_back({24, 160, 32, ZeroMode::kScaledFma});                        // wide params
  v.push_back({40, 256, 64, ZeroMode::kInteger, true, true, true});        // pqs + bias
  v.push_back({35, 300, 128, ZeroMode::kInteger, false, true, true});      // realistic data
  return v;
}

TEST(KernelsActOrder, GptqGemmEveryTargetMatchesReferenceAndNaive) {
  for (const Spec& s : gptq_specs()) {
    const QuantLinear q = make_gptq(s, 7);
    const PackedLinear p = repack(q);
    EXPECT_EQ(p.group, round_up8(std::min(s.group, s.k))) << describe(s);
    EXPECT_EQ(p.n_groups, q.n_groups) << describe(s);
    EXPECT_EQ(p.source_group, 0) << describe(s);
    check_gemm(q, s.exact, describe(s));
  }
}

TEST(KernelsActOrder, IrregularGroupsGemmAndDequant) {
  // Unequal group sizes, empty groups in the middle and at the end, and one column in group 0.
  struct Case { int64_t n, k, n_groups, empty_a, empty_b; };
  for (const Case& c : {Case{19, 203, 6, 2, 5}, Case{32, 64, 4, 1, 3}, Case{7, 333, 9, 0, 4}}) {
    for (bool exact : {true, false}) {
      const Spec s{.n = c.n, .k = c.k, .group = 64, .exact = exact, .bias = true, .pqs = !exact};
      QuantLinear q = make(s, irregular_g_idx(c.k, c.n_groups, c.empty_a, c.empty_b, 3), c.n_groups, 5);
      if (c.empty_a != 0 && c.empty_b != 0) q.g_idx[0] = 0;
      std::vector<int64_t> count(size_t(c.n_groups), 0);
      for (int32_t g : q.g_idx) ++count[size_t(g)];
      ASSERT_EQ(count[size_t(c.empty_a)] + count[size_t(c.empty_b)], 0);
      const PackedLinear p = repack(q);
      const std::string what = describe(s) + " groups=" + std::to_string(c.n_groups);
      EXPECT_EQ(p.group, round_up8(*std::max_element(count.begin(), count.end()))) << what;
      EXPECT_EQ(p.n_groups, c.n_groups - 2) << what;  // empty groups are dropped
      EXPECT_EQ(p.k_pad, p.n_groups * p.group) << what;
      EXPECT_EQ(p.source_col.size(), size_t(p.k_pad)) << what;
      check_gemm(q, exact, what);
      check_dequant(q, what);
    }
  }
}

TEST(KernelsActOrder, DequantizeEveryTargetMatchesQuantLinear) {
  std::vector<Spec> specs = gptq_specs();
  specs.push_back({.n = 35, .k = 300, .group = 128, .zm = ZeroMode::kScaledFma, .exact = false, .pqs = true,
                   .f32_scales = true});  // f32 scales, wide
  specs.push_back({.n = 18, .k = 150, .group = 32, .zm = ZeroMode::kSymmetric, .exact = false, .pqs = true});
  for (const Spec& s : specs) check_dequant(make_gptq(s, 9), describe(s));
}

TEST(KernelsActOrder, Bf16ActivationsAndOutputs) {
  const Spec s{.n = 45, .k = 320, .group = 64, .bias = true};
  const QuantLinear q = make_gptq(s, 4);
  const PackedLinear p = repack(q);
  for (int64_t m : {1, 6}) {
    const auto xf = make_x(q, m, true, 8, Peaks::kOverwrite);  // small integers: exact in bf16
    std::vector<uint16_t> xb;
    for (float v : xf) xb.push_back(f32_to_bf16(v));
    for (Path path : {Path::kF32, Path::kInt8}) {
      std::vector<uint16_t> want(size_t(m * s.n)), got(want.size());
      gemm_ref(p, xb.data(), DType::BF16, m, want.data(), DType::BF16, path);
      const auto dense = naive(q, xf, m);
      for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(bf16_to_f32(want[i]), bf16_to_f32(f32_to_bf16(float(dense[i]))));
      for (const auto& t : runnable_targets()) {
        TargetGuard guard(t.bits);
        gemm(p, xb.data(), DType::BF16, m, got.data(), DType::BF16, {path, nullptr});
        ASSERT_EQ(want, got) << t.name << " " << path_name(path) << " m=" << m;
      }
    }
  }
}

// The act-order layer packs exactly like the natural-order layer whose columns are the act-order
// layer's sorted by group (stable), with source_col naming that order; gemm on permuted inputs agrees.
TEST(KernelsActOrder, GptqPacksLikeTheGroupSortedNaturalLayer) {
  for (const Spec& s : {Spec{37, 227, 64}, Spec{24, 160, 32, ZeroMode::kScaledFma, true, true, true}}) {
    const QuantLinear q = make_gptq(s, 13);
    std::vector<int32_t> order(size_t(s.k));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return q.g_idx[size_t(a)] < q.g_idx[size_t(b)]; });
    QuantLinear nat = q;
    nat.g_idx.clear();
    for (int64_t r = 0; r < s.n; ++r)
      for (int64_t c = 0; c < s.k; ++c) nat.codes[size_t(r * s.k + c)] = q.codes[size_t(r * s.k + order[size_t(c)])];
    for (int64_t c = 0; c < s.k && s.pqs; ++c) nat.pre_quant_scale[size_t(c)] = q.pre_quant_scale[size_t(order[size_t(c)])];
    nat.validate();
    const PackedLinear pa = repack(q), pn = repack(nat);
    ASSERT_TRUE(pn.source_col.empty());
    ASSERT_EQ(pa.group, pn.group);
    ASSERT_EQ(pa.n_groups, pn.n_groups);
    ASSERT_EQ(pa.wide, pn.wide);
    ASSERT_EQ(pa.codes.size(), pn.codes.size());
    EXPECT_EQ(std::memcmp(pa.codes.data(), pn.codes.data(), pa.codes.size()), 0) << describe(s);
    ASSERT_EQ(pa.params.size(), pn.params.size());
    EXPECT_EQ(std::memcmp(pa.params.data(), pn.params.data(), pa.params.size()), 0) << describe(s);
    for (int64_t g = 0; g < pn.n_groups; ++g)
      for (int64_t j = 0; j < pn.group; ++j) {
        const int64_t nc = pn.source_column(g, j);
        ASSERT_EQ(pa.source_column(g, j), nc < 0 ? -1 : order[size_t(nc)]) << describe(s) << " g=" << g << " j=" << j;
      }
    EXPECT_EQ(pa.weight_bytes(), pn.weight_bytes() + size_t(pa.k_pad) * sizeof(int32_t));
    const int64_t m = 5;
    const auto x = make_x(q, m, false, 2, Peaks::kOverwrite);
    std::vector<float> xn(x.size()), ya(size_t(m * s.n)), yn(ya.size());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < s.k; ++c) xn[size_t(i * s.k + c)] = x[size_t(i * s.k + order[size_t(c)])];
    for (Path path : {Path::kF32, Path::kInt8, Path::kInt16}) {
      gemm(pa, x.data(), DType::F32, m, ya.data(), DType::F32, {path, nullptr});
      gemm(pn, xn.data(), DType::F32, m, yn.data(), DType::F32, {path, nullptr});
      EXPECT_EQ(ya, yn) << describe(s) << " " << path_name(path);
    }
  }
}

// Trivial g_idx (k / group_size, spelled out) is natural order: no source_col and the same bytes as
// with g_idx empty.
TEST(KernelsActOrder, TrivialGIdxStaysNaturalOrder) {
  for (const Spec& s : {Spec{37, 227, 64}, Spec{21, 77, 77}, Spec{16, 256, 128, ZeroMode::kScaledFma}}) {
    std::vector<int32_t> trivial(size_t(s.k));
    for (int64_t c = 0; c < s.k; ++c) trivial[size_t(c)] = int32_t(c / s.group);
    const int64_t ng = (s.k + s.group - 1) / s.group;
    const QuantLinear a = make(s, trivial, ng, 1);
    QuantLinear b = a;
    b.g_idx.clear();
    const PackedLinear pa = repack(a), pb = repack(b);
    EXPECT_TRUE(pa.source_col.empty()) << describe(s);
    EXPECT_EQ(pa.source_group, s.group);
    EXPECT_EQ(pa.group, round_up8(s.group));
    EXPECT_EQ(pa.n_groups, ng);
    ASSERT_EQ(pa.codes.size(), pb.codes.size());
    EXPECT_EQ(std::memcmp(pa.codes.data(), pb.codes.data(), pa.codes.size()), 0);
    ASSERT_EQ(pa.params.size(), pb.params.size());
    EXPECT_EQ(std::memcmp(pa.params.data(), pb.params.data(), pa.params.size()), 0);
    EXPECT_EQ(pa.weight_bytes(), pa.codes.size() + pa.params.size());
  }
}

TEST(KernelsActOrder, RejectsWhatItCannotPack) {
  const Spec s{16, 64, 32};
  auto expect_error = [](const QuantLinear& q, const std::string& why) {
    try {
      (void)repack(q);
      ADD_FAILURE() << "repack accepted: " << why;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(q.name), std::string::npos) << e.what();
    }
  };
  QuantLinear q = make_gptq(s, 1);
  q.g_idx[17] = 2;  // n_groups = 2 (QuantLinear::validate rejects it too)
  expect_error(q, "g_idx out of range");
  q = make_gptq(s, 1);
  q.g_idx[3] = -1;
  expect_error(q, "negative g_idx");
  q = make_gptq(s, 1);
  q.g_idx.pop_back();
  expect_error(q, "short g_idx");
  q = make_gptq(s, 1);
  q.zeros.resize(3);
  expect_error(q, "zeros too short");
  q = make_gptq(s, 1);
  q.bits = 3;
  expect_error(q, "3-bit");
}

// A real AutoGPTQ desc_act checkpoint: every module repacks in act-order and the kernels'
// dequantization reproduces the reader's QuantLinear bit for bit.
TEST(KernelsActOrder, GoldenGptqActOrderCheckpoint) {
  const std::filesystem::path model = std::filesystem::path(test::data_path("golden")) / "gptq-actorder-g64" / "model";
  ASSERT_TRUE(std::filesystem::exists(model)) << model;
  ModelDir md(model.string());
  auto reader = open_format(md);
  ASSERT_FALSE(reader->modules().empty());
  for (const auto& m : reader->modules()) {
    const QuantLinear q = reader->read(m);
    const PackedLinear p = repack(q);
    ASSERT_FALSE(p.source_col.empty()) << m << ": expected a non-trivial g_idx";
    EXPECT_EQ(p.n_groups, q.n_groups) << m;
    for (DType dt : {DType::F16, DType::BF16, DType::F32}) {
      std::vector<uint8_t> want(size_t(q.n * q.k) * dtype_size(dt)), got(want.size());
      awq::dequantize_ref(q, dt, want.data());
      kernels::dequantize_ref(p, dt, 0, q.n, got.data());
      ASSERT_EQ(want, got) << m << " ref " << dtype_name(dt);
      for (const auto& t : runnable_targets()) {
        TargetGuard guard(t.bits);
        std::fill(got.begin(), got.end(), uint8_t(0));
        dequantize(p, dt, 0, q.n, got.data());
        ASSERT_EQ(want, got) << m << " " << t.name << " " << dtype_name(dt);
      }
    }
    // And the GEMM on the real layer: f32 path within f32 rounding of the dense product.
    const int64_t rows = 3;
    const auto x = make_x(q, rows, false, 6, Peaks::kOverwrite);
    const auto want = naive(q, x, rows);
    std::vector<float> y(size_t(rows * q.n));
    gemm(p, x.data(), DType::F32, rows, y.data(), DType::F32);
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], want[i], 1e-5 * (1 + scale)) << m << " i=" << i;
  }
}

}  // namespace
}  // namespace awq::kernels
