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
#include "awq/gguf.h"
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

// Token embeddings [vocab][hidden]: rows of a dense tensor (F32, BF16 or F16), or of a GGUF tensor
// of any type dequantize_ggml reads (one row dequantized per lookup, as ggml's get_rows does).
struct Embedding {
  const uint8_t* data = nullptr;
  DType dtype = DType::F32;       // dense rows
  std::optional<GgmlType> ggml;   // set: GGUF block rows of row_bytes each
  size_t row_bytes = 0;
  // Row `id` (checked by the caller) as `hidden` floats into dst.
  void row(int64_t id, int64_t hidden, float* dst) const;
};

struct Weights {
  std::unique_ptr<ModelDir> dir;         // a checkpoint directory, or
  std::unique_ptr<GgufFile> gguf;        // a GGUF file
  std::unique_ptr<FormatReader> reader;  // null for a dense checkpoint
  Embedding embed;
  std::vector<float> final_norm;
  Linear lm_head;
  std::vector<LayerWeights> layers;
  bool quantized = false;
  std::vector<std::string> notes;  // how the weights were loaded (GGUF: per block type), for the user
};

// Loads every weight the config names; throws awq::Error naming the file and tensor. With
// with_layers false the decoder layers are left out (Weights::layers stays empty): they are read
// one at a time by load_layer (a model streaming its layers through a LayerCache).
Weights load_weights(const std::string& path, const ModelConfig& cfg, bool with_layers = true);

// Reads and repacks decoder layer `i` alone, from a checkpoint directory or a GGUF file. Safe to
// call from several threads at once (it only reads the checkpoint). Throws what loading throws.
LayerWeights load_layer(const Weights& w, const ModelConfig& cfg, int64_t i);
// Bytes a loaded layer holds in memory (packed weights, owned dense copies, norms).
size_t layer_bytes(const LayerWeights& l);

// Loads every weight the config names from a GGUF file (gguf_weights.cc): Q4_0/Q4_1/Q4_K linears
// repacked for the 4-bit kernels (gguf_linear.h), every other type dense (F32/F16/BF16 in place,
// the rest dequantized as ggml does to f32); llama-family q/k rows un-permuted back to Hugging
// Face's order. Throws awq::Error naming the file and tensor. With with_layers false the decoder
// layers are left out, to be read one at a time by load_layer (streaming, as load_weights).
Weights load_gguf_weights(std::unique_ptr<GgufFile> file, const ModelConfig& cfg, bool with_layers = true);
LayerWeights load_gguf_layer(const Weights& w, const ModelConfig& cfg, int64_t i);

// Shared by both loaders: whether two linears can be stacked into one packed matrix, the stacking
// (q|k|v, gate|up), and a packed Linear.
bool same_quantization(const QuantLinear& a, const QuantLinear& b);
QuantLinear concat_rows(std::vector<QuantLinear>& parts);
Linear packed_linear(const QuantLinear& q);

}  // namespace awq::model
