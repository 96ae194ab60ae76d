// --requantize: RTN re-quantization for modules a target cannot hold exactly (see pack.h).
#include <algorithm>
#include <cmath>

#include "convert/pack.h"

namespace awq::convert_detail {
namespace {

// Rounds to the scale dtype, as the quantizers' fp16 (or bf16) tensor arithmetic does.
float rd(float x, DType t) {
  uint8_t b[4];
  store_float(b, t, 0, x);
  return load_float(b, t, 0);
}

}  // namespace

QuantLinear requantize_rtn(const QuantLinear& src, RequantMode mode, bool keep_g_idx, int bits, RequantError* err) {
  std::vector<float> w(size_t(src.n) * size_t(src.k));
  dequantize_ref(src, DType::F32, reinterpret_cast<uint8_t*>(w.data()));
  QuantLinear q = src;
  q.bits = bits;
  q.zero_mode = ZeroMode::kInteger;
  q.scaled_zeros.clear();
  q.pre_quant_scale.clear();
  if (!keep_g_idx) q.g_idx.clear();
  q.n_groups = q.g_idx.empty() ? (q.k + q.group_size - 1) / q.group_size : src.n_groups;
  const DType dt = q.scale_dtype;
  const int hi = (1 << q.bits) - 1, mid = 1 << (q.bits - 1);
  q.scales.assign(size_t(q.n * q.n_groups), 0.0f);
  q.zeros.assign(q.scales.size(), mid);
  std::vector<float> lo(size_t(q.n_groups)), up(size_t(q.n_groups));
  std::vector<bool> nonfinite(size_t(q.n_groups));
  double num = 0, den = 0, worst = 0;
  for (int64_t r = 0; r < q.n; ++r) {
    const float* row = w.data() + size_t(r) * size_t(q.k);
    std::fill(lo.begin(), lo.end(), INFINITY);
    std::fill(up.begin(), up.end(), -INFINITY);
    std::fill(nonfinite.begin(), nonfinite.end(), false);
    for (int64_t c = 0; c < q.k; ++c) {
      const size_t g = size_t(q.group_of(c));
      const float v = rd(row[c], dt);
      if (!std::isfinite(v)) {
        nonfinite[g] = true;
        continue;
      }
      lo[g] = std::min(lo[g], v);
      up[g] = std::max(up[g], v);
    }
    for (int64_t g = 0; g < q.n_groups; ++g) {
      const size_t i = size_t(r * q.n_groups + g);
      if (nonfinite[size_t(g)]) {  // NaN/Inf in the source group (allowed by the caller): carried, not invented
        q.scales[i] = NAN;
        continue;
      }
      if (!std::isfinite(lo[size_t(g)])) {  // empty group (g_idx)
        q.scales[i] = rd(1e-5f, dt);
        continue;
      }
      const float mn = lo[size_t(g)], mx = up[size_t(g)];
      float s;
      int z;
      if (mode == RequantMode::kSymmetric || mode == RequantMode::kSymmetric7) {
        const float div = mode == RequantMode::kSymmetric ? float(hi) / 2.0f : float(mid - 1);  // 7.5 / 7 at 4 bits
        s = rd(std::max(rd(std::max(std::fabs(mn), std::fabs(mx)), dt), rd(1e-5f, dt)) / div, dt);
        z = mid;
      } else {
        s = rd(std::max(rd(mx - mn, dt), rd(1e-5f, dt)) / float(hi), dt);
        z = int(std::clamp(-std::nearbyint(rd(mn / s, dt)), 0.0f, float(hi)));
        if (mode == RequantMode::kNoZeroZero && z == 0) {
          s = rd(std::max(rd(mx, dt), rd(1e-5f, dt)) / float(hi - 1), dt);
          z = 1;
        }
      }
      q.scales[i] = s;
      q.zeros[i] = z;
    }
    for (int64_t c = 0; c < q.k; ++c) {
      const size_t i = size_t(r * q.n_groups + q.group_of(c));
      const float s = q.scales[i];
      if (std::isnan(s)) {  // a carried NaN group: code 2^(bits-1), and the error is not a number
        q.codes[size_t(r * q.k + c)] = uint8_t(mid);
        num = worst = NAN;
        continue;
      }
      const float code = std::clamp(std::nearbyint(rd(rd(row[c], dt) / s, dt)) + float(q.zeros[i]), 0.0f, float(hi));
      q.codes[size_t(r * q.k + c)] = uint8_t(code);
      const double d = double(rd(s * (code - float(q.zeros[i])), dt)) - double(row[c]);
      num += d * d;
      den += double(row[c]) * double(row[c]);
      worst = std::isnan(worst) ? worst : std::max(worst, std::fabs(d));
    }
  }
  // NaN in, NaN out: never a 0 % that hides a group the source could not say anything about.
  if (err) *err = {worst, std::isnan(num) ? NAN : den > 0 ? std::sqrt(num / den) : 0.0};
  return q;
}

}  // namespace awq::convert_detail
