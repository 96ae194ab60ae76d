// Packing a canonical QuantLinear into each target layout's stored tensors (internal). The
// inverse of the readers in src/formats: reader(pack(q)) == q for every q the layout represents.
#pragma once
#include <string>
#include <vector>

#include "awq/quant_linear.h"
#include "awq/safetensors.h"

namespace awq::convert_detail {

enum class Target { kGemm, kGemv, kGemvFast, kGptq, kCompressedTensors, kModelOpt };

struct TargetSpec {
  Target target;
  bool gptq_v2 = false;  // gptq only
  bool symmetric = false;  // compressed-tensors only: no zero-point tensor, every zero must be 2^(bits-1)
};

// Shape facts known before reading a module.
struct ModuleShape {
  std::string name;
  int64_t n = 0, k = 0, group_size = 0, n_groups = 0;  // group_size == k for per-channel
  int bits = 4;                                        // bits of the codes the target stores
  DType scale_dtype = DType::F16;
  bool has_g_idx = false;  // the source's g_idx is act-order (not k / group_size)
  bool has_pqs = false;    // the source stores a pre_quant_scale (ModelOpt)
  DType pqs_dtype = DType::F16;
};

// Why the layout cannot hold codes of `bits` bits ("" when it can): GPTQ 2/4/8, compressed-tensors
// 4/8, the AutoAWQ layouts and ModelOpt 4 only.
std::string bits_refusal(const TargetSpec& t, int bits);
// Why the layout cannot hold modules of this shape ("" when it can).
std::string shape_refusal(const TargetSpec& t, const ModuleShape& s);
// The stored tensors, in the order pack() produces their bytes.
std::vector<TensorSpec> module_specs(const TargetSpec& t, const ModuleShape& s);

// Integer-zero form of a module: kSymmetric -> zeros 2^(bits-1); kScaledFma -> z = −sz/s when
// that is an integer that reproduces sz exactly (else throws awq::Error naming the module). Keeps
// scaled_zeros as stored, for GEMV_fast targets.
QuantLinear to_integer_zeros(const QuantLinear& q);

// Packs one integer-zero module into module_specs()'s tensors (bytes each). Throws awq::Error
// naming the module when a value cannot be represented (zero point 0 in GPTQ v1, act-order into a
// layout without g_idx, an asymmetric zero into a symmetric target, codes/zeros out of range).
std::vector<std::string> pack_module(const TargetSpec& t, const QuantLinear& q, const ModuleShape& s);

// Dequantizes rows with both arithmetics and returns max |a − b| in the scale dtype: the integer
// form s·(q − z) against GEMV_fast's q·s + sz (sz as given, or RNE(−s·z) when absent).
double max_fma_difference(const QuantLinear& integer_form);

}  // namespace awq::convert_detail

namespace awq::convert_detail {

// --requantize: round-to-nearest re-quantization of a module's own dense weight (its
// dequantization, pre_quant_scale folded in), group by group as its g_idx / group size say.
enum class RequantMode {
  kAsymmetric,     // AutoAWQ min-max (§1.4): s = (max−min)/15 (floor 1e-5), z = −round(min/s)
  kNoZeroZero,     // the same, but a zero point 0 becomes 1 with s = max/14 (GPTQ v1 cannot store 0)
  kSymmetric,      // z = 2^(bits−1), s = max|w| / 7.5 (compressed-tensors / GPTQ symmetric)
  kSymmetric7,     // z = 2^(bits−1), s = max|w| / 7 in f32 (ModelOpt W4A16_AWQ)
};
struct RequantError {
  double max_abs = 0;  // largest |w_new − w_old|
  double rel_rms = 0;  // ||w_new − w_old|| / ||w_old||
};
// keep_g_idx: keep act-order grouping (targets with g_idx); else groups are k / group_size.
// Scales keep the source dtype (the planned tensors' dtype). Returns an integer-zero module.
// bits: the codes' width in the target (the source's, or 4 for a 4-bit-only layout).
// Groups whose source weights hold NaN/Inf (allowed by the caller) get a NaN scale and NaN error
// figures: nothing is invented and no error is reported as 0.
QuantLinear requantize_rtn(const QuantLinear& src, RequantMode mode, bool keep_g_idx, int bits, RequantError* err);

}  // namespace awq::convert_detail
