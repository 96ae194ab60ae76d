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
#pragma once
#include <cstdint>
#include <vector>

#include "quant/group_quant.h"

namespace awq {
class ThreadPool;
}

namespace awq::quant_detail {

// U (k×k, row-major, f64, zero below the diagonal) with (H' + λI)⁻¹ = UᵀU, where H' is H with
// every dead column (H_jj = 0: no calibration signal) cut loose (its row and column zeroed, H_jj
// set to 1: it is rounded to nearest and spreads no error), and λ = damp · mean(diag H') (GPTQ's
// percdamp). If the Cholesky factorisation meets a pivot not above 1e-9 of its diagonal entry
// (numerically singular: e.g. fewer tokens than columns and no damping), λ is multiplied by 10
// (from 0: set to 1e-6 of the mean diagonal) and it is retried, up to 6 times. `u` is empty when H holds a NaN/Inf or every retry failed: the
// caller then rounds to nearest.
struct GptqFactor {
  int64_t k = 0;
  std::vector<double> u;
  double lambda = 0;  // the damping added to the diagonal
  int64_t dead = 0;   // dead columns
  int retries = 0;    // times λ was raised
};
GptqFactor gptq_factor(const float* H, int64_t k, double damp, ThreadPool& pool);

// One linear w [n][k] rounded with error compensation through f (f.k == k; f.u empty: plain
// round to nearest, the same codes as quantize_group). Group g of row r uses clip ratios
// clip_lo/hi[r·(k/group) + g] (null: 1). Outputs codes [n][k], scales and zeros [n][k/group].
// Each row is computed alone in f64 in a fixed order: the result does not depend on the pool's
// thread count. Finite inputs give finite outputs.
void gptq_quantize(const float* w, int64_t n, int64_t k, const GptqFactor& f, int64_t group, const QParams& q, const float* clip_lo,
                   const float* clip_hi, uint8_t* codes, float* scales, int32_t* zeros, ThreadPool& pool);

}  // namespace awq::quant_detail
