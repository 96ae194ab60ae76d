// QuantLinear -> PackedLinear (layout documented in include/awq/kernels.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <sys/mman.h>
#include <string>
#include <vector>

#include "awq/error.h"
#include "awq/kernels.h"
#include "kernels/internal.h"

namespace awq::kernels {

AlignedBytes::AlignedBytes(size_t n) : n_(n) {
  // Buffers of 2 MiB and more are 2 MiB aligned and advised as huge pages (where the kernel does
  // transparent huge pages on madvise): streaming kernels then cross no 4 KiB page boundaries,
  // which stop the hardware prefetchers and cost a TLB miss each.
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t align = n >= kHuge ? kHuge : 64;
  const size_t rounded = n == 0 ? 64 : (n + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (align == kHuge) madvise(p, rounded, MADV_HUGEPAGE);  // advice only; failure is harmless
#endif
  std::memset(p, 0, rounded);
  p_.reset(static_cast<uint8_t*>(p));
}
void AlignedBytes::Free::operator()(uint8_t* p) const { std::free(p); }

size_t PackedLinear::weight_bytes() const {
  return codes.size() + params.size() + (bias.size() + pre_quant_scale.size()) * sizeof(float) +
         source_col.size() * sizeof(int32_t);
}

const char* path_name(Path p) {
  switch (p) {
    case Path::kInt8: return "int8";
    case Path::kBF16: return "bf16";
    case Path::kInt16: return "int16";
    case Path::kF32: break;
  }
  return "f32";
}

bool parse_path(const std::string& name, Path* out) {
  for (Path p : {Path::kF32, Path::kInt8, Path::kBF16, Path::kInt16})
    if (name == path_name(p)) {
      *out = p;
      return true;
    }
  return false;
}

namespace {

int64_t round_up8(int64_t v) { return (v + kChunkCols - 1) / kChunkCols * kChunkCols; }

bool f16_exact(float s) { return std::isfinite(s) && f16_to_f32(f32_to_f16(s)) == s; }

// Throws awq::Error naming the module for anything repack cannot pack (it indexes by these sizes).
void check_repackable(const QuantLinear& q, const std::string& who) {
  if (q.bits != 4) throw Error(who + ": kernels support 4-bit codes only, not " + std::to_string(q.bits));
  if (q.n <= 0 || q.k <= 0 || q.group_size <= 0) throw Error(who + ": empty shape or group size");
  if (q.k > INT32_MAX) throw Error(who + ": in_features " + std::to_string(q.k) + " too large for the kernels");
  if (int64_t(q.codes.size()) != q.n * q.k) throw Error(who + ": codes size does not match n*k");
  const size_t ng = size_t(q.n * q.n_groups);
  if (q.n_groups <= 0 || q.scales.size() < ng) throw Error(who + ": scales do not cover every group");
  if ((q.zero_mode == ZeroMode::kInteger && q.zeros.size() < ng) ||
      (q.zero_mode == ZeroMode::kScaledFma && q.scaled_zeros.size() < ng))
    throw Error(who + ": zero points do not cover every group");
  if (!q.pre_quant_scale.empty() && int64_t(q.pre_quant_scale.size()) != q.k)
    throw Error(who + ": pre_quant_scale size does not match k");
  if (!q.bias.empty() && int64_t(q.bias.size()) != q.n) throw Error(who + ": bias size does not match n");
  if (q.g_idx.empty()) {
    if ((q.k + q.group_size - 1) / q.group_size > q.n_groups) throw Error(who + ": scales do not cover every group");
    return;
  }
  if (int64_t(q.g_idx.size()) != q.k)
    throw Error(who + ": g_idx has " + std::to_string(q.g_idx.size()) + " entries, expected " + std::to_string(q.k));
  for (int64_t c = 0; c < q.k; ++c)
    if (q.g_idx[size_t(c)] < 0 || q.g_idx[size_t(c)] >= q.n_groups)
      throw Error(who + ": g_idx[" + std::to_string(c) + "] = " + std::to_string(q.g_idx[size_t(c)]) +
                  " outside [0, " + std::to_string(q.n_groups) + ")");
}

// Where every packed column comes from: packed group g is QuantLinear group qgroup[g], and packed
// column g·group + j is source column col[g·group + j] (−1: padding).
struct ColumnPlan {
  int64_t group = 0;
  std::vector<int64_t> qgroup;
  std::vector<int32_t> col;
};

// Natural order: group g holds columns [g·group_size, (g+1)·group_size) ∩ [0, k).
ColumnPlan natural_plan(const QuantLinear& q) {
  ColumnPlan p;
  p.group = round_up8(q.group_size);
  const int64_t ng = (q.k + q.group_size - 1) / q.group_size;
  p.col.assign(size_t(ng * p.group), -1);
  for (int64_t g = 0; g < ng; ++g) {
    p.qgroup.push_back(g);
    for (int64_t j = 0; j < q.group_size && g * q.group_size + j < q.k; ++j)
      p.col[size_t(g * p.group + j)] = int32_t(g * q.group_size + j);
  }
  return p;
}

// Act-order: a counting sort of the columns by g_idx (stable, so increasing column order inside a
// group); groups without columns get no packed group.
ColumnPlan act_order_plan(const QuantLinear& q) {
  std::vector<int64_t> count(size_t(q.n_groups), 0);
  for (int32_t g : q.g_idx) ++count[size_t(g)];
  ColumnPlan p;
  p.group = round_up8(*std::max_element(count.begin(), count.end()));
  std::vector<int64_t> next(size_t(q.n_groups), -1);  // next free packed column of each group
  for (int64_t g = 0; g < q.n_groups; ++g) {
    if (count[size_t(g)] == 0) continue;
    next[size_t(g)] = int64_t(p.qgroup.size()) * p.group;
    p.qgroup.push_back(g);
  }
  p.col.assign(p.qgroup.size() * size_t(p.group), -1);
  for (int64_t c = 0; c < q.k; ++c) p.col[size_t(next[size_t(q.g_idx[size_t(c)])]++)] = int32_t(c);
  return p;
}

// Compact params reproduce the reference exactly when every scale used is an f16 and every zero is
// an integer in [0, 255].
bool fits_compact(const QuantLinear& q, const std::vector<int64_t>& qgroup) {
  if (q.zero_mode == ZeroMode::kScaledFma) return false;
  for (int64_t r = 0; r < q.n; ++r)
    for (int64_t g : qgroup) {
      const int32_t z = q.zero_at(r, g);
      if (!f16_exact(q.scales[size_t(r * q.n_groups + g)]) || z < 0 || z > 255) return false;
    }
  return true;
}

// Params of source row `row`, QuantLinear group g, at row slot r of a (tile, group) params block.
void store_params(const QuantLinear& q, bool wide, int64_t row, int64_t g, int64_t r, uint8_t* pp) {
  const size_t gi = size_t(row * q.n_groups + g);
  const float s = q.scales[gi];
  if (!wide) {
    const uint16_t h = f32_to_f16(s);
    std::memcpy(pp + 2 * r, &h, 2);
    pp[32 + r] = uint8_t(q.zero_at(row, g));
  } else {
    const float o = q.zero_mode == ZeroMode::kScaledFma ? q.scaled_zeros[gi] : -s * float(q.zero_at(row, g));
    std::memcpy(pp + 4 * r, &s, 4);
    std::memcpy(pp + 64 + 4 * r, &o, 4);
  }
}

// Codes of source row `row` for packed group g at row slot r of the group's chunks cg.
void store_codes(const QuantLinear& q, const ColumnPlan& plan, int64_t row, int64_t g, int64_t r, uint8_t* cg) {
  const uint8_t* src = q.codes.data() + size_t(row) * size_t(q.k);
  for (int64_t j = 0; j < plan.group; ++j) {
    const int32_t col = plan.col[size_t(g * plan.group + j)];
    if (col < 0) continue;
    const int64_t c = j / kChunkCols, b = j % kChunkCols;
    uint8_t& byte = cg[c * kChunkBytes + 4 * r + (b & 3)];
    byte |= uint8_t((src[col] & 0xF) << (b < 4 ? 0 : 4));
  }
}

}  // namespace

PackedLinear repack(const QuantLinear& q) {
  const std::string who = q.name.empty() ? std::string("QuantLinear") : q.name;
  check_repackable(q, who);
  const bool natural = !q.act_order();
  ColumnPlan plan = natural ? natural_plan(q) : act_order_plan(q);

  PackedLinear p;
  p.name = q.name;
  p.n = q.n;
  p.k = q.k;
  p.n_tiles = (q.n + kPackRows - 1) / kPackRows;
  p.source_group = natural ? q.group_size : 0;
  p.group = plan.group;
  p.n_groups = int64_t(plan.qgroup.size());
  p.k_pad = p.n_groups * p.group;
  p.wide = !fits_compact(q, plan.qgroup);

  const int64_t chunks = p.group / kChunkCols;
  p.codes = AlignedBytes(size_t(p.n_tiles) * p.tile_code_bytes());
  p.params = AlignedBytes(size_t(p.n_tiles * p.n_groups) * p.param_bytes());
  for (int64_t t = 0; t < p.n_tiles; ++t) {
    for (int64_t g = 0; g < p.n_groups; ++g) {
      uint8_t* pp = p.params.data() + size_t(t * p.n_groups + g) * p.param_bytes();
      uint8_t* cg = p.codes.data() + size_t(t) * p.tile_code_bytes() + size_t(g * chunks) * kChunkBytes;
      for (int64_t r = 0; r < kPackRows; ++r) {
        const int64_t row = t * kPackRows + r;
        if (row >= q.n) break;  // padded rows: codes 0, scale 0, zero 0 -> w = 0
        store_params(q, p.wide, row, plan.qgroup[size_t(g)], r, pp);
        store_codes(q, plan, row, g, r, cg);
      }
    }
  }
  if (!natural) p.source_col = std::move(plan.col);
  if (!q.pre_quant_scale.empty()) p.pre_quant_scale = q.pre_quant_scale;
  if (!q.bias.empty()) p.bias = q.bias;
  return p;
}

// ---- helpers shared by the reference and the SIMD drivers (internal.h) ----

namespace {

// Act-order activation pass: dst[p] = x[source_col[p]]·pqs[source_col[p]], 0 for padding.
void gather_activations_f32(const PackedLinear& w, const void* x, DType xt, int64_t m0, int64_t m1, float* dst) {
  const bool pqs = !w.pre_quant_scale.empty();
  for (int64_t m = m0; m < m1; ++m) {
    float* d = dst + size_t(m - m0) * size_t(w.k_pad);
    const size_t row = size_t(m * w.k);
    for (int64_t p = 0; p < w.k_pad; ++p) {
      const int32_t c = w.source_col[size_t(p)];
      if (c < 0) {
        d[p] = 0.f;
        continue;
      }
      float v = xt == DType::F32 ? static_cast<const float*>(x)[row + size_t(c)]
                                 : bf16_to_f32(static_cast<const uint16_t*>(x)[row + size_t(c)]);
      if (pqs) v *= w.pre_quant_scale[size_t(c)];
      d[p] = v;
    }
  }
}

}  // namespace

void pack_activations_f32(const PackedLinear& w, const void* x, DType xt, int64_t m0, int64_t m1, float* dst) {
  if (!w.source_col.empty()) return gather_activations_f32(w, x, xt, m0, m1, dst);
  const bool pqs = !w.pre_quant_scale.empty();
  for (int64_t m = m0; m < m1; ++m) {
    float* d = dst + size_t(m - m0) * size_t(w.k_pad);
    if (w.group != w.source_group || w.k_pad != w.k) std::memset(d, 0, size_t(w.k_pad) * sizeof(float));
    for (int64_t g = 0; g < w.n_groups; ++g) {
      const int64_t col0 = g * w.source_group, n = std::min(w.source_group, w.k - col0);
      float* dg = d + g * w.group;
      if (xt == DType::F32) {
        std::memcpy(dg, static_cast<const float*>(x) + size_t(m * w.k + col0), size_t(n) * sizeof(float));
      } else {
        const uint16_t* xb = static_cast<const uint16_t*>(x) + size_t(m * w.k + col0);
        for (int64_t j = 0; j < n; ++j) dg[j] = bf16_to_f32(xb[j]);
      }
      if (pqs)
        for (int64_t j = 0; j < n; ++j) dg[j] *= w.pre_quant_scale[size_t(col0 + j)];
    }
  }
}

void quantize_activations_i8(const PackedLinear& w, const float* xf, int64_t m0, int64_t m1, int8_t* a,
                             float* d_out, float* ds_out) {
  for (int64_t m = m0; m < m1; ++m) {
    const float* x = xf + size_t(m - m0) * size_t(w.k_pad);
    int8_t* am = a + size_t(m - m0) * size_t(w.k_pad);
    for (int64_t g = 0; g < w.n_groups; ++g) {
      const float* xg = x + g * w.group;
      float amax = 0.f;
      for (int64_t j = 0; j < w.group; ++j) amax = std::max(amax, std::fabs(xg[j]));
      const float d = amax > 0.f ? amax / 127.f : 0.f;
      const float inv = amax > 0.f ? 127.f / amax : 0.f;
      int32_t sum = 0;
      // The product rounded to f32, then to the nearest integer (even on ties) by ROUNDPS-like rounding:
      // no add that a compiler could fuse with the product into an FMA (GCC's -ffp-contract=fast fuses
      // the SIMD twin's intrinsics, not this baseline-x86-64 code), so every target rounds alike.
      for (int64_t j = 0; j < w.group; ++j) {
        float r = std::nearbyint(xg[j] * inv);
        r = std::min(127.f, std::max(-127.f, r));
        am[g * w.group + j] = int8_t(r);
        sum += int32_t(r);
      }
      d_out[size_t(m - m0) * size_t(w.n_groups) + size_t(g)] = d;
      ds_out[size_t(m - m0) * size_t(w.n_groups) + size_t(g)] = d * float(sum);
    }
  }
}

void quantize_activations_i16(const PackedLinear& w, const float* xf, int64_t m0, int64_t m1, int8_t* hi,
                              int8_t* lo, float* d_out, float* ds_out) {
  for (int64_t m = m0; m < m1; ++m) {
    const float* x = xf + size_t(m - m0) * size_t(w.k_pad);
    const size_t row = size_t(m - m0) * size_t(w.k_pad);
    for (int64_t g = 0; g < w.n_groups; ++g) {
      const float* xg = x + g * w.group;
      float amax = 0.f;
      for (int64_t j = 0; j < w.group; ++j) amax = std::max(amax, std::fabs(xg[j]));
      const float d = amax > 0.f ? amax / kI16Max : 0.f;
      const float inv = amax > 0.f ? kI16Max / amax : 0.f;
      int32_t sum = 0;
      for (int64_t j = 0; j < w.group; ++j) {
        float r = std::nearbyint(xg[j] * inv);  // as in quantize_activations_i8
        r = std::min(kI16Max, std::max(-kI16Max, r));
        const size_t i = row + size_t(g * w.group + j);
        split_i16(int32_t(r), hi[i], lo[i]);
        sum += int32_t(r);
      }
      d_out[size_t(m - m0) * size_t(w.n_groups) + size_t(g)] = d;
      ds_out[size_t(m - m0) * size_t(w.n_groups) + size_t(g)] = d * float(sum);
    }
  }
}

void group_params(const PackedLinear& w, int64_t t, int64_t g, float* s, float* o) {
  const uint8_t* pp = w.params.data() + size_t(t * w.n_groups + g) * w.param_bytes();
  for (int r = 0; r < kPackRows; ++r) {
    if (w.wide) {
      std::memcpy(&s[r], pp + 4 * r, 4);
      std::memcpy(&o[r], pp + 64 + 4 * r, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, pp + 2 * r, 2);
      s[r] = f16_to_f32(h);
      o[r] = -(s[r] * float(pp[32 + r]));
    }
  }
}

}  // namespace awq::kernels

namespace awq::kernels {
KernelScratch& kernel_scratch() {
  thread_local KernelScratch s;
  return s;
}
}  // namespace awq::kernels
