#include "quant/group_quant.h"

#include <algorithm>
#include <cmath>

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
  GroupQ g;
  if (mn == mx) {  // constant group: exact (c = s·(q − z) with q − z = ±1, or 0)
    const float c = to_f16(mn);
    g.scale = c == 0 ? to_f16(1e-5f) : std::fabs(c);
    const int base = p.zero_point ? (c < 0 ? 1 : 0) : mid;
    g.zero = base;
    const int q = c == 0 ? base : (c > 0 ? base + 1 : base - 1);
    if (codes) std::fill(codes, codes + len, uint8_t(q));
    return g;
  }
  float lo = mn * r_lo, hi = mx * r_hi;
  if (p.zero_point) {
    lo = std::min(lo, 0.0f);
    hi = std::max(hi, 0.0f);
    g.scale = to_f16(std::max(hi - lo, 1e-5f) / float(maxq));
    if (g.scale == 0) g.scale = to_f16(1e-5f);
    g.zero = int(std::clamp(std::nearbyint(-lo / g.scale), 0.0f, float(maxq)));
  } else {
    const float amax = std::max(std::fabs(lo), std::fabs(hi));
    g.scale = to_f16(std::max(amax, 1e-5f) / float(mid - 1));
    if (g.scale == 0) g.scale = to_f16(1e-5f);
    g.zero = mid;
  }
  if (codes)
    for (int64_t i = 0; i < len; ++i)
      codes[i] = uint8_t(std::clamp(std::nearbyint(w[i] / g.scale) + float(g.zero), 0.0f, float(maxq)));
  return g;
}

void fake_quant_group(const float* w, int64_t len, const QParams& p, float r_lo, float r_hi, float* out) {
  uint8_t codes[1024];
  for (int64_t a = 0; a < len; a += 1024) {
    // Groups longer than 1024 (per-channel) share one range: quantize the whole group's range once.
    const int64_t b = std::min(len, a + 1024);
    if (len <= 1024) {
      const GroupQ g = quantize_group(w, len, p, r_lo, r_hi, codes);
      for (int64_t i = 0; i < len; ++i) out[i] = g.scale * float(int(codes[i]) - g.zero);
      return;
    }
    const GroupQ g = quantize_group(w, len, p, r_lo, r_hi, nullptr);
    const int maxq = (1 << p.bits) - 1;
    for (int64_t i = a; i < b; ++i) {
      const float q = std::clamp(std::nearbyint(w[i] / g.scale) + float(g.zero), 0.0f, float(maxq));
      out[i] = g.scale * (q - float(g.zero));
    }
  }
}

}  // namespace awq::quant_detail
