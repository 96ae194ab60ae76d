// GGUF Q4_0 / Q4_1 / Q4_K tensors -> QuantLinear (see gguf_linear.h for the mapping).
#include "awq/gguf_linear.h"

#include <cstring>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/gguf_blocks.h"

namespace awq {
using namespace gguf_detail;

namespace {

template <class B>
B load_block(const uint8_t* p) {
  B b;
  std::memcpy(&b, p, sizeof(B));
  return b;
}

// Q4_0 and Q4_1 store element j of a 32-block in the low nibble of qs[j], j + 16 in the high one.
void split_nibbles32(const uint8_t* qs, uint8_t* codes) {
  for (int j = 0; j < 16; ++j) {
    codes[j] = qs[j] & 0xF;
    codes[j + 16] = qs[j] >> 4;
  }
}

void read_q4_0(const uint8_t* src, int64_t blocks, QuantLinear& q) {
  for (int64_t b = 0; b < blocks; ++b) {
    const auto blk = load_block<BlockQ4_0>(src + size_t(b) * sizeof(BlockQ4_0));
    q.scales[size_t(b)] = f16_to_f32(blk.d);
    split_nibbles32(blk.qs, q.codes.data() + size_t(b) * 32);
  }
}

void read_q4_1(const uint8_t* src, int64_t blocks, QuantLinear& q) {
  for (int64_t b = 0; b < blocks; ++b) {
    const auto blk = load_block<BlockQ4_1>(src + size_t(b) * sizeof(BlockQ4_1));
    q.scales[size_t(b)] = f16_to_f32(blk.d);
    q.scaled_zeros[size_t(b)] = f16_to_f32(blk.m);
    split_nibbles32(blk.qs, q.codes.data() + size_t(b) * 32);
  }
}

// One super-block of 256 = 8 groups of 32: groups 2i and 2i+1 take the low and high nibbles of
// qs[32i .. 32i+31]; group j's scale d·sc_j and offset −dmin·m_j as ggml's dequantize_row_q4_K
// forms them (f32 products).
void read_q4_k(const uint8_t* src, int64_t blocks, QuantLinear& q) {
  for (int64_t b = 0; b < blocks; ++b) {
    const auto blk = load_block<BlockQ4_K>(src + size_t(b) * sizeof(BlockQ4_K));
    const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
    uint8_t* codes = q.codes.data() + size_t(b) * kQK_K;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      q4k_scale_min(j, blk.scales, &sc, &m);
      q.scales[size_t(b * 8 + j)] = d * float(sc);
      q.scaled_zeros[size_t(b * 8 + j)] = -(dmin * float(m));
      const uint8_t* qs = blk.qs + 32 * (j / 2);
      for (int l = 0; l < 32; ++l) codes[j * 32 + l] = (j % 2 == 0) ? (qs[l] & 0xF) : (qs[l] >> 4);
    }
  }
}

}  // namespace

bool gguf_maps_to_quant_linear(GgmlType t) { return t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q4_K; }

QuantLinear gguf_quant_linear(const GgufTensorInfo& t, const std::string& file, const std::string& module) {
  if (!gguf_maps_to_quant_linear(t.type))
    fail(file, t.name, "type " + ggml_type_name(t.type) + " has no exact 4-bit kernel layout (q4_0, q4_1 and q4_K do)");
  if (t.ne.size() != 2) fail(file, t.name, "expected a 2-D weight, found " + t.shape_str());
  const auto info = ggml_type_info(uint32_t(t.type));
  const int64_t k = t.ne[0], n = t.ne[1];
  if (k <= 0 || n <= 0 || k % info->block_size != 0)
    fail(file, t.name, "row length " + std::to_string(k) + " is not a positive multiple of " + std::to_string(info->block_size));
  if (t.nbytes != ggml_nbytes(t.type, n * k)) fail(file, t.name, "byte size does not match its shape");
  QuantLinear q;
  q.name = module;
  q.format = "gguf-" + ggml_type_name(t.type);
  q.n = n;
  q.k = k;
  q.bits = 4;
  q.group_size = 32;
  q.n_groups = k / 32;
  q.codes.resize(size_t(n) * size_t(k));
  q.scales.resize(size_t(n) * size_t(q.n_groups));
  const int64_t blocks = n * k / info->block_size;  // rows hold whole blocks: row-major blocks = row-major groups
  switch (t.type) {
    case GgmlType::Q4_0:
      q.zero_mode = ZeroMode::kSymmetric;
      q.scale_dtype = DType::F16;
      read_q4_0(t.data, blocks, q);
      break;
    case GgmlType::Q4_1:
      q.zero_mode = ZeroMode::kScaledFma;
      q.scale_dtype = DType::F16;
      q.scaled_zeros.resize(q.scales.size());
      read_q4_1(t.data, blocks, q);
      break;
    default:  // Q4_K
      q.zero_mode = ZeroMode::kScaledFma;
      q.scale_dtype = DType::F32;
      q.scaled_zeros.resize(q.scales.size());
      read_q4_k(t.data, blocks, q);
      break;
  }
  q.validate();
  return q;
}

}  // namespace awq
