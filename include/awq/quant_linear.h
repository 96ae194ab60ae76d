// The hub: one canonical quantized linear layer that every format reads into and writes from.
// y = (x ⊙ pre_quant_scale) · Wᵀ + bias, W[n][k] = dequant(code[n][k], group g(k) of row n).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "awq/dtype.h"

namespace awq {

// How a group's zero point enters the dequantization.
enum class ZeroMode : uint8_t {
  kSymmetric,  // no stored zero: w = s·(q − 2^(bits−1))                 (ModelOpt, CT sym, GPTQ sym keeps kInteger)
  kInteger,    // integer zero z per group: w = s·(q − z)                (AutoAWQ GEMM/GEMV, GPTQ, CT asym)
  kScaledFma,  // stored scaled zero sz = −s·z per group: w = q·s + sz   (AutoAWQ GEMV_fast / llm-awq v3)
};

struct QuantLinear {
  std::string name;    // module name, e.g. "model.layers.0.mlp.down_proj"
  std::string format;  // source format name ("autoawq-gemm", ...)
  int64_t n = 0;       // out_features (rows of W)
  int64_t k = 0;       // in_features (columns of W)
  int bits = 4;
  int64_t group_size = 0;  // input columns per group; == k when per_channel
  bool per_channel = false;
  int64_t n_groups = 0;    // groups per row (scale columns); ceil(k / group_size) unless g_idx says more

  std::vector<uint8_t> codes;  // [n][k] unsigned codes in [0, 2^bits)

  ZeroMode zero_mode = ZeroMode::kInteger;
  DType scale_dtype = DType::F16;  // stored precision; values below hold it exactly
  std::vector<float> scales;       // [n][n_groups]
  std::vector<int32_t> zeros;      // [n][n_groups] in the code domain (kInteger); may exceed 2^bits−1 (GPTQ v1 +1)
  std::vector<float> scaled_zeros; // [n][n_groups] (kScaledFma), stored in scale_dtype

  std::vector<int32_t> g_idx;  // [k] group of each input column; empty means k / group_size

  DType pqs_dtype = DType::F16;
  std::vector<float> pre_quant_scale;  // [k], optional (ModelOpt AWQ)

  DType bias_dtype = DType::F16;
  std::vector<float> bias;  // [n], optional

  int64_t group_of(int64_t col) const { return g_idx.empty() ? col / group_size : g_idx[size_t(col)]; }
  int32_t zero_at(int64_t row, int64_t g) const {
    return zero_mode == ZeroMode::kInteger ? zeros[size_t(row * n_groups + g)] : (1 << (bits - 1));
  }
  // Act-order (GPTQ desc_act): g_idx groups the input columns out of their natural order
  // col / group_size. False for an empty or natural g_idx. The one test every layer uses.
  bool act_order() const { return is_act_order(g_idx, group_size); }
  // The same test on a stored g_idx (any integer type), before a QuantLinear exists.
  template <class Int>
  static bool is_act_order(const std::vector<Int>& g_idx, int64_t group_size) {
    if (group_size <= 0) return !g_idx.empty();
    for (size_t c = 0; c < g_idx.size(); ++c)
      if (int64_t(g_idx[c]) != int64_t(c) / group_size) return true;
    return false;
  }
  // Checks internal consistency (sizes, code range, g_idx range); throws awq::Error naming the module.
  void validate() const;
};

// Reference dequantization (scalar, kept forever): writes W[n][k] row-major in `out` dtype
// (F16, BF16 or F32). Products in f32, one rounding to the output dtype:
//   kInteger/kSymmetric: s·(q − z) [· pqs[k]];   kScaledFma: q·s + sz [· pqs[k]].
void dequantize_ref(const QuantLinear& q, DType out, uint8_t* dst);
// Same for rows [row_begin, row_end) only; dst points at the first of those rows.
void dequantize_rows_ref(const QuantLinear& q, DType out, int64_t row_begin, int64_t row_end, uint8_t* dst);

}  // namespace awq
