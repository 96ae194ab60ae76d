#include "quant/group_quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "awq/dtype.h"

namespace awq::quant_detail {

float to_f16(float x) { return f16_to_f32(f32_to_f16(x)); }

GroupQ quantize_group(const float* w, int64_t len, const QParams& p, float r_lo, float r_hi, uint8_t* codes) {
  float mn = w[0], mx = w[0];
  for (int64_t i = 1; i < len; ++i) {
    mn = std::min(mn, w[i]);
    mx = std::max(mx, w[i]);
  }
  const int maxq = (1 << p.bits) - 1, mid = 1 << (p.bits - 1);
  const float eps = to_f16(1e-5f);  // AutoAWQ's clamp(min=1e-5) on an fp16 tensor
  GroupQ g;
  if (mn == mx && mn != 0) {  // constant group: exact (c = s·(q − z) with q − z = ±1)
    const float c = to_f16(mn);
    g.scale = std::fabs(c);
    const int base = p.zero_point ? (c < 0 ? 1 : 0) : mid;
    g.zero = base;
    if (codes) std::fill(codes, codes + len, uint8_t(c > 0 ? base + 1 : base - 1));
    return g;
  }
  // AutoAWQ's arithmetic is torch fp16 (each operation rounded to fp16); every step below rounds
  // the same way, so codes, scales and zeros equal pseudo_quantize_tensor's bit for bit
  // (tests/data/quantize/rtn-*, tools/make_golden_quantize.py).
  float lo = mn * r_lo, hi = mx * r_hi;
  if (p.zero_point) {
    lo = std::min(lo, 0.0f);  // 0 representable: a one-signed group does not saturate (AutoAWQ's does)
    hi = std::max(hi, 0.0f);
    g.scale = to_f16(std::max(to_f16(hi - lo), eps) / float(maxq));
    g.zero = int(std::clamp(-std::nearbyint(to_f16(lo / g.scale)), 0.0f, float(maxq)));
  } else {
    const float amax = std::max(to_f16(std::max(std::fabs(lo), std::fabs(hi))), eps);
    g.scale = to_f16(amax / float(mid - 1));
    g.zero = mid;
  }
  if (codes)
    for (int64_t i = 0; i < len; ++i) codes[i] = quantize_code(w[i], g, p);
  return g;
}

uint8_t quantize_code(float w, const GroupQ& g, const QParams& p) {
  if (g.scale == 0) return uint8_t(g.zero);
  const int maxq = (1 << p.bits) - 1, mid = 1 << (p.bits - 1);
  const float r = std::nearbyint(to_f16(w / g.scale));
  if (p.zero_point) return uint8_t(std::clamp(r + float(g.zero), 0.0f, float(maxq)));
  return uint8_t(std::clamp(r, -float(mid), float(mid - 1)) + float(mid));
}

void fake_quant_group(const float* w, int64_t len, const QParams& p, float r_lo, float r_hi, float* out) {
  uint8_t small[1024];
  std::vector<uint8_t> big(len > 1024 ? size_t(len) : 0);  // per-channel groups longer than 1024
  uint8_t* codes = len > 1024 ? big.data() : small;
  const GroupQ g = quantize_group(w, len, p, r_lo, r_hi, codes);
  for (int64_t i = 0; i < len; ++i) out[i] = g.scale * float(int(codes[i]) - g.zero);
}

}  // namespace awq::quant_detail
