// Pieces shared by the AutoAWQ GEMV and GEMV_fast layouts (internal).
#pragma once
#include <cstdint>

#include "awq/formats.h"

namespace awq::fmt_detail {

// Group size of a padded GEMV / GEMV_fast checkpoint without a config: the G in {32, 64, 128}
// whose padded width matches the first module's scales and whose padding columns are zero.
// Falls back to 128. `transposed`: scales are [8·Wz, N] (GEMV_fast) instead of [N, 8·Wz].
int64_t infer_padded_group_size(const ModelDir& dir, bool transposed);

}  // namespace awq::fmt_detail
