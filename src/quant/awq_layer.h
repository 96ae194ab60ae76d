// AWQ on one decoder layer (internal to quant/): calibration activations, the layer's f32 forward,
// the per-group scale search and the clip search. docs/quantize.md describes the algorithm.
#pragma once
#include <array>
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
// gate/up (after post_attention_layernorm) and of down_proj; [tokens][features] each. attn_out:
// self_attn's output [tokens][hidden] (the q/k/v search's reference; empty: recomputed).
// (7B shape, 32 768 tokens: 0.5 GB each, down_in 1.4 GB.)
struct LayerInputs {
  std::vector<float> qkv_in, o_in, mlp_in, down_in, attn_out;
};

// User + system CPU seconds of this process so far (all threads).
double process_cpu_seconds();

// Runs layer L (its current weights, f32) on `act` in place: each block is one causal sequence at
// positions 0..len−1. Fills `in` when given.
void layer_forward(const ModelConfig& cfg, const LayerTensors& L, Activations& act, LayerInputs* in, ThreadPool& pool);

struct Trial {
  std::string kind;  // "identity", "x", "duo"
  double alpha = 0;
  // The group's loss (full search: every trial; fast search: NaN for the candidates the proxy did
  // not pass on). proxy: the fast search's ranking loss (NaN in the full search).
  double loss = 0, proxy = 0;
};
struct GroupLog {
  std::string group;   // "qkv", "o", "gate_up", "down"
  std::string choice;  // "identity", "x", "duo"
  double alpha = 0, loss_rtn = 0, loss_best = 0;
  std::vector<Trial> trials;  // every grid point in candidate order
  int evaluated = 0;          // candidates whose (faithful) loss was computed
  double seconds = 0;         // wall time of this group's search
  double cpu_seconds = 0;     // process CPU seconds of it (all threads: the steadier figure on a shared machine)
};
struct ClipLog {
  std::string linear;
  double loss_before = 0, loss_after = 0, mean_ratio = 1;
};
struct LayerLog {
  std::vector<GroupLog> groups;
  double gram_seconds = 0, clip_seconds = 0;  // wall time of the XᵀX accumulations and of clip/sensitivity
  double gram_cpu_seconds = 0;                // process CPU seconds of the XᵀX accumulations
  std::vector<ClipLog> clips;
  // Per linear (LayerLinear order), when AwqParams::sensitivity: relative output error of its
  // final quantization on the calibration inputs, ‖ΔW·X‖² / ‖W·X‖² (clip ratios applied); NaN for
  // linears kept dense.
  std::array<double, kLinears> rel_error{};
  // When AwqParams::keep_grams: XᵀX of the q/k/v, o, gate/up and down inputs, divided by the
  // applied scales (the Gram matrices of the scaled linears' inputs), for GPTQ rounding.
  std::array<std::vector<float>, 4> grams;
};

// How a scaling group's candidates are ranked (docs/quantize.md "Fast search").
//   kFull: every candidate's faithful loss (the sub-module's output over all calibration tokens).
//   kFast: every candidate's proxy loss, the Gram form Σ_i ‖ΔW_i·X‖² over the group's linears (all
//   tokens through XᵀX; at most proxy_rows rows of each linear, evenly spaced); then the faithful
//   loss of the `refine` best by proxy (q/k/v: refine_attn) and of s ≡ 1; for gate/up on at most
//   loss_tokens evenly spaced tokens, for q/k/v on at most attn_loss_tokens (whole blocks, evenly
//   spaced). For o/down the proxy with all rows is the faithful loss itself.
enum class SearchMode : uint8_t { kFull, kFast };

