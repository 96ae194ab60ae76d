// Value scans shared by `awq check` (which turns them into findings) and every writer (dequantize,
// convert: which refuse on them). One place decides what is non-finite, how large a module's
// dequantized weights get, and which float dtype can hold them, so the check and the refusals can
// never disagree.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "awq/dtype.h"
#include "awq/quant_linear.h"
#include "awq/safetensors.h"

namespace awq {

// NaN/Inf in a flat float array viewed as rows of `cols` entries.
struct NonfiniteScan {
  size_t nan = 0, inf = 0, total = 0;
  size_t rows = 0;               // distinct rows holding one (cols > 0; else 1 when any)
  size_t first = SIZE_MAX;       // flat index of the first NaN/Inf
  float first_value = 0;
  int64_t cols = 0;              // row length; 0 = a 1-D array (positions are "index i")
  std::string col_word = "column";
  bool any() const { return nan + inf > 0; }
  // "row 3, group 1" / "index 17" of the first NaN/Inf.
  std::string first_position() const;
  // "2 NaN and 0 Inf of 4096 scales; first at row 3, group 1 (nan)".
  std::string summary(const std::string& what) const;
};

// A dense tensor (F16, BF16, F32; other dtypes give an empty scan). Rows are the last dimension.
NonfiniteScan scan_nonfinite(const TensorView& t);
// A [rows][cols] float matrix (cols = 0: a 1-D array).
NonfiniteScan scan_nonfinite(const std::vector<float>& v, int64_t cols, const std::string& col_word);

// The float arrays of a quantized module that can hold NaN/Inf: "scales" and "scaled zeros"
// ([n][groups]), "pre-quant scales" ([k]); the bias is a tensor of its own, scanned as one.
struct ModuleNonfinite {
  std::string role;
  NonfiniteScan scan;
};
std::vector<ModuleNonfinite> scan_nonfinite(const QuantLinear& q);

// Largest finite |w| of the module's dequantization, computed as dequantize_rows_ref computes it
// (f32 products, before the output rounding), and the first (row, group) where it occurs.
struct MagnitudeScan {
  double max_abs = 0;
  int64_t row = -1, group = -1;
};
MagnitudeScan max_abs_dequantized(const QuantLinear& q);

// True when rows written in `t` (F16, BF16, F32; `count` values) hold a NaN or Inf: a cheap bit
// test for writers that check their own output.
bool any_nonfinite(const uint8_t* data, DType t, size_t count);

// True when a finite value of magnitude `max_abs` stays finite once rounded (RNE) to `t`.
bool dtype_holds(double max_abs, DType t);
// The narrowest of F16, BF16, F32 that holds `max_abs` ("bf16 or f32" in messages).
DType narrowest_float_holding(double max_abs);
// "bf16 or f32" / "f32": the output dtypes that would hold `max_abs`, for refusals.
std::string dtypes_holding(double max_abs);

}  // namespace awq
