// AWQ scale folds: the norm test (exact ratio of the two norms) and the row fit (least squares per
// producer row). compare.cc finds the pairs and streams the rows; this file only does arithmetic.
#include "eval/fold_undo.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace awq {
namespace {

// g rounded to dtype t (F16, BF16 or F32) and back: what QUANT would store for an unscaled norm.
float round_to(float g, DType t) {
  if (t == DType::F16) return f16_to_f32(f32_to_f16(g));
  if (t == DType::BF16) return bf16_to_f32(f32_to_bf16(g));
  return g;
}

// Records s for one channel, or 1 and a guard when s is not a usable scale.
void note_scale(FoldScales& f, double s, bool& first) {
  if (!(std::isfinite(s) && s > 0)) {
    f.s.push_back(1.0);
    f.guarded++;
    return;
  }
  f.s.push_back(s);
  f.s_min = first ? s : std::min(f.s_min, s);
  f.s_max = first ? s : std::max(f.s_max, s);
  first = false;
}

}  // namespace

FoldScales norm_fold(const float* g_ref, DType ref_dtype, const float* g_quant, DType quant_dtype, int64_t n) {
  FoldScales f;
  f.from_norm = true;
  f.channels = n;
  for (int64_t c = 0; c < n && !f.folded; ++c)  // NaN differs too (then guarded)
    f.folded = !(g_quant[c] == round_to(g_ref[c], quant_dtype) || g_ref[c] == round_to(g_quant[c], ref_dtype));
  if (!f.folded) return f;
  bool first = true;
  for (int64_t c = 0; c < n; ++c) note_scale(f, double(g_ref[c]) / double(g_quant[c]), first);
  return f;
}

RowDots row_dots(const float* ref, const float* quant, int64_t k) {
  RowDots r;
  for (int64_t c = 0; c < k; ++c) {
    const double q = quant[c], d = ref[c];
    r.qq += q * q;
    r.qd += q * d;
    r.dd += d * d;
  }
  return r;
}

FoldScales row_fold_from_dots(const std::vector<RowDots>& rows, int64_t k) {
  FoldScales f;
  f.from_norm = false;
  f.channels = int64_t(rows.size());
  double err_raw = 0, err_fit = 0, ref = 0;
  bool first = true;
  for (const RowDots& r : rows) {
    note_scale(f, r.dd > 0 ? r.dd / r.qd : 0.0, first);
    const double s = f.s.back();
    err_raw += r.qq - 2 * r.qd + r.dd;
    err_fit += s * s * r.qq - 2 * s * r.qd + r.dd;
    ref += r.dd;
  }
  err_raw = std::max(err_raw, 0.0);  // rounding of the expanded square
  err_fit = std::max(err_fit, 0.0);
  f.producer_rel_mse_raw = ref > 0 ? err_raw / ref : 0;
  f.producer_rel_mse_fit = ref > 0 ? err_fit / ref : 0;
  // Fitting one free scale per row to pure noise lowers a row's error by its noise variance
  // (residual / (k - 1)) on average: z2 is the improvement in those units, about 1 without a fold.
  f.departure_z2 = err_fit > 0 && k > 1 ? (err_raw - err_fit) / (err_fit / double(k - 1))
                                         : (err_raw > err_fit ? std::numeric_limits<double>::infinity() : 0.0);
  f.folded = f.departure_z2 > kRowFoldZ2 && err_raw - err_fit >= kRowFoldShare * err_raw;
  if (!f.folded) {
    f.s.clear();
    f.guarded = 0;
    f.s_min = f.s_max = 1;
  }
  return f;
}

FoldScales row_fold(const float* ref, const float* quant, int64_t n, int64_t k) {
  std::vector<RowDots> rows;
  for (int64_t r = 0; r < n; ++r) rows.push_back(row_dots(ref + r * k, quant + r * k, k));
  return row_fold_from_dots(rows, k);
}

}  // namespace awq
