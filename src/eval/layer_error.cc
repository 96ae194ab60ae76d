// Error figures of a dequantized weight against its reference, accumulated over row blocks.
#include <algorithm>
#include <cmath>
#include <limits>

#include "awq/compare.h"
#include "eval/error_accumulator.h"

namespace awq {

ErrorAccumulator::ErrorAccumulator(int64_t k, int64_t group_size, const std::vector<int32_t>* g_idx)
    : k_(k), group_size_(group_size > 0 ? group_size : k), g_idx_(g_idx) {
  n_groups_ = 0;
  if (g_idx_ && !g_idx_->empty()) {
    for (int32_t g : *g_idx_) n_groups_ = std::max<int64_t>(n_groups_, int64_t(g) + 1);
  } else {
    n_groups_ = (k_ + group_size_ - 1) / group_size_;
  }
  group_err_.resize(size_t(n_groups_));
  group_ref_.resize(size_t(n_groups_));
}

void ErrorAccumulator::note_nonfinite(int64_t row, int64_t col, float ref, float quant) {
  if (nonfinite_ && (nf_row_ < row || (nf_row_ == row && nf_col_ <= col))) return;
  nonfinite_ = true;
  nf_row_ = row;
  nf_col_ = col;
  nf_ref_ = ref;
  nf_quant_ = quant;
}

void ErrorAccumulator::add_rows(const float* ref, const float* quant, int64_t row0, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(group_err_.begin(), group_err_.end(), 0.0);
    std::fill(group_ref_.begin(), group_ref_.end(), 0.0);
    const float* w = ref + r * k_;
    const float* q = quant + r * k_;
    for (int64_t c = 0; c < k_; ++c) {
      const double a = w[c], b = q[c], d = b - a;
      dot_ += a * b;
      ref2_ += a * a;
      quant2_ += b * b;
      err2_ += d * d;
      max_abs_ = std::max(max_abs_, std::fabs(d));
      if (!std::isfinite(w[c]) || !std::isfinite(q[c])) note_nonfinite(row0 + r, c, w[c], q[c]);
      const int64_t g = (g_idx_ && !g_idx_->empty()) ? (*g_idx_)[size_t(c)] : c / group_size_;
      group_err_[size_t(g)] += d * d;
      group_ref_[size_t(g)] += a * a;
    }
    for (int64_t g = 0; g < n_groups_; ++g) {
      if (!have_worst_ || group_err_[size_t(g)] > worst_err_) {
        have_worst_ = true;
        worst_err_ = group_err_[size_t(g)];
        worst_ref_ = group_ref_[size_t(g)];
        worst_row_ = row0 + r;
        worst_group_ = g;
      }
    }
  }
}

void ErrorAccumulator::merge(const ErrorAccumulator& o) {
  dot_ += o.dot_;
  ref2_ += o.ref2_;
  quant2_ += o.quant2_;
  err2_ += o.err2_;
  max_abs_ = std::max(max_abs_, o.max_abs_);
  if (o.nonfinite_) note_nonfinite(o.nf_row_, o.nf_col_, o.nf_ref_, o.nf_quant_);
  if (o.have_worst_ && (!have_worst_ || o.worst_err_ > worst_err_)) {
    have_worst_ = true;
    worst_err_ = o.worst_err_;
    worst_ref_ = o.worst_ref_;
    worst_row_ = o.worst_row_;
    worst_group_ = o.worst_group_;
  }
}

LayerError ErrorAccumulator::result(int64_t n) const {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  LayerError e;
  e.n = n;
  e.k = k_;
  e.group_size = group_size_;
  e.ref_energy = ref2_;
  e.err_energy = err2_;
  if (nonfinite_) {  // a NaN/Inf weight: every figure says so, none pretends to be fine
    e.cosine = e.rel_mse = e.sqnr_db = e.max_abs = e.worst_group_rel_mse = nan;
    e.worst_row = worst_row_;
    e.worst_group = worst_group_;
    e.nonfinite = true;
    e.nonfinite_row = nf_row_;
    e.nonfinite_col = nf_col_;
    e.nonfinite_ref = nf_ref_;
    e.nonfinite_quant = nf_quant_;
    return e;
  }
  const double norms = std::sqrt(ref2_) * std::sqrt(quant2_);
  e.cosine = norms > 0 ? dot_ / norms : (ref2_ == 0 && quant2_ == 0 ? 1.0 : 0.0);
  e.rel_mse = ref2_ > 0 ? err2_ / ref2_ : (err2_ == 0 ? 0.0 : inf);
  e.sqnr_db = err2_ == 0 ? inf : (ref2_ > 0 ? 10.0 * std::log10(ref2_ / err2_) : -inf);
  e.max_abs = max_abs_;
  e.worst_row = worst_row_;
  e.worst_group = worst_group_;
  e.worst_group_rel_mse = worst_ref_ > 0 ? worst_err_ / worst_ref_ : (worst_err_ == 0 ? 0.0 : inf);
  return e;
}

LayerError layer_error(const float* ref, const float* quant, int64_t n, int64_t k, int64_t group_size,
                       const std::vector<int32_t>& g_idx) {
  ErrorAccumulator acc(k, group_size, &g_idx);
  acc.add_rows(ref, quant, 0, n);
  return acc.result(n);
}

}  // namespace awq
