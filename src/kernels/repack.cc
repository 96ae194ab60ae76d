// QuantLinear -> PackedLinear (layout documented in include/awq/kernels.h).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "awq/error.h"
#include "awq/kernels.h"
#include "kernels/internal.h"

namespace awq::kernels {

AlignedBytes::AlignedBytes(size_t n) : n_(n) {
  const size_t rounded = (n + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded == 0 ? 64 : rounded);
  p_.reset(static_cast<uint8_t*>(p));
}
void AlignedBytes::Free::operator()(uint8_t* p) const { std::free(p); }

size_t PackedLinear::weight_bytes() const {
  return codes.size() + params.size() + (bias.size() + pre_quant_scale.size()) * sizeof(float);
}

const char* path_name(Path p) {
  switch (p) {
    case Path::kInt8: return "int8";
    case Path::kBF16: return "bf16";
    case Path::kF32: break;
  }
  return "f32";
}

namespace {

bool trivial_g_idx(const QuantLinear& q) {
  if (q.g_idx.empty()) return true;
  for (int64_t c = 0; c < q.k; ++c)
    if (q.g_idx[size_t(c)] != c / q.group_size) return false;
  return true;
}

bool f16_exact(float s) { return std::isfinite(s) && f16_to_f32(f32_to_f16(s)) == s; }

}  // namespace

PackedLinear repack(const QuantLinear& q) {
  const std::string who = q.name.empty() ? std::string("QuantLinear") : q.name;
  if (q.bits != 4) throw Error(who + ": kernels support 4-bit codes only, not " + std::to_string(q.bits));
  if (q.n <= 0 || q.k <= 0 || q.group_size <= 0) throw Error(who + ": empty shape or group size");
  if (!trivial_g_idx(q)) throw Error(who + ": act-order g_idx is not supported by the kernels");
  if (int64_t(q.codes.size()) != q.n * q.k) throw Error(who + ": codes size does not match n*k");
  const int64_t src_groups = (q.k + q.group_size - 1) / q.group_size;
  if (q.n_groups < src_groups || int64_t(q.scales.size()) < q.n * q.n_groups)
    throw Error(who + ": scales do not cover every group");

  PackedLinear p;
  p.name = q.name;
  p.n = q.n;
  p.k = q.k;
  p.n_tiles = (q.n + kPackRows - 1) / kPackRows;
  p.source_group = q.group_size;
  p.group = (q.group_size + kChunkCols - 1) / kChunkCols * kChunkCols;
  p.n_groups = src_groups;
  p.k_pad = p.n_groups * p.group;

  // Compact form when it reproduces the reference exactly: f16 scales, integer zeros in [0, 255].
  bool compact = q.zero_mode != ZeroMode::kScaledFma;
  for (int64_t r = 0; r < q.n && compact; ++r)
    for (int64_t g = 0; g < p.n_groups && compact; ++g) {
      const size_t i = size_t(r * q.n_groups + g);
      const int32_t z = q.zero_at(r, g);
      if (!f16_exact(q.scales[i]) || z < 0 || z > 255) compact = false;
    }
  p.wide = !compact;

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
        const size_t gi = size_t(row * q.n_groups + g);
        const float s = q.scales[gi];
        if (compact) {
          const uint16_t h = f32_to_f16(s);
          std::memcpy(pp + 2 * r, &h, 2);
          pp[32 + r] = uint8_t(q.zero_at(row, g));
        } else {
          const float o = q.zero_mode == ZeroMode::kScaledFma ? q.scaled_zeros[gi] : -s * float(q.zero_at(row, g));
          std::memcpy(pp + 4 * r, &s, 4);
          std::memcpy(pp + 64 + 4 * r, &o, 4);
        }
        const uint8_t* src = q.codes.data() + size_t(row) * size_t(q.k);
        for (int64_t j = 0; j < p.group; ++j) {
          const int64_t col = g * q.group_size + j;
          if (j >= q.group_size || col >= q.k) break;
          const int64_t c = j / kChunkCols, b = j % kChunkCols;
          uint8_t& byte = cg[c * kChunkBytes + 4 * r + (b & 3)];
          byte |= uint8_t((src[col] & 0xF) << (b < 4 ? 0 : 4));
        }
      }
    }
  }
  if (!q.pre_quant_scale.empty()) p.pre_quant_scale = q.pre_quant_scale;
  if (!q.bias.empty()) p.bias = q.bias;
  return p;
}

// ---- helpers shared by the reference and the SIMD drivers (internal.h) ----

void pack_activations_f32(const PackedLinear& w, const void* x, DType xt, int64_t m0, int64_t m1, float* dst) {
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
      // Round to nearest even by adding and subtracting 1.5·2^23 (exact for |v| < 2^22, as nearbyint
      // in the default rounding mode, without a libm call; needs no -ffast-math, which we never use).
      constexpr float kMagic = 12582912.f;
      for (int64_t j = 0; j < w.group; ++j) {
        const float t = xg[j] * inv + kMagic;  // no reassociation without -ffast-math
        float r = t - kMagic;
        r = std::min(127.f, std::max(-127.f, r));
        am[g * w.group + j] = int8_t(r);
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
