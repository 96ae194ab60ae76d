// ggml block types: sizes and the scalar reference dequantization, following ggml-quants.c's
// dequantize_row_* operation for operation (f32 products, no fused multiply-add), so the result
// is bit for bit ggml's (tests/io/gguf_test.cc checks it against golden files ggml's own code made).
#include <cstring>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/gguf_blocks.h"

namespace awq {
using namespace gguf_detail;

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t t) {
  switch (GgmlType(t)) {
    case GgmlType::F32: return GgmlTypeInfo{"f32", 1, 4, true};
    case GgmlType::F16: return GgmlTypeInfo{"f16", 1, 2, true};
    case GgmlType::BF16: return GgmlTypeInfo{"bf16", 1, 2, true};
    case GgmlType::Q4_0: return GgmlTypeInfo{"q4_0", 32, 18, true};
    case GgmlType::Q4_1: return GgmlTypeInfo{"q4_1", 32, 20, true};
    case GgmlType::Q5_0: return GgmlTypeInfo{"q5_0", 32, 22, false};
    case GgmlType::Q5_1: return GgmlTypeInfo{"q5_1", 32, 24, false};
    case GgmlType::Q8_0: return GgmlTypeInfo{"q8_0", 32, 34, true};
    case GgmlType::Q8_1: return GgmlTypeInfo{"q8_1", 32, 36, false};
    case GgmlType::Q2_K: return GgmlTypeInfo{"q2_K", 256, 84, false};
    case GgmlType::Q3_K: return GgmlTypeInfo{"q3_K", 256, 110, false};
    case GgmlType::Q4_K: return GgmlTypeInfo{"q4_K", 256, 144, true};
    case GgmlType::Q5_K: return GgmlTypeInfo{"q5_K", 256, 176, false};
    case GgmlType::Q6_K: return GgmlTypeInfo{"q6_K", 256, 210, true};
    case GgmlType::Q8_K: return GgmlTypeInfo{"q8_K", 256, 292, false};
    case GgmlType::I8: return GgmlTypeInfo{"i8", 1, 1, false};
    case GgmlType::I16: return GgmlTypeInfo{"i16", 1, 2, false};
    case GgmlType::I32: return GgmlTypeInfo{"i32", 1, 4, false};
    case GgmlType::I64: return GgmlTypeInfo{"i64", 1, 8, false};
    case GgmlType::F64: return GgmlTypeInfo{"f64", 1, 8, false};
  }
  return std::nullopt;
}

std::string ggml_type_name(GgmlType t) {
  const auto i = ggml_type_info(uint32_t(t));
  return i ? i->name : "type " + std::to_string(uint32_t(t));
}

size_t ggml_nbytes(GgmlType t, int64_t numel) {
  const auto info = ggml_type_info(uint32_t(t));
  if (!info) throw Error("unknown ggml type " + std::to_string(uint32_t(t)));
  if (numel < 0 || numel % info->block_size != 0)
    throw Error(std::to_string(numel) + " elements are not a whole number of " + info->name + " blocks of " +
                std::to_string(info->block_size));
  const uint64_t blocks = uint64_t(numel / info->block_size);
  if (blocks > UINT64_MAX / info->type_size) throw Error("tensor byte size overflows");
  return size_t(blocks * info->type_size);
}

namespace {

template <class B>
B load_block(const uint8_t* p) {
  B b;
  std::memcpy(&b, p, sizeof(B));
  return b;
}

void deq_q4_0(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK4_0) {
    const auto b = load_block<BlockQ4_0>(src + size_t(i) * sizeof(BlockQ4_0));
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int x0 = (b.qs[j] & 0x0F) - 8, x1 = (b.qs[j] >> 4) - 8;
      y[j] = float(x0) * d;
      y[j + kQK4_0 / 2] = float(x1) * d;
    }
  }
}

void deq_q4_1(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK4_1) {
    const auto b = load_block<BlockQ4_1>(src + size_t(i) * sizeof(BlockQ4_1));
    const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      const int x0 = b.qs[j] & 0x0F, x1 = b.qs[j] >> 4;
      const float p0 = float(x0) * d, p1 = float(x1) * d;  // rounded product, then the add
      y[j] = p0 + m;
      y[j + kQK4_1 / 2] = p1 + m;
    }
  }
}

void deq_q8_0(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK8_0) {
    const auto b = load_block<BlockQ8_0>(src + size_t(i) * sizeof(BlockQ8_0));
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = float(b.qs[j]) * d;
  }
}

void deq_q4_k(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ4_K>(src + size_t(i) * sizeof(BlockQ4_K));
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    const uint8_t* q = b.qs;
    for (int j = 0, is = 0; j < kQK_K; j += 64, is += 2, q += 32) {
      uint8_t sc, m;
      q4k_scale_min(is, b.scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      q4k_scale_min(is + 1, b.scales, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l) {
        const float p = d1 * float(q[l] & 0xF);
        *y++ = p - m1;
      }
      for (int l = 0; l < 32; ++l) {
        const float p = d2 * float(q[l] >> 4);
        *y++ = p - m2;
      }
    }
  }
}

void deq_q6_k(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ6_K>(src + size_t(i) * sizeof(BlockQ6_K));
    const float d = f16_to_f32(b.d);
    const uint8_t* ql = b.ql;
    const uint8_t* qh = b.qh;
    const int8_t* sc = b.scales;
    for (int n = 0; n < kQK_K; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * float(sc[is + 0]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

}  // namespace

void dequantize_ggml(GgmlType t, const uint8_t* src, int64_t n, float* dst) {
  const auto info = ggml_type_info(uint32_t(t));
  if (!info || !info->dequantizable) throw Error("dequantizing ggml type " + ggml_type_name(t) + " is not supported");
  if (n % info->block_size != 0) throw Error(std::to_string(n) + " elements are not a whole number of " + info->name + " blocks");
  const int64_t nb = n / info->block_size;
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load_float(src, DType::F16, size_t(i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load_float(src, DType::BF16, size_t(i));
      return;
    case GgmlType::Q4_0: deq_q4_0(src, nb, dst); return;
    case GgmlType::Q4_1: deq_q4_1(src, nb, dst); return;
    case GgmlType::Q8_0: deq_q8_0(src, nb, dst); return;
    case GgmlType::Q4_K: deq_q4_k(src, nb, dst); return;
    case GgmlType::Q6_K: deq_q6_k(src, nb, dst); return;
    default: break;
  }
  throw Error("dequantizing ggml type " + ggml_type_name(t) + " is not supported");
}

}  // namespace awq
