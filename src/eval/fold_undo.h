// AWQ scale folds (FoldScales, include/awq/compare.h): the per-row sums the row fold is fitted from,
// streamed a block of rows at a time (private to eval/).
#pragma once
#include <cstdint>
#include <vector>

#include "awq/compare.h"

namespace awq {

// <q,q>, <q,d>, <d,d> of one producer row (q QUANT's, d REF's).
struct RowDots {
  double qq = 0, qd = 0, dd = 0;
};

RowDots row_dots(const float* ref, const float* quant, int64_t k);

// The row fold from every row's dots over k columns (row_fold's rule).
FoldScales row_fold_from_dots(const std::vector<RowDots>& rows, int64_t k);

}  // namespace awq
