#include "awq/quant_linear.h"

#include <cmath>

#include "awq/error.h"

namespace awq {

void QuantLinear::validate() const {
  auto bad = [&](const std::string& what) { fail("", name, what); };
  if (n <= 0 || k <= 0) bad("empty shape");
  if (bits < 2 || bits > 8) bad("bits " + std::to_string(bits) + " not supported");
  if (group_size <= 0) bad("group size must be positive");
  const size_t nk = size_t(n) * size_t(k), ng = size_t(n) * size_t(n_groups);
  if (codes.size() != nk) bad("codes size mismatch");
  if (scales.size() != ng) bad("scales size mismatch");
  if (zero_mode == ZeroMode::kInteger && zeros.size() != ng) bad("zeros size mismatch");
  if (zero_mode == ZeroMode::kScaledFma && scaled_zeros.size() != ng) bad("scaled zeros size mismatch");
  if (!g_idx.empty()) {
    if (g_idx.size() != size_t(k)) bad("g_idx has " + std::to_string(g_idx.size()) + " entries, expected " + std::to_string(k));
    for (size_t i = 0; i < g_idx.size(); ++i)
      if (g_idx[i] < 0 || g_idx[i] >= n_groups)
        bad("g_idx[" + std::to_string(i) + "] = " + std::to_string(g_idx[i]) + " outside [0, " + std::to_string(n_groups) + ")");
  } else if ((k + group_size - 1) / group_size > n_groups) {
    bad("too few groups for k / group_size");
  }
  if (!pre_quant_scale.empty() && pre_quant_scale.size() != size_t(k)) bad("pre_quant_scale size mismatch");
  if (!bias.empty() && bias.size() != size_t(n)) bad("bias size mismatch");
}

void dequantize_rows_ref(const QuantLinear& q, DType out, int64_t r0, int64_t r1, uint8_t* dst) {
  const bool pqs = !q.pre_quant_scale.empty();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* code = q.codes.data() + size_t(r) * size_t(q.k);
    const size_t row_g = size_t(r) * size_t(q.n_groups);
    for (int64_t c = 0; c < q.k; ++c) {
      const int64_t g = q.group_of(c);
      const float s = q.scales[row_g + size_t(g)];
      float w;
      if (q.zero_mode == ZeroMode::kScaledFma) {
        w = std::fma(float(code[c]), s, q.scaled_zeros[row_g + size_t(g)]);
      } else {
        w = s * float(int32_t(code[c]) - q.zero_at(r, g));
      }
      if (pqs) w *= q.pre_quant_scale[size_t(c)];
      store_float(dst, out, size_t(r - r0) * size_t(q.k) + size_t(c), w);
    }
  }
}

void dequantize_ref(const QuantLinear& q, DType out, uint8_t* dst) { dequantize_rows_ref(q, out, 0, q.n, dst); }

}  // namespace awq
