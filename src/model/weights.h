// The runtime's weights (internal to src/model/): linear layers in the kernels' layout, norms,
// embeddings, loaded from a ModelDir by the names ModelConfig gives.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "awq/formats.h"
#include "awq/kernels.h"
#include "awq/model_config.h"
#include "awq/model_dir.h"

namespace awq::model {

// Work (weight bytes × activation rows) below which a linear runs on the calling thread alone.
inline constexpr size_t kMinParallelBytes = size_t(256) << 10;

// One linear layer y = x·Wᵀ + b: 4-bit (packed) or dense (F32, BF16 or F16 weights, in place in
// the mapped file when aligned to their size, else an owned copy).
struct Linear {
  std::string name;
  int64_t n = 0, k = 0;
  std::optional<kernels::PackedLinear> packed;
  DType dtype = DType::F32;                // dense weights' dtype (F32, BF16 or F16)
  const void* w = nullptr;                 // dense [n][k]
  std::vector<float> owned_f32;
  std::vector<uint16_t> owned_16;         // BF16 or F16
  std::vector<float> bias;                 // dense only; packed carries its own

  // y[m][n] = x[m][k]·Wᵀ + bias; on the calling thread alone when weight bytes × m is below
  // kMinParallelBytes × serial_scale.
  void apply(const float* x, int64_t m, float* y, kernels::Path path, ThreadPool& pool, double serial_scale) const;
  size_t weight_bytes() const;
};

// Linears that read the same input, outputs concatenated: y[m][Σn] (q|k|v, gate|up). One part when
// the loader could fuse them into one packed matrix (one kernel call), else one per linear.
struct LinearGroup {
  std::vector<Linear> parts;
  int64_t n = 0, k = 0;
  // tmp: scratch of m·max(part n) floats, used only when there are several parts.
  void apply(const float* x, int64_t m, float* y, float* tmp, kernels::Path path, ThreadPool& pool,
             double serial_scale) const;
};

struct LayerWeights {
  std::vector<float> attn_norm, mlp_norm, q_norm, k_norm;
  LinearGroup qkv, o, gate_up, down;
};

struct Weights {
  std::unique_ptr<ModelDir> dir;
  std::unique_ptr<FormatReader> reader;  // null for a dense checkpoint
  const TensorView* embed = nullptr;     // [vocab][hidden], any float dtype
  std::vector<float> final_norm;
  Linear lm_head;
  std::vector<LayerWeights> layers;
  bool quantized = false;
};

// Loads every weight the config names; throws awq::Error naming the file and tensor. With
// with_layers false the decoder layers are left out (Weights::layers stays empty): they are read
// one at a time by load_layer (a model streaming its layers through a LayerCache).
Weights load_weights(const std::string& path, const ModelConfig& cfg, bool with_layers = true);

// Reads and repacks decoder layer `i` alone. Safe to call from several threads at once (it only
// reads the checkpoint). Throws what load_weights throws.
LayerWeights load_layer(const Weights& w, const ModelConfig& cfg, int64_t i);
// Bytes a loaded layer holds in memory (packed weights, owned dense copies, norms).
size_t layer_bytes(const LayerWeights& l);

}  // namespace awq::model
