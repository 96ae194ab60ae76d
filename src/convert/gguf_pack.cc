// QuantLinear -> ggml blocks (gguf_pack.h). Block layouts: src/io/gguf_blocks.h.
#include "convert/gguf_pack.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/gguf_arch.h"
#include "awq/gguf_blocks.h"

namespace awq::convert_detail {
using namespace gguf_detail;

namespace {

[[noreturn]] void refuse(const std::string& module, const std::string& why) { fail("", module, why); }

uint16_t h(float x) { return f32_to_f16(x); }

template <class B>
void put_block(std::string& out, const B& b) {
  out.append(reinterpret_cast<const char*>(&b), sizeof b);
}

// The f16 value d and 6-bit integers c[j] minimizing max_j |d·c[j] − t[j]| over a few candidate
// d near max(t)/63 (t[j] >= 0; negative targets cannot be represented and clamp to 0).
uint16_t fit_6bit(const float t[8], uint8_t c[8]) {
  float mx = 0;
  for (int j = 0; j < 8; ++j) mx = std::max(mx, t[j]);
  if (!(mx > 0)) {
    std::fill(c, c + 8, uint8_t(0));
    return 0;
  }
  uint16_t best = 0;
  double best_err = INFINITY;
  for (int den = 63; den >= 56; --den) {
    const uint16_t dh = h(mx / float(den));
    const float d = f16_to_f32(dh);
    if (!(d > 0) || !std::isfinite(d)) continue;
    for (int nudge = -2; nudge <= 2; ++nudge) {  // neighbouring f16 values
      const uint16_t dh2 = uint16_t(int(dh) + nudge);
      const float d2 = f16_to_f32(dh2);
      if (!(d2 > 0) || !std::isfinite(d2)) continue;
      double err = 0;
      for (int j = 0; j < 8; ++j) {
        const float cj = std::clamp(std::nearbyint(t[j] / d2), 0.0f, 63.0f);
        err = std::max(err, std::fabs(double(d2) * cj - double(t[j])));
      }
      if (err < best_err) {
        best_err = err;
        best = dh2;
      }
    }
  }
  const float d = f16_to_f32(best);
  for (int j = 0; j < 8; ++j) c[j] = uint8_t(std::clamp(std::nearbyint(t[j] / d), 0.0f, 63.0f));
  return best;
}

}  // namespace

std::string pack_ggml(const QuantLinear& q, GgmlType type, int64_t row_begin, int64_t row_end) {
  if (row_end < 0) row_end = q.n;
  if (q.zero_mode != ZeroMode::kInteger) refuse(q.name, "internal error: pack_ggml needs integer zero points");
  if (!q.pre_quant_scale.empty()) refuse(q.name, "has a pre_quant_scale (ModelOpt AWQ), which GGUF cannot store");
  for (size_t c = 0; c < q.g_idx.size(); ++c)
    if (q.g_idx[c] != int32_t(int64_t(c) / q.group_size)) refuse(q.name, "act-order g_idx cannot be represented in GGUF blocks");
  if (q.group_size % 32 != 0) refuse(q.name, "group size " + std::to_string(q.group_size) + " is not a multiple of 32 (ggml's block)");
  if (q.k % 32 != 0) refuse(q.name, "in_features " + std::to_string(q.k) + " is not a multiple of 32");
  const auto s_at = [&](int64_t r, int64_t c) { return q.scales[size_t(r * q.n_groups + c / q.group_size)]; };
  const auto z_at = [&](int64_t r, int64_t c) { return q.zeros[size_t(r * q.n_groups + c / q.group_size)]; };
  std::string out;
  out.reserve(ggml_nbytes(type, (row_end - row_begin) * q.k));
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* code = q.codes.data() + size_t(r * q.k);
    switch (type) {
      case GgmlType::Q4_0:
      case GgmlType::Q4_1: {
        if (q.bits != 4) refuse(q.name, std::to_string(q.bits) + "-bit codes do not fit " + ggml_type_name(type));
        for (int64_t c0 = 0; c0 < q.k; c0 += 32) {
          const float s = s_at(r, c0);
          const int32_t z = z_at(r, c0);
          uint8_t qs[16];
          for (int j = 0; j < 16; ++j) qs[j] = uint8_t((code[c0 + j] & 0xF) | ((code[c0 + j + 16] & 0xF) << 4));
          if (type == GgmlType::Q4_0) {
            if (z != 8) refuse(q.name, "zero point " + std::to_string(z) + " in row " + std::to_string(r) + " is not 8: not symmetric, use Q4_1");
            BlockQ4_0 b;
            b.d = h(s);
            std::memcpy(b.qs, qs, 16);
            put_block(out, b);
          } else {
            BlockQ4_1 b;
            b.d = h(s);
            b.m = h(-(float(z) * s));  // exact in f32 (11-bit mantissa x 4-bit integer), one f16 rounding
            std::memcpy(b.qs, qs, 16);
            put_block(out, b);
          }
        }
        break;
      }
      case GgmlType::Q8_0: {
        if (q.bits != 8) refuse(q.name, std::to_string(q.bits) + "-bit codes are not Q8_0");
        for (int64_t c0 = 0; c0 < q.k; c0 += 32) {
          if (z_at(r, c0) != 128) refuse(q.name, "8-bit zero point " + std::to_string(z_at(r, c0)) + " is not 128: Q8_0 is symmetric");
          BlockQ8_0 b;
          b.d = h(s_at(r, c0));
          for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(int(code[c0 + j]) - 128);
          put_block(out, b);
        }
        break;
      }
      case GgmlType::Q4_K: {
        if (q.bits != 4) refuse(q.name, std::to_string(q.bits) + "-bit codes do not fit Q4_K");
        if (q.k % 256 != 0) refuse(q.name, "in_features " + std::to_string(q.k) + " is not a multiple of Q4_K's 256");
        for (int64_t c0 = 0; c0 < q.k; c0 += 256) {
          float sc_t[8], m_t[8];
          for (int j = 0; j < 8; ++j) {
            const float s = s_at(r, c0 + 32 * j);
            sc_t[j] = s;
            m_t[j] = float(z_at(r, c0 + 32 * j)) * s;
            if (s < 0) refuse(q.name, "negative scale in row " + std::to_string(r) + ": Q4_K's 6-bit scales are unsigned; use --gguf-type q4_1");
          }
          uint8_t sc[8], m[8];
          BlockQ4_K b;
          b.d = fit_6bit(sc_t, sc);
          b.dmin = fit_6bit(m_t, m);
          q4k_pack_scale_min(sc, m, b.scales);
          for (int i = 0; i < 4; ++i)
            for (int l = 0; l < 32; ++l)
              b.qs[32 * i + l] = uint8_t((code[c0 + 64 * i + l] & 0xF) | ((code[c0 + 64 * i + 32 + l] & 0xF) << 4));
          put_block(out, b);
        }
        break;
      }
      default: refuse(q.name, "internal error: no packer for " + ggml_type_name(type));
    }
  }
  return out;
}

