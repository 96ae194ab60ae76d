// Error-compensating rounding of one linear (GPTQ, Frantar et al. 2022), internal to quant/.
// docs/quantize.md "Rounding" describes it and how it is used after the AWQ scales.
//
// The loss is the linear's output error on the calibration inputs, ‖(Q − W)·Xᵀ‖² = Σ_rows
// ΔwᵀHΔw with H = XᵀX (the Gram matrix quantize accumulates per linear input). Columns are
// rounded in their natural order (no act-order: the AutoAWQ GEMM layout has no g_idx); after
// column j is rounded, its error e = (w_j − q_j)/U_jj is spread over the columns not yet rounded,
// w_{j+1:} −= e·U_{j, j+1:}, where U is the upper-triangular Cholesky factor of (H + λI)⁻¹
// (H⁻¹ = UᵀU). This is the optimal (OBS) update of the remaining columns for that one column's
// error. Groups are static: a group's scale and zero are fitted (quantize_group, clip ratios
// applied) when the sweep reaches its first column, from the weights updated so far; every code
// uses that group's (scale, zero), so the result is an ordinary scale/zero/code checkpoint.
//
// Precision (docs/quantize.md "Rounding"): the factor is computed in f32 (as in GPTQ's own code,
// 1 % damping) and checked: its inverse residual must be below kF32Residual (measured: output error
// within 1.1 % of the f64 factor's there) and no pivot may have lost four digits. Otherwise it is
// computed in f64 — a damped Gram matrix's condition number can reach ~100·k (one dominant
// direction: outlier channels), which f32's 6e-8 turns into percent-level errors, and the damping
// retries at 1e-6 of the mean diagonal are meaningless in f32. U is kept in f32 either way (485 MB
// instead of 969 MB at k = 11008). The sweep runs in f32: the weights are f32 to begin with, and a
// code can only change where an updated weight lies within f32 rounding of a rounding boundary.
// Every product term, in the factor and in the sweep, is one fused multiply-add (FMA).
#pragma once
#include <cstdint>
#include <vector>

#include "quant/group_quant.h"

namespace awq {
class ThreadPool;
}

namespace awq::quant_detail {

// U (k×k, row-major, stored in f32, zero below the diagonal) with (H' + λI)⁻¹ = UᵀU, where H' is H
// with every dead column (H_jj = 0: no calibration signal) cut loose (its row and column zeroed, H_jj
// set to 1: it is rounded to nearest and spreads no error), and λ = damp · mean(diag H') (GPTQ's
// percdamp). If the f64 factorisation meets a pivot not above 1e-9 of its diagonal entry
// (numerically singular: e.g. fewer tokens than columns and no damping), λ is multiplied by 10
// (from 0: set to 1e-6 of the mean diagonal) and it is retried, up to 6 times. `u` is empty when H holds a NaN/Inf or every retry failed: the
// caller then rounds to nearest.
//
// Precision: with kAuto and λ > 0 the factorisation and the inverse are first done in f32, and kept
// when every pivot is above 1e-4 of its diagonal entry and the relative residual
// ‖(H' + λI)·UᵀU·v − v‖/‖v‖ (one fixed ±1 vector v, f64) is below kF32Residual; otherwise (an
// ill-conditioned H', or λ = 0) in f64 as above, U then rounded to f32. kF64 skips the f32 try;
// kF32 (tests and measurements) keeps the f32 result whatever its residual (empty u if a pivot fails).
enum class FactorPrecision { kAuto, kF64, kF32 };
inline constexpr double kF32Residual = 1e-2;
struct GptqFactor {
  int64_t k = 0;
  std::vector<float> u;
  double lambda = 0;    // the damping added to the diagonal
  int64_t dead = 0;     // dead columns
  int retries = 0;      // times λ was raised
  bool f64 = false;     // computed in f64 (the f32 try was skipped or rejected)
  double residual = 0;  // the relative residual above, of the U returned
};
GptqFactor gptq_factor(const float* H, int64_t k, double damp, ThreadPool& pool, FactorPrecision precision = FactorPrecision::kAuto);
// The same contract and, entry for entry, the same arithmetic in the same order (so the same
// result), computed straightforwardly: one pivot column at a time, each inverse column alone.
// gptq_factor is blocked (left-looking Cholesky and a row-block triangular inverse in kBlock
// panels over the pool, the products on SIMD FMA kernels); this one is kept as its test reference.
GptqFactor gptq_factor_ref(const float* H, int64_t k, double damp, ThreadPool& pool, FactorPrecision precision = FactorPrecision::kAuto);

// One linear w [n][k] rounded with error compensation through f (f.k == k; f.u empty: plain
// round to nearest, the same codes as quantize_group). Group g of row r uses clip ratios
// clip_lo/hi[r·(k/group) + g] (null: 1). Outputs codes [n][k], scales and zeros [n][k/group].
// Each row is computed alone in f32 (fused multiply-adds) in a fixed order: the result does not
// depend on the pool's thread count. Finite inputs give finite outputs.
void gptq_quantize(const float* w, int64_t n, int64_t k, const GptqFactor& f, int64_t group, const QParams& q, const float* clip_lo,
                   const float* clip_hi, uint8_t* codes, float* scales, int32_t* zeros, ThreadPool& pool);
// The same contract and the same result, straightforward: each column's error is spread over all
// later columns at once. gptq_quantize uses GPTQ's lazy batch update instead (columns in blocks of
// 128, or of the group when it does not divide 128; inside a block the update touches only the
// block; after it, one product W[:, b1:] −= E·U[b0:b1, b1:] over a 128-row tile on the SIMD FMA
// kernel), which subtracts the same terms from each weight in the same order, each one fused
// multiply-add as here. This one is kept as its test reference.
void gptq_quantize_ref(const float* w, int64_t n, int64_t k, const GptqFactor& f, int64_t group, const QParams& q, const float* clip_lo,
                       const float* clip_hi, uint8_t* codes, float* scales, int32_t* zeros, ThreadPool& pool);

}  // namespace awq::quant_detail
