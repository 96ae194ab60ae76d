// Running sums for one layer's weight error, fed a block of rows at a time (private to eval/).
#pragma once
#include <cstdint>
#include <vector>

#include "awq/compare.h"

namespace awq {

class ErrorAccumulator {
 public:
  // k columns; groups of `group_size` columns, or the per-column map *g_idx when given non-empty.
  ErrorAccumulator(int64_t k, int64_t group_size, const std::vector<int32_t>* g_idx);
  // Adds rows [row0, row0 + rows) given as row-major f32 blocks of the reference and the copy.
  void add_rows(const float* ref, const float* quant, int64_t row0, int64_t rows);
  // Adds another accumulator's sums (blocks merged in a fixed order give deterministic results).
  void merge(const ErrorAccumulator& other);
  // The figures for a matrix of n rows (name/kind left empty).
  LayerError result(int64_t n) const;
  double err2() const { return err2_; }
  double ref2() const { return ref2_; }

 private:
  void note_nonfinite(int64_t row, int64_t col, float ref, float quant);
  int64_t k_, group_size_, n_groups_;
  const std::vector<int32_t>* g_idx_;
  std::vector<double> group_err_, group_ref_;  // scratch for the current row
  double dot_ = 0, ref2_ = 0, quant2_ = 0, err2_ = 0, max_abs_ = 0;
  bool nonfinite_ = false;
  int64_t nf_row_ = -1, nf_col_ = -1;  // the first NaN/Inf (lowest row, then column)
  float nf_ref_ = 0, nf_quant_ = 0;
  bool have_worst_ = false;
  double worst_err_ = 0, worst_ref_ = 0;
  int64_t worst_row_ = 0, worst_group_ = 0;
};

}  // namespace awq
