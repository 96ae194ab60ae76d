// Shared by the kernel tests (kernels_test.cc, act_order_test.cc, bf16_path_test.cc): random
// QuantLinear layers and activations, the naive dense product, gemm run beside its reference, error
// statistics, and the SIMD targets to run on.
//
// The builders are deterministic in their seed. What a test checks exactly (bit for bit) depends on
// the data, so where the files drew differently the difference is a parameter here, not unified.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "awq/dtype.h"
#include "awq/kernels.h"
#include "awq/quant_linear.h"

namespace awq::test {

// One layer shape and parameter style.
struct LayerSpec {
  int64_t n, k, group;  // group == k: per-channel; with a g_idx, the layer's nominal group size
  ZeroMode zm = ZeroMode::kInteger;
  bool exact = true;  // small-integer codes, power-of-two scales (and, for make_x, small-integer activations)
  bool bias = false, pqs = false;
  bool f32_scales = false;
};

std::string describe(const LayerSpec& s);  // "n=.. k=.. g=.. zm=.. exact=.. bias=.. pqs=.. f32s=.."

// What make_layer draws beyond the spec. The defaults are kernels_test.cc's (and bf16_path_test.cc's,
// less the name); act_order_test.cc sets its own.
struct LayerDraws {
  std::string name_prefix = "test.";  // the layer is named name_prefix + describe(spec)
  uint32_t zero_levels = 16;          // kInteger zeros are rng() % zero_levels (17: GPTQ v1's stored + 1)
  bool scale_draw_always = false;     // draw a realistic scale for every scale, discarded when exact
  // Non-empty: a GPTQ act-order layer (format "gptq") with this g_idx over n_groups groups.
  std::vector<int32_t> g_idx;
  int64_t n_groups = 0;
};

// Codes uniform in [0, 16); scales 2^-[0, 4] (exact) or uniform in [1e-3, 3e-2) held at the scale
// dtype; kScaledFma zeros −s·[0, 16) in f16; pqs 2^[-1, 1] or uniform in [0.5, 2); bias integers in
// [-4, 4] or uniform in [-1, 1). Validated.
QuantLinear make_layer(const LayerSpec& s, uint32_t seed, const LayerDraws& d = {});

// Where make_x puts one ±127 in every group of every row of exact activations, so that the int8 path
// quantizes each group with d = 1 (no error) and every result stays exactly representable.
enum class Peaks {
  kNone,       // no ±127: integers in [-8, 8] only
  kInPlace,    // the ±127 takes the place of a draw; its sign alternates with the column
  kOverwrite,  // every element is drawn, then the ±127 written over it; its sign alternates with the group
};

// Activations x[m][q.k]: exact: integers in [-8, 8] with `peaks` (in each g_idx group, at position
// (row·7 + group) mod size of the group's columns in ascending order); otherwise N(0, 1).
std::vector<float> make_x(const QuantLinear& q, int64_t m, bool exact, uint32_t seed, Peaks peaks);

// Naive double-precision y[m][q.n] = x·Wᵀ + b, W from QuantLinear's own dequantization (which
// includes pre_quant_scale).
std::vector<double> naive(const QuantLinear& q, const std::vector<float>& x, int64_t m);

// gemm_ref and gemm on the same activations xf[m][k], handed to both as xt (F32 as they are, BF16
// rounded from them), outputs in yt: want is the reference's, got gemm's (its buffer pre-filled with
// 0xAB, so that unwritten outputs show).
struct GemmOutputs {
  std::vector<uint8_t> want, got;
};
GemmOutputs gemm_and_reference(const kernels::PackedLinear& p, const std::vector<float>& xf, DType xt, int64_t m,
                               DType yt, kernels::Path path, ThreadPool* pool = nullptr);

// How far y is from the reference y_ref (same size): relative RMS error ‖y − y_ref‖ / ‖y_ref‖, largest
// absolute error, RMS of y_ref.
struct ErrorStats {
  double rel_rms, max_abs, rms_ref;
};
ErrorStats error_stats(const std::vector<float>& y, const std::vector<float>& y_ref);

// The compiled SIMD targets this CPU can run.
std::vector<kernels::TargetInfo> runnable_targets();

// Whether the target has FMA (the int8 path then equals the scalar reference bit for bit).
bool has_fma(const std::string& target);

// Forces one target (kernels::force_target) for its lifetime.
struct TargetGuard {
  explicit TargetGuard(int64_t bits) { kernels::force_target(bits); }
  ~TargetGuard() { kernels::force_target(0); }
  TargetGuard(const TargetGuard&) = delete;
  TargetGuard& operator=(const TargetGuard&) = delete;
};

}  // namespace awq::test
