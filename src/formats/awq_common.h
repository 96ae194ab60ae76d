// Pieces shared by the AutoAWQ GEMV and GEMV_fast layouts (internal).
#pragma once
#include <cstdint>

#include "awq/model_dir.h"

namespace awq::fmt_detail {

// AutoAWQ's calculate_zeros_width(K, G): ceil(ceil((K/G)/8) / m) * m with m = 1 for G >= 128,
// 2 for G = 64, 4 for G = 32. Returns 0 for a group size AutoAWQ rejects.
int64_t awq_zeros_width(int64_t k, int64_t g);

// Group size of a padded GEMV / GEMV_fast checkpoint without a config: the G in {32, 64, 128}
// whose padded width matches the first module's scales and whose padding columns are zero.
// Falls back to 128. `transposed`: scales are [8·Wz, N] (GEMV_fast) instead of [N, 8·Wz].
int64_t infer_padded_group_size(const ModelDir& dir, bool transposed);

}  // namespace awq::fmt_detail