void quantize_q8_0_ref(const float* x, int64_t n, uint8_t* out) {
  for (int64_t i = 0; i < n / 32; ++i) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i * 32 + j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ8_0 b;
    b.d = h(d);
    for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(std::round(x[i * 32 + j] * id));  // roundf: half away from zero
    std::memcpy(out + size_t(i) * sizeof b, &b, sizeof b);
  }
}

std::string encode_dense(const std::vector<float>& x, GgmlType type) {
  std::string out(ggml_nbytes(type, int64_t(x.size())), '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  switch (type) {
    case GgmlType::F32: std::memcpy(p, x.data(), x.size() * 4); break;
    case GgmlType::F16:
      for (size_t i = 0; i < x.size(); ++i) store_float(p, DType::F16, i, x[i]);
      break;
    case GgmlType::BF16:
      for (size_t i = 0; i < x.size(); ++i) store_float(p, DType::BF16, i, x[i]);
      break;
    case GgmlType::Q8_0: quantize_q8_0_ref(x.data(), int64_t(x.size()), p); break;
    default: throw Error("internal error: no dense encoder for " + ggml_type_name(type));
  }
  return out;
}

std::string permute_rows(const std::string& data, int64_t rows, int64_t heads) {
  if (heads <= 0 || rows % heads != 0 || (rows / heads) % 2 != 0 || data.size() % size_t(rows) != 0)
    throw Error("internal error: cannot permute " + std::to_string(rows) + " rows over " + std::to_string(heads) + " heads");
  const size_t row_bytes = data.size() / size_t(rows);
  std::string out(data.size(), '\0');
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out.data() + size_t(r) * row_bytes, data.data() + size_t(gguf_permuted_source_row(r, rows, heads)) * row_bytes, row_bytes);
  return out;
}

}  // namespace awq::convert_detail
