// Packers, one per target layout; each mirrors its reader in src/formats (see the layout comments
// there and docs/formats.md §3, §4, §5, §7, §8).
#include "convert/pack.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "awq/error.h"
#include "awq/formats.h"

namespace awq::convert_detail {
namespace {

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // nibble i holds column 8c + kAwqOrder[i]

[[noreturn]] void refuse(const std::string& module, const std::string& why) { throw NotRepresentable(where("", module, why)); }

void put_u32(std::string& b, size_t i, uint32_t v) { std::memcpy(b.data() + 4 * i, &v, 4); }
void put_float(std::string& b, DType t, size_t i, float v) { store_float(reinterpret_cast<uint8_t*>(b.data()), t, i, v); }

int64_t wz_of(const ModuleShape& s) { return awq_zeros_width(s.k, s.group_size); }

float z_at(const QuantLinear& q, int64_t n, int64_t g) { return float(q.zeros[size_t(n * q.n_groups + g)]); }
float s_at(const QuantLinear& q, int64_t n, int64_t g) { return q.scales[size_t(n * q.n_groups + g)]; }
int32_t zi(const QuantLinear& q, int64_t n, int64_t g) { return q.zeros[size_t(n * q.n_groups + g)]; }

// GEMV_fast's stored scaled zero: the source's own when it has one, else RNE(−(s·z)) in the scale dtype.
float scaled_zero(const QuantLinear& q, int64_t n, int64_t g) {
  if (!q.scaled_zeros.empty()) return q.scaled_zeros[size_t(n * q.n_groups + g)];
  const float v = -(s_at(q, n, g) * z_at(q, n, g));
  uint8_t b[4];
  store_float(b, q.scale_dtype, 0, v);
  return load_float(b, q.scale_dtype, 0);
}

void pack_gemm(const QuantLinear& q, std::vector<std::string>& out) {
  const int64_t words = q.n / 8;
  std::string qw(size_t(q.k * words) * 4, '\0'), qz(size_t(q.n_groups * words) * 4, '\0'),
      sc(size_t(q.n_groups * q.n) * dtype_size(q.scale_dtype), '\0');
  // Blocked over 16 input columns: each word gathers 8 rows, so walk rows in 16-byte runs.
  for (int64_t k0 = 0; k0 < q.k; k0 += 16) {
    const int64_t k1 = std::min(q.k, k0 + 16);
    for (int64_t c = 0; c < words; ++c) {
      const uint8_t* rows[8];
      for (int i = 0; i < 8; ++i) rows[i] = q.codes.data() + size_t((8 * c + kAwqOrder[i]) * q.k);
      for (int64_t k = k0; k < k1; ++k) {
        uint32_t w = 0;
        for (int i = 0; i < 8; ++i) w |= uint32_t(rows[i][k]) << (4 * i);
        put_u32(qw, size_t(k * words + c), w);
      }
    }
  }
  for (int64_t g = 0; g < q.n_groups; ++g) {
    for (int64_t c = 0; c < words; ++c) {
      uint32_t w = 0;
      for (int i = 0; i < 8; ++i) w |= uint32_t(zi(q, 8 * c + kAwqOrder[i], g)) << (4 * i);
      put_u32(qz, size_t(g * words + c), w);
    }
    for (int64_t n = 0; n < q.n; ++n) put_float(sc, q.scale_dtype, size_t(g * q.n + n), s_at(q, n, g));
  }
  out = {qw, qz, sc};
}

void pack_gemv(const QuantLinear& q, const ModuleShape& s, std::vector<std::string>& out) {
  const int64_t words = q.k / 8, wz = wz_of(s);
  std::string qw(size_t(q.n * words) * 4, '\0'), qz(size_t(q.n * wz) * 4, '\0'),
      sc(size_t(q.n * 8 * wz) * dtype_size(q.scale_dtype), '\0');
  for (int64_t n = 0; n < q.n; ++n) {
    for (int64_t c = 0; c < words; ++c) {
      uint32_t w = 0;
      for (int i = 0; i < 8; ++i) w |= uint32_t(q.codes[size_t(n * q.k + 8 * c + i)]) << (4 * i);
      put_u32(qw, size_t(n * words + c), w);
    }
    for (int64_t c = 0; c < wz; ++c) {
      uint32_t w = 0;
      for (int j = 0; j < 8 && 8 * c + j < q.n_groups; ++j) w |= uint32_t(zi(q, n, 8 * c + j)) << (4 * j);
      put_u32(qz, size_t(n * wz + c), w);
    }
    for (int64_t g = 0; g < q.n_groups; ++g) put_float(sc, q.scale_dtype, size_t(n * 8 * wz + g), s_at(q, n, g));
  }
  out = {qw, qz, sc};
}

void pack_gemv_fast(const QuantLinear& q, const ModuleShape& s, std::vector<std::string>& out) {
  const int64_t rows = 8 * wz_of(s);
  std::string qw(size_t(q.n / 4 * q.k) * 2, '\0'), sc(size_t(rows * q.n) * dtype_size(q.scale_dtype), '\0'), sz = sc;
  for (int64_t i = 0; i < q.n / 4; ++i)
    for (int64_t col = 0; col < q.k; ++col) {
      const int64_t j = col / 64, r = (col % 64) / 16, ww = col % 16, n = 4 * i + r;
      uint16_t w = 0;
      for (int v = 0; v < 4; ++v) {
        const int64_t k = 64 * j + 32 * (ww >> 3) + 8 * v + (ww & 7);
        w = uint16_t(w | (uint16_t(q.codes[size_t(n * q.k + k)]) << (4 * v)));
      }
      std::memcpy(qw.data() + 2 * size_t(i * q.k + col), &w, 2);
    }
  for (int64_t g = 0; g < q.n_groups; ++g)
    for (int64_t n = 0; n < q.n; ++n) {
      put_float(sc, q.scale_dtype, size_t(g * q.n + n), s_at(q, n, g));
      put_float(sz, q.scale_dtype, size_t(g * q.n + n), scaled_zero(q, n, g));
    }
  out = {qw, sz, sc};
}

// AutoGPTQ packs pf = 32 / bits values per int32 (8 at 4 bits, 4 at 8 bits, 16 at 2 bits),
// sequentially: qweight along K, qzeros along N (see src/formats/gptq.cc).
void pack_gptq(const QuantLinear& q, bool v2, std::vector<std::string>& out) {
  const int pf = 32 / q.bits, b = q.bits;
  const uint32_t mask = (1u << b) - 1;
  const int64_t words = q.n / pf, kw = q.k / pf;
  std::string qw(size_t(kw * q.n) * 4, '\0'), qz(size_t(q.n_groups * words) * 4, '\0'),
      sc(size_t(q.n_groups * q.n) * dtype_size(q.scale_dtype), '\0'), gi(size_t(q.k) * 4, '\0');
  // Blocked over 8 packed rows: each output row is read 8·pf bytes at a time.
  for (int64_t r0 = 0; r0 < kw; r0 += 8) {
    const int64_t r1 = std::min(kw, r0 + 8);
    for (int64_t n = 0; n < q.n; ++n) {
      const uint8_t* row = q.codes.data() + size_t(n * q.k);
      for (int64_t r = r0; r < r1; ++r) {
        uint32_t w = 0;
        for (int i = 0; i < pf; ++i) w |= uint32_t(row[pf * r + i]) << (b * i);
        put_u32(qw, size_t(r * q.n + n), w);
      }
    }
  }
  for (int64_t g = 0; g < q.n_groups; ++g) {
    for (int64_t c = 0; c < words; ++c) {
      uint32_t w = 0;
      for (int i = 0; i < pf; ++i) {
        const int32_t z = zi(q, pf * c + i, g);
        if (!v2 && z == 0)
          refuse(q.name, "output row " + std::to_string(8 * c + i) + ", group " + std::to_string(g) +
                             " has zero point 0, which GPTQ v1 (stored z - 1) cannot hold: the packer's -1 would corrupt the whole "
                             "int32 word. Use --gptq-format v2");
        w |= (uint32_t(v2 ? z : z - 1) & mask) << (b * i);
      }
      put_u32(qz, size_t(g * words + c), w);
    }
    for (int64_t n = 0; n < q.n; ++n) put_float(sc, q.scale_dtype, size_t(g * q.n + n), s_at(q, n, g));
  }
  for (int64_t k = 0; k < q.k; ++k) put_u32(gi, size_t(k), uint32_t(q.group_of(k)));
  out = {qw, qz, sc, gi};
}

// compressed-tensors pack_to_int32: pf = 32 / num_bits values per int32 (8 at 4 bits, 4 at 8),
// sequential; weight_packed along K (dim 1), weight_zero_point along N (dim 0).
void pack_ct(const QuantLinear& q, bool symmetric, bool act_order, std::vector<std::string>& out) {
  const int pf = 32 / q.bits, b = q.bits;
  const int64_t kw = (q.k + pf - 1) / pf, nw = (q.n + pf - 1) / pf;
  std::string wp(size_t(q.n * kw) * 4, '\0'), sc(size_t(q.n * q.n_groups) * dtype_size(q.scale_dtype), '\0'), shape(16, '\0'),
      zp(size_t(nw * q.n_groups) * 4, '\0'), gi(size_t(q.k) * 4, '\0');
  for (int64_t n = 0; n < q.n; ++n) {
    for (int64_t c = 0; c < kw; ++c) {
      uint32_t w = 0;
      for (int i = 0; i < pf && pf * c + i < q.k; ++i) w |= uint32_t(q.codes[size_t(n * q.k + pf * c + i)]) << (b * i);
      put_u32(wp, size_t(n * kw + c), w);
    }
    for (int64_t g = 0; g < q.n_groups; ++g) put_float(sc, q.scale_dtype, size_t(n * q.n_groups + g), s_at(q, n, g));
  }
  const int64_t dims[2] = {q.n, q.k};
  std::memcpy(shape.data(), dims, 16);
  out = {wp, sc, shape};
  if (!symmetric) {
    for (int64_t r = 0; r < nw; ++r)
      for (int64_t g = 0; g < q.n_groups; ++g) {
        uint32_t w = 0;
        for (int i = 0; i < pf && pf * r + i < q.n; ++i) w |= uint32_t(zi(q, pf * r + i, g)) << (b * i);
        put_u32(zp, size_t(r * q.n_groups + g), w);
      }
    out.push_back(zp);
  } else {
    for (int64_t n = 0; n < q.n; ++n)
      for (int64_t g = 0; g < q.n_groups; ++g)
        if (zi(q, n, g) != 1 << (q.bits - 1))
          refuse(q.name, "output row " + std::to_string(n) + ", group " + std::to_string(g) + " has zero point " +
                             std::to_string(zi(q, n, g)) + ", which a symmetric compressed-tensors checkpoint cannot hold");
  }
  if (act_order) {
    for (int64_t k = 0; k < q.k; ++k) put_u32(gi, size_t(k), uint32_t(q.group_of(k)));
    out.push_back(gi);
  }
}

// ModelOpt W4A16_AWQ: weight U8 [N/2, K], byte (p, k) = row 2p low nibble, row 2p+1 high nibble,
// two's complement q = code − 8 (symmetric only); weight_scale F32 [N, K/G]; pre_quant_scale [K].
void pack_modelopt(const QuantLinear& q, const ModuleShape& s, std::vector<std::string>& out) {
  const int32_t mid = 1 << (q.bits - 1);
  for (size_t i = 0; i < q.zeros.size(); ++i)
    if (q.zeros[i] != mid)
      refuse(q.name, "output row " + std::to_string(i / size_t(q.n_groups)) + ", group " + std::to_string(i % size_t(q.n_groups)) +
                         " has zero point " + std::to_string(q.zeros[i]) +
                         ": ModelOpt W4A16_AWQ is symmetric only (no zero point); use --requantize or another target");
  std::string w(size_t(q.n / 2 * q.k), '\0'), sc(size_t(q.n * q.n_groups) * 4, '\0');
  for (int64_t p = 0; p < q.n / 2; ++p)
    for (int64_t k = 0; k < q.k; ++k) {
      const uint8_t lo = uint8_t(q.codes[size_t(2 * p * q.k + k)] - mid) & 0xF, hi = uint8_t(q.codes[size_t((2 * p + 1) * q.k + k)] - mid) & 0xF;
      w[size_t(p * q.k + k)] = char(lo | (hi << 4));
    }
  for (size_t i = 0; i < q.scales.size(); ++i) put_float(sc, DType::F32, i, q.scales[i]);
  out = {w, sc};
  if (s.has_pqs) {
    std::string pq(size_t(q.k) * dtype_size(s.pqs_dtype), '\0');
    for (int64_t k = 0; k < q.k; ++k) put_float(pq, s.pqs_dtype, size_t(k), q.pre_quant_scale[size_t(k)]);
    out.push_back(pq);
  }
}

}  // namespace

std::string bits_refusal(const TargetSpec& t, int bits) {
  const bool ok = t.target == Target::kGptq ? (bits == 2 || bits == 4 || bits == 8)
                  : t.target == Target::kCompressedTensors ? (bits == 4 || bits == 8)
                                                           : bits == 4;
  if (ok) return "";
  const char* holds = t.target == Target::kGptq ? "2, 4 or 8" : t.target == Target::kCompressedTensors ? "4 or 8" : "only 4";
  return std::to_string(bits) + "-bit modules cannot be stored in this layout (it holds " + holds +
         "-bit codes); use --requantize to re-quantize them to 4 bits (RTN), or convert to " +
         (bits == 8 ? "gptq or compressed-tensors (both hold 8 bits)" : "gptq");
}

std::string shape_refusal(const TargetSpec& t, const ModuleShape& s) {
  auto need = [&](bool ok, const std::string& why) { return ok ? std::string() : why; };
  std::string r;
  switch (t.target) {
    case Target::kGemm:
      return need(s.n % 8 == 0 && s.k % s.group_size == 0, "AutoAWQ GEMM needs out_features % 8 == 0 and in_features % group size == 0 (N = " +
                                                              std::to_string(s.n) + ", K = " + std::to_string(s.k) + ")");
    case Target::kGemv:
    case Target::kGemvFast:
      if (wz_of(s) <= 0 || s.k % s.group_size) return "group size " + std::to_string(s.group_size) + " is not one the GEMV layouts support (32, 64, >= 128 dividing K)";
      if (t.target == Target::kGemv) return need(s.k % 8 == 0, "AutoAWQ GEMV needs in_features % 8 == 0 (K = " + std::to_string(s.k) + ")");
      return need(s.n % 4 == 0 && s.k % 64 == 0, "GEMV_fast needs out_features % 4 == 0 and in_features % 64 == 0 (N = " + std::to_string(s.n) +
                                                      ", K = " + std::to_string(s.k) + ")");
    case Target::kGptq: {
      const int64_t pf = 32 / s.bits;
      return need(s.n % pf == 0 && s.k % pf == 0, "GPTQ at " + std::to_string(s.bits) + " bits needs in_features and out_features divisible by " +
                                                     std::to_string(pf) + " (N = " + std::to_string(s.n) + ", K = " + std::to_string(s.k) + ")");
    }
    case Target::kCompressedTensors:
      return r;
    case Target::kModelOpt:
      return need(s.n % 2 == 0, "ModelOpt packs pairs of output rows: out_features must be even (N = " + std::to_string(s.n) + ")");
  }
  return r;
}

std::vector<TensorSpec> module_specs(const TargetSpec& t, const ModuleShape& s) {
  const std::string& m = s.name;
  const DType sd = s.scale_dtype;
  const int64_t ng = s.n_groups;
  switch (t.target) {
    case Target::kGemm:
      return {{m + ".qweight", DType::I32, {s.k, s.n / 8}}, {m + ".qzeros", DType::I32, {ng, s.n / 8}}, {m + ".scales", sd, {ng, s.n}}};
    case Target::kGemv: {
      const int64_t wz = wz_of(s);
      return {{m + ".qweight", DType::I32, {s.n, s.k / 8}}, {m + ".qzeros", DType::I32, {s.n, wz}}, {m + ".scales", sd, {s.n, 8 * wz}}};
    }
    case Target::kGemvFast: {
      const int64_t rows = 8 * wz_of(s);
      return {{m + ".qweight", DType::I16, {s.n / 4, s.k}}, {m + ".qzeros", sd, {rows, s.n}}, {m + ".scales", sd, {rows, s.n}}};
    }
    case Target::kGptq: {
      const int64_t pf = 32 / s.bits;
      return {{m + ".qweight", DType::I32, {s.k / pf, s.n}}, {m + ".qzeros", DType::I32, {ng, s.n / pf}}, {m + ".scales", sd, {ng, s.n}},
              {m + ".g_idx", DType::I32, {s.k}}};
    }
    case Target::kCompressedTensors: {
      const int64_t pf = 32 / s.bits;
      std::vector<TensorSpec> v = {{m + ".weight_packed", DType::I32, {s.n, (s.k + pf - 1) / pf}}, {m + ".weight_scale", sd, {s.n, ng}},
                                   {m + ".weight_shape", DType::I64, {2}}};
      if (!t.symmetric) v.push_back({m + ".weight_zero_point", DType::I32, {(s.n + pf - 1) / pf, ng}});
      if (s.has_g_idx) v.push_back({m + ".weight_g_idx", DType::I32, {s.k}});
      return v;
    }
    case Target::kModelOpt: {
      std::vector<TensorSpec> v = {{m + ".weight", DType::U8, {s.n / 2, s.k}}, {m + ".weight_scale", DType::F32, {s.n, ng}}};
      if (s.has_pqs) v.push_back({m + ".pre_quant_scale", s.pqs_dtype, {s.k}});
      return v;
    }
  }
  return {};
}

QuantLinear to_integer_zeros(const QuantLinear& src) {
  QuantLinear q = src;
  const int32_t hi = (1 << q.bits) - 1;
  if (q.zero_mode == ZeroMode::kSymmetric) {
    q.zeros.assign(q.scales.size(), 1 << (q.bits - 1));
  } else if (q.zero_mode == ZeroMode::kScaledFma) {
    q.zeros.resize(q.scales.size());
    for (size_t i = 0; i < q.scales.size(); ++i) {
      const float s = q.scales[i], sz = q.scaled_zeros[i];
      const double zr = s != 0 ? std::nearbyint(-double(sz) / double(s)) : 0.0;
      uint8_t b[4];
      store_float(b, q.scale_dtype, 0, -(s * float(zr)));
      if (!(zr >= 0 && zr <= hi) || load_float(b, q.scale_dtype, 0) != sz)
        refuse(q.name, "group " + std::to_string(i % size_t(q.n_groups)) + " of output row " + std::to_string(i / size_t(q.n_groups)) +
                           ": scaled zero " + std::to_string(sz) + " is not -scale x z for an integer z in [0, " + std::to_string(hi) +
                           "] (scale " + std::to_string(s) + "), so no integer zero point reproduces it");
      q.zeros[i] = int32_t(zr);
    }
  }
  q.zero_mode = ZeroMode::kInteger;
  for (size_t i = 0; i < q.zeros.size(); ++i)
    if (q.zeros[i] < 0 || q.zeros[i] > hi)
      refuse(q.name, "zero point " + std::to_string(q.zeros[i]) + " at group " + std::to_string(i % size_t(q.n_groups)) + " of output row " +
                         std::to_string(i / size_t(q.n_groups)) + " is outside [0, " + std::to_string(hi) + "]");
  return q;
}

std::vector<std::string> pack_module(const TargetSpec& t, const QuantLinear& q, const ModuleShape& s) {
  if (!q.pre_quant_scale.empty() && t.target != Target::kModelOpt)
    refuse(q.name, "has a pre_quant_scale (ModelOpt AWQ), which the target layouts cannot store; fold it into the previous layer first");
  if (const std::string why = bits_refusal(t, q.bits); !why.empty()) refuse(q.name, why);
  if (q.bits != s.bits) refuse(q.name, std::to_string(q.bits) + "-bit module planned as " + std::to_string(s.bits) + "-bit (internal error)");
  if (q.act_order() != s.has_g_idx && t.target == Target::kCompressedTensors)
    refuse(q.name, "g_idx changed between planning and packing");
  if (t.target == Target::kModelOpt && q.pre_quant_scale.empty() != !s.has_pqs) refuse(q.name, "pre_quant_scale changed between planning and packing");
  if (t.target != Target::kGptq && t.target != Target::kCompressedTensors && q.act_order())
    refuse(q.name, "act-order g_idx (columns grouped out of order) cannot be represented in a layout without g_idx");
  std::vector<std::string> out;
  switch (t.target) {
    case Target::kGemm: pack_gemm(q, out); break;
    case Target::kGemv: pack_gemv(q, s, out); break;
    case Target::kGemvFast: pack_gemv_fast(q, s, out); break;
    case Target::kGptq: pack_gptq(q, t.gptq_v2, out); break;
    case Target::kCompressedTensors: pack_ct(q, t.symmetric, s.has_g_idx, out); break;
    case Target::kModelOpt: pack_modelopt(q, s, out); break;
  }
  return out;
}

double max_fma_difference(const QuantLinear& iq) {
  QuantLinear f = iq;
  f.zero_mode = ZeroMode::kScaledFma;
  f.scaled_zeros.resize(iq.scales.size());
  for (int64_t n = 0; n < iq.n; ++n)
    for (int64_t g = 0; g < iq.n_groups; ++g) f.scaled_zeros[size_t(n * iq.n_groups + g)] = scaled_zero(iq, n, g);
  QuantLinear i = iq;
  i.pre_quant_scale.clear();
  f.pre_quant_scale.clear();
  const DType dt = iq.scale_dtype;
  std::vector<uint8_t> a(size_t(iq.k) * dtype_size(dt)), b(a.size());
  double worst = 0;
  for (int64_t r = 0; r < iq.n; ++r) {
    dequantize_rows_ref(i, dt, r, r + 1, a.data());
    dequantize_rows_ref(f, dt, r, r + 1, b.data());
    for (int64_t c = 0; c < iq.k; ++c)
      worst = std::max(worst, std::fabs(double(load_float(a.data(), dt, size_t(c))) - double(load_float(b.data(), dt, size_t(c)))));
  }
  return worst;
}

}  // namespace awq::convert_detail
