// AWQ on one decoder layer (internal to quant/): calibration activations, the layer's f32 forward,
// the per-group scale search and the clip search. docs/quantize.md describes the algorithm.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "awq/model_config.h"
#include "awq/model_dir.h"
#include "awq/quantize.h"
#include "quant/group_quant.h"
#include "quant/layer.h"

namespace awq {
class ThreadPool;
}

namespace awq::quant_detail {

// Hidden states of the calibration blocks: [blocks·len][hidden], f32.
struct Activations {
  int64_t blocks = 0, len = 0, hidden = 0;
  std::vector<float> x;
};

// Embedding rows of the calibration tokens (the first layer's input).
Activations embed_blocks(const ModelDir& dir, const ModelConfig& cfg, const std::vector<std::vector<int32_t>>& blocks);

// What one layer's forward saw: the inputs of q/k/v (after input_layernorm), of o_proj, of
// gate/up (after post_attention_layernorm) and of down_proj; [tokens][features] each.
struct LayerInputs {
  std::vector<float> qkv_in, o_in, mlp_in, down_in;
};

// Runs layer L (its current weights, f32) on `act` in place: each block is one causal sequence at
// positions 0..len−1. Fills `in` when given.
void layer_forward(const ModelConfig& cfg, const LayerTensors& L, Activations& act, LayerInputs* in, ThreadPool& pool);

struct GroupLog {
  std::string group;   // "qkv", "o", "gate_up", "down"
  std::string choice;  // "identity", "x", "duo"
  double alpha = 0, loss_rtn = 0, loss_best = 0;
};
struct ClipLog {
  std::string linear;
  double loss_before = 0, loss_after = 0, mean_ratio = 1;
};
struct LayerLog {
  std::vector<GroupLog> groups;
  std::vector<ClipLog> clips;
};

struct AwqParams {
  QParams q;
  int64_t group_size = 128;
  ScaleFormula formula = ScaleFormula::kDuo;
  int grid = 20;
  bool identity = true, clip = true, asym_clip = true;
  int64_t seq_len = 512;  // calibration block length (tokens = blocks · seq_len)
};

// Searches and applies AWQ scales for layer L given its inputs (from the unmodified layer), then
// searches clip ratios; L's weights, norms and clip ratios are updated in place.
LayerLog awq_layer(const ModelConfig& cfg, LayerTensors& L, const LayerInputs& in, int64_t tokens, const AwqParams& p,
                   ThreadPool& pool);

// --- exposed for tests -------------------------------------------------------------------------
// One scale candidate: s[c] from the per-channel statistics (x_mean, w_mean) by `formula` and α,
// normalised so sqrt(max·min) = 1. formula kXOnly or kDuo.
std::vector<float> scale_candidate(const std::vector<float>& x_mean, const std::vector<float>& w_mean, ScaleFormula formula,
                                   double alpha);
// Q(W·diag(s))·diag(s)⁻¹ of one [n][k] weight into out (w is read only).
void fake_quant_scaled(const float* w, int64_t n, int64_t k, const float* s, int64_t group_size, const QParams& q,
                       float* out, ThreadPool& pool);
// Σ over rows of ΔW·G·ΔWᵀ / tokens / n, ΔW = Wq − W (the Gram form of ‖ΔW·X‖² / elements).
double gram_loss(const float* wq, const float* w, int64_t n, int64_t k, const std::vector<float>& gram, int64_t tokens,
                 ThreadPool& pool);

}  // namespace awq::quant_detail