struct AwqParams {
  QParams q;
  int64_t group_size = 128;
  ScaleFormula formula = ScaleFormula::kDuo;
  int grid = 20;
  SearchMode mode = SearchMode::kFull;
  int refine = 3, refine_attn = 9;
  int64_t loss_tokens = 8192, attn_loss_tokens = int64_t(1) << 40, proxy_rows = 1024;
  // Fast search, q/k/v: candidates ranked by their faithful loss on this many tokens (whole blocks,
  // evenly spaced) instead of the Gram proxy, when fewer than attn_loss_tokens' blocks.
  int64_t attn_screen_tokens = int64_t(1) << 40;
  bool identity = true, clip = true, asym_clip = true;
  // q/k/v candidates' projections on the int16 kernels (trial_gemm.h) where the codes are 4-bit;
  // false: f32 GEMMs on the dequantized trial weights.
  bool int16_trials = true;
  bool search = true;        // false: no scale search (RTN weights; clip and sensitivity only)
  bool sensitivity = false;  // fill LayerLog::rel_error
  bool keep_grams = false;   // fill LayerLog::grams
  int64_t seq_len = 512;     // calibration block length (tokens = blocks · seq_len)
  // Rows per piece of the q/k/v and gate/up losses (q/k/v: whole blocks, at least one): their
  // buffers are sized for this many tokens, never for all; the losses have the same bits for any
  // value (awq_forward.h kChunkTokens).
  int64_t chunk_tokens = 2048;
};

// Searches and applies AWQ scales for layer L given its inputs (from the unmodified layer), then
// searches clip ratios; L's weights, norms and clip ratios are updated in place. With p.search
// false the scales are skipped; with p.sensitivity the final relative errors are measured.
LayerLog awq_layer(const ModelConfig& cfg, LayerTensors& L, const LayerInputs& in, int64_t tokens, const AwqParams& p,
                   ThreadPool& pool);
// The same, consuming `in`: each input is freed as soon as nothing left reads it (down_in and o_in
// after their Gram matrices, qkv_in and attn_out after the q/k/v search, mlp_in after gate/up), so
// the layer's peak memory does not hold all five to the end. Same result.
LayerLog awq_layer(const ModelConfig& cfg, LayerTensors& L, LayerInputs&& in, int64_t tokens, const AwqParams& p, ThreadPool& pool);

// --- exposed for tests -------------------------------------------------------------------------
// One scale candidate: s[c] from the per-channel statistics (x_mean, w_mean) by `formula` and α,
// normalised so sqrt(max·min) = 1. formula kXOnly or kDuo.
std::vector<float> scale_candidate(const std::vector<float>& x_mean, const std::vector<float>& w_mean, ScaleFormula formula,
                                   double alpha);
// Q(W·diag(s))·diag(s)⁻¹ of one [n][k] weight into out (w is read only).
void fake_quant_scaled(const float* w, int64_t n, int64_t k, const float* s, int64_t group_size, const QParams& q,
                       float* out, ThreadPool& pool);
// Per-channel mean |x| of x [T][k] (f32 result, double sums).
std::vector<float> x_mean(const std::vector<float>& x, int64_t T, int64_t k);
// AutoAWQ's weight statistic of a scaling group (linears `lins` of L, same in_features): mean over
// all their rows of |w| / (max |w| of its quantization group + 1e-6).
std::vector<float> w_mean(const LayerTensors& L, const std::vector<int>& lins, int64_t group_size);
// MSE of two equal-length vectors: per chunk of 2^16 elements, 8 double sums (element i into sum
// i mod 8) added in order, then the chunks' sums in chunk order (the same bits with or without a pool, for any thread count).
double mse(const std::vector<float>& a, const std::vector<float>& b, ThreadPool* pool = nullptr);
// Σ over rows of ΔW·G·ΔWᵀ, ΔW = Wq − W (the Gram form of ‖ΔW·X‖², G = XᵀX).
double gram_sum(const float* wq, const float* w, int64_t n, int64_t k, const std::vector<float>& gram, ThreadPool& pool);
// m (clamped to [1, n]) evenly spaced indices of [0, n): i·n/m, i < m.
std::vector<int64_t> spread(int64_t n, int64_t m);
// Rows `rows` of x [..][k], in that order.
std::vector<float> gather_rows(const float* x, int64_t k, const std::vector<int64_t>& rows);
// gram_sum / tokens / n (the Gram form of ‖ΔW·X‖² / elements).
double gram_loss(const float* wq, const float* w, int64_t n, int64_t k, const std::vector<float>& gram, int64_t tokens,
                 ThreadPool& pool);

}  // namespace awq::quant_detail
