// Path::kInt16 on AMX-INT8 tiles (amx_kernels.cc, behind amx_available()) against its scalar
// reference gemm_ref(..., Path::kInt16): bit for bit on every case (integer tile sums, then the
// reference's f32 operations), m from 16 up (where gemm takes the AMX kernel) with row counts that
// leave a partial 16-row block. Where the CPU or OS has no AMX the cases are skipped with the reason;
// force_amx_unavailable keeps the int16 VNNI/maddubs kernels tested on AMX machines too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "awq/dtype.h"
#include "awq/kernels.h"
#include "awq/quant_linear.h"
#include "awq/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/internal.h"

namespace awq::kernels {
namespace {

using namespace awq::test;  // kernel_test_util.h
using Spec = LayerSpec;

const std::vector<int64_t> kMs = {1, 15, 16, 17, 31, 33, 48, 70};

std::vector<Spec> cases() {
  std::vector<Spec> v;
  for (int64_t g : {32, 64, 128}) v.push_back({37, 3 * g + g / 2, g});  // partial last group, odd N
  v.push_back({16, 128, 128});                                         // one group, one tile
  v.push_back({21, 77, 77});                                           // per-channel, G = 80: 2 steps of 40
  v.push_back({18, 1000, 1000});                                       // per-channel, G = 1000: 25 steps of 40
  v.push_back({48, 256, 128, ZeroMode::kSymmetric});
  v.push_back({33, 192, 64, ZeroMode::kScaledFma});                    // wide params
  v.push_back({40, 256, 64, ZeroMode::kInteger, true, true, false});   // bias
  v.push_back({24, 160, 32, ZeroMode::kInteger, false, true, true});   // bias + pqs, realistic data
  v.push_back({35, 384, 128, ZeroMode::kInteger, false, true, false, true});  // f32 scales -> wide
  v.push_back({70, 96 * 5, 96, ZeroMode::kInteger, false});            // G = 96: 2 steps of 48
  return v;
}

// Counts amx_int16_tiles calls, so a test knows which kernel ran (both give the same bits).
uint64_t amx_calls_now() { return amx_tile_calls().load(); }

struct AmxOff {
  AmxOff() { force_amx_unavailable(true); }
  ~AmxOff() { force_amx_unavailable(false); }
};

// gemm (int16) vs gemm_ref (int16), bit for bit, for every m; expects the AMX kernel to have run
// for m >= kAmxMinRows exactly when `amx`.
void expect_matches_reference(const QuantLinear& q, DType xt, DType yt, bool amx, ThreadPool* pool = nullptr,
                              const std::vector<int64_t>& ms = kMs) {
  const PackedLinear p = repack(q);
  for (int64_t m : ms) {
    const auto xf = make_x(q, m, false, uint32_t(100 + m), Peaks::kNone);  // N(0, 1)
    const uint64_t before = amx_calls_now();
    const auto [want, got] = gemm_and_reference(p, xf, xt, m, yt, Path::kInt16, pool);
    const bool ran = amx_calls_now() != before;
    EXPECT_EQ(ran, amx && m >= kAmxMinRows) << "m=" << m << " " << q.name;
    for (size_t i = 0; i < size_t(m * q.n); ++i)
      ASSERT_EQ(load_float(want.data(), yt, i), load_float(got.data(), yt, i))
          << "m=" << m << " i=" << i << " x " << dtype_name(xt) << " y " << dtype_name(yt) << " " << q.name;
    ASSERT_EQ(want, got) << "m=" << m << " (bit patterns) " << q.name;
  }
}

bool amx_here() {
  std::string why;
  if (amx_available(&why)) return true;
  std::printf("[kernels] int16 AMX-INT8 kernel: NOT runnable here (%s), skipped\n", why.c_str());
  return false;
}

TEST(AmxPath, AvailabilityLoggedAndForceable) {
  std::string why;
  const bool real = amx_available(&why);
  if (real) std::printf("[kernels] int16 AMX-INT8 kernel: runnable, tested\n");
  else std::printf("[kernels] int16 AMX-INT8 kernel: NOT runnable here (%s)\n", why.c_str());
  {
    AmxOff off;
    std::string w;
    EXPECT_FALSE(amx_available(&w));
    EXPECT_NE(w.find("forced off"), std::string::npos) << w;
  }
  EXPECT_EQ(amx_available(), real);
  __builtin_cpu_init();
  if (real) {  // our CPUID check agrees with the compiler's where both know the features
    EXPECT_TRUE(__builtin_cpu_supports("avx512f"));
    EXPECT_TRUE(__builtin_cpu_supports("avx512bw"));
  }
}

TEST(AmxPath, GemmMatchesReferenceEveryCase) {
  if (!amx_here()) GTEST_SKIP() << "no AMX-INT8 here";
  for (const Spec& s : cases()) expect_matches_reference(make_layer(s, 21, {.name_prefix = "amx."}), DType::F32, DType::F32, true);
}

TEST(AmxPath, ExactDataWithPeaks) {
  // Small-integer activations with a ±127 peak per group (as kernels_test.cc draws them).
  if (!amx_here()) GTEST_SKIP() << "no AMX-INT8 here";
  const Spec s{37, 3 * 128 + 64, 128};
  const QuantLinear q = make_layer(s, 5);
  const PackedLinear p = repack(q);
  for (int64_t m : {16, 17, 33}) {
    const auto xf = make_x(q, m, true, uint32_t(7 + m), Peaks::kInPlace);
    const auto [want, got] = gemm_and_reference(p, xf, DType::F32, m, DType::F32, Path::kInt16);
    ASSERT_EQ(want, got) << "m=" << m;
  }
}

TEST(AmxPath, Bf16ActivationsAndOutputs) {
  if (!amx_here()) GTEST_SKIP() << "no AMX-INT8 here";
  const QuantLinear q = make_layer({45, 320, 64, ZeroMode::kInteger, false, true, true}, 3);
  expect_matches_reference(q, DType::BF16, DType::F32, true);
  expect_matches_reference(q, DType::F32, DType::BF16, true);
}

TEST(AmxPath, ActOrderLayers) {
  if (!amx_here()) GTEST_SKIP() << "no AMX-INT8 here";
  for (const Spec& s : {Spec{37, 3 * 128 + 67, 128}, Spec{40, 256, 64, ZeroMode::kInteger, false, true, true},
                        Spec{24, 160, 32, ZeroMode::kScaledFma}}) {
    std::vector<int32_t> perm(size_t(s.k));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(9));
    std::vector<int32_t> g_idx(size_t(s.k));
    for (int64_t i = 0; i < s.k; ++i) g_idx[size_t(perm[size_t(i)])] = int32_t(i / s.group);
    const QuantLinear q = make_layer(
        s, 11, {.name_prefix = "amx_act_order.", .zero_levels = 17, .g_idx = g_idx, .n_groups = (s.k + s.group - 1) / s.group});
    ASSERT_FALSE(repack(q).source_col.empty());
    expect_matches_reference(q, DType::F32, DType::F32, true, nullptr, {16, 17, 33});
  }
}

TEST(AmxPath, LargerShapeThreadedMatchesReference) {
  // Many tiles (an odd count: the one-tile kernel after the pairs), several tasks, K blocks.
  if (!amx_here()) GTEST_SKIP() << "no AMX-INT8 here";
  const QuantLinear q = make_layer({300, 2048 + 128, 128, ZeroMode::kInteger, false, true, false}, 8);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    expect_matches_reference(q, DType::F32, DType::F32, true, &pool, {16, 21, 100, 257});
  }
}

TEST(AmxPath, ForcedOffRunsTheVnniKernelsBitForBit) {
  // The int16 VNNI/maddubs micro-kernels at the row counts AMX would take (kernels_test.cc checks
  // them on every target; here on the best one, with AMX forced off where it exists).
  if (!has_fma(active_target())) GTEST_SKIP() << "the int16 kernels equal the reference bit for bit on FMA targets only";
  AmxOff off;
  std::string why;
  EXPECT_FALSE(amx_available(&why));
  for (const Spec& s : cases()) {
    const QuantLinear q = make_layer(s, 21, {.name_prefix = "vnni."});
    expect_matches_reference(q, DType::F32, DType::F32, false, nullptr, {16, 17, 33});
  }
  ThreadPool pool(3);
  expect_matches_reference(make_layer({300, 2048 + 128, 128, ZeroMode::kInteger, false, true, false}, 8), DType::F32,
                           DType::F32, false, &pool, {16, 100});
}

}  // namespace
}  // namespace awq::kernels
