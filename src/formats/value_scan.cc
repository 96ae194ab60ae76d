#include "awq/value_scan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace awq {

namespace {

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

void note(NonfiniteScan& s, size_t i, float v, int64_t& last_row) {
  (std::isnan(v) ? s.nan : s.inf)++;
  if (s.first == SIZE_MAX) {
    s.first = i;
    s.first_value = v;
  }
  const int64_t row = s.cols > 0 ? int64_t(i) / s.cols : 0;
  if (row != last_row) {
    last_row = row;
    ++s.rows;
  }
}

}  // namespace

std::string NonfiniteScan::first_position() const {
  if (first == SIZE_MAX) return "";
  if (cols <= 0) return "index " + std::to_string(first);
  return "row " + std::to_string(int64_t(first) / cols) + ", " + col_word + " " + std::to_string(int64_t(first) % cols);
}

std::string NonfiniteScan::summary(const std::string& what) const {
  return std::to_string(nan) + " NaN and " + std::to_string(inf) + " Inf of " + std::to_string(total) + " " + what +
         "; first at " + first_position() + " (" + fmt(first_value) + ")";
}

NonfiniteScan scan_nonfinite(const TensorView& t) {
  NonfiniteScan s;
  if (t.dtype != DType::F16 && t.dtype != DType::BF16 && t.dtype != DType::F32) return s;
  s.total = size_t(t.numel());
  s.cols = t.shape.size() >= 2 ? t.shape.back() : 0;
  int64_t last_row = -1;
  // Exponent bits all ones = NaN or Inf; tested on the raw bits (the common, clean case is a
  // tight integer loop), converted only at the hits.
  if (t.dtype == DType::F32) {
    for (size_t i = 0; i < s.total; ++i) {
      uint32_t u;
      std::memcpy(&u, t.data + 4 * i, 4);
      if ((u & 0x7f800000u) == 0x7f800000u) note(s, i, load_float(t.data, t.dtype, i), last_row);
    }
  } else {
    const uint16_t mask = t.dtype == DType::F16 ? 0x7c00 : 0x7f80;
    for (size_t i = 0; i < s.total; ++i) {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      if ((h & mask) == mask) note(s, i, load_float(t.data, t.dtype, i), last_row);
    }
  }
  return s;
}

NonfiniteScan scan_nonfinite(const std::vector<float>& v, int64_t cols, const std::string& col_word) {
  NonfiniteScan s;
  s.total = v.size();
  s.cols = cols;
  s.col_word = col_word;
  int64_t last_row = -1;
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) note(s, i, v[i], last_row);
  return s;
}

std::vector<ModuleNonfinite> scan_nonfinite(const QuantLinear& q) {
  std::vector<ModuleNonfinite> out;
  auto add = [&](const char* role, NonfiniteScan s) {
    if (s.any()) out.push_back({role, std::move(s)});
  };
  add("scales", scan_nonfinite(q.scales, q.n_groups, "group"));
  if (q.zero_mode == ZeroMode::kScaledFma) add("scaled zeros", scan_nonfinite(q.scaled_zeros, q.n_groups, "group"));
  if (!q.pre_quant_scale.empty()) add("pre-quant scales", scan_nonfinite(q.pre_quant_scale, 0, "column"));
  return out;
}

MagnitudeScan max_abs_dequantized(const QuantLinear& q) {
  MagnitudeScan m;
  auto weight = [&](int64_t r, int64_t g, uint8_t code) {
    const size_t i = size_t(r) * size_t(q.n_groups) + size_t(g);
    return q.zero_mode == ZeroMode::kScaledFma ? std::fma(float(code), q.scales[i], q.scaled_zeros[i])
                                               : q.scales[i] * float(int32_t(code) - q.zero_at(r, g));
  };
  auto consider = [&](float w, int64_t r, int64_t g) {
    if (std::isfinite(w) && std::fabs(double(w)) > m.max_abs) m = {std::fabs(double(w)), r, g};
  };
  std::vector<uint8_t> lo(size_t(q.n_groups)), hi(size_t(q.n_groups));
  for (int64_t r = 0; r < q.n; ++r) {
    const uint8_t* code = q.codes.data() + size_t(r) * size_t(q.k);
    if (!q.pre_quant_scale.empty()) {  // per-column factor: every weight, exactly
      for (int64_t c = 0; c < q.k; ++c)
        consider(weight(r, q.group_of(c), code[c]) * q.pre_quant_scale[size_t(c)], r, q.group_of(c));
      continue;
    }
    // w is linear in the code within a group, so its extremes are at the group's extreme codes.
    std::fill(lo.begin(), lo.end(), uint8_t(255));
    std::fill(hi.begin(), hi.end(), uint8_t(0));
    for (int64_t c = 0; c < q.k; ++c) {
      const size_t g = size_t(q.group_of(c));
      lo[g] = std::min(lo[g], code[c]);
      hi[g] = std::max(hi[g], code[c]);
    }
    for (int64_t g = 0; g < q.n_groups; ++g) {
      if (lo[size_t(g)] > hi[size_t(g)]) continue;  // empty group (g_idx)
      consider(weight(r, g, lo[size_t(g)]), r, g);
      consider(weight(r, g, hi[size_t(g)]), r, g);
    }
  }
  return m;
}

bool any_nonfinite(const uint8_t* data, DType t, size_t count) {
  if (t == DType::F32) {
    uint32_t acc = 0;
    for (size_t i = 0; i < count; ++i) {
      uint32_t u;
      std::memcpy(&u, data + 4 * i, 4);
      acc |= uint32_t((u & 0x7f800000u) == 0x7f800000u);
    }
    return acc != 0;
  }
  const uint16_t mask = t == DType::F16 ? 0x7c00 : 0x7f80;
  uint32_t acc = 0;
  for (size_t i = 0; i < count; ++i) {
    uint16_t h;
    std::memcpy(&h, data + 2 * i, 2);
    acc |= uint32_t((h & mask) == mask);
  }
  return acc != 0;
}

bool dtype_holds(double max_abs, DType t) {
  if (!(max_abs <= double(std::numeric_limits<float>::max()))) return false;
  uint8_t b[4];
  store_float(b, t, 0, float(max_abs));
  return std::isfinite(load_float(b, t, 0));
}

DType narrowest_float_holding(double max_abs) {
  if (dtype_holds(max_abs, DType::F16)) return DType::F16;
  if (dtype_holds(max_abs, DType::BF16)) return DType::BF16;
  return DType::F32;
}

std::string dtypes_holding(double max_abs) {
  return narrowest_float_holding(max_abs) == DType::F32 ? "f32" : "bf16 or f32";
}

}  // namespace awq
