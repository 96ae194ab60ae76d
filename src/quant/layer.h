// One decoder layer's weights in f32, as quantize works on them (internal to quant/).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "awq/model_config.h"
#include "awq/model_dir.h"

namespace awq::quant_detail {

constexpr int kLinears = 7;
inline int li(LayerLinear l) { return int(l); }

struct LayerTensors {
  int64_t layer = 0;
  std::array<std::vector<float>, kLinears> w;  // [n][k] row-major
  std::array<std::vector<float>, kLinears> b;  // bias [n] or empty
  std::array<int64_t, kLinears> n{}, k{};
  std::array<bool, kLinears> dense{};          // kept dense (modules_to_not_convert)
  std::vector<float> attn_norm, mlp_norm, q_norm, k_norm;
  // Per (row, group) clip ratios applied to the group's min and max (empty: 1).
  std::array<std::vector<float>, kLinears> clip_lo, clip_hi;
  bool attn_norm_changed = false, mlp_norm_changed = false, v_bias_changed = false;
};

// Reads layer `layer` of `dir` into f32. Non-finite weights: awq::Error naming the tensor, row and
// group (group_size columns per group), or, with `zero_nonfinite`, replaced by 0 and counted.
LayerTensors load_layer(const ModelDir& dir, const ModelConfig& cfg, int64_t layer, int64_t group_size,
                        bool zero_nonfinite, size_t* zeroed);

// A stored tensor as f32 (F32, BF16 or F16).
std::vector<float> tensor_f32(const TensorView& t);

}  // namespace awq::quant_detail
