// Pieces of the f32 layer forward shared by the forward pass and the AWQ loss (internal).
#pragma once
#include "quant/awq_layer.h"

namespace awq::quant_detail {

// The arithmetic of the calibration's dense products: linear(), XᵀX (gram) and the Gram-form losses
// (gram_sum). kF32: f32 FMAs (kernels::dense_f32_gemm_tall, dense_f32_gemm). kBf16: inputs rounded
// to bf16, exact products summed in f32 (kernels::bf16_gemm, bf16_gram: AMX-BF16 where available).
// Process-wide, set for a run by ComputeScope (quantize_model); f32 when none is alive.
enum class Compute : uint8_t { kF32, kBf16 };
Compute compute_mode();
class ComputeScope {
 public:
  explicit ComputeScope(Compute c);
  ~ComputeScope();
  ComputeScope(const ComputeScope&) = delete;
  ComputeScope& operator=(const ComputeScope&) = delete;

 private:
  Compute saved_;
};

// y[m][n] = x·Wᵀ + b (compute_mode()'s arithmetic).
void linear(const float* w, const std::vector<float>& b, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool& pool);
// Reusable buffers of self_attention/attend (projections, attention scratch): repeated calls (the
// scale search's candidates) reuse their pages instead of faulting in fresh ones.
struct AttnBuffers {
  std::vector<float> q, k, v;
  std::vector<std::vector<float>> scratch;
};
// Self-attention of the normed input a ([blocks·len][hidden]) with the given q/k/v/o weights (L gives
// biases and q/k norms); o_in receives o_proj's input, out its output.
void self_attention(const ModelConfig& cfg, const float* wq, const float* wk, const float* wv, const float* wo, const LayerTensors& L,
                    const float* a, int64_t blocks, int64_t len, float* o_in, float* out, ThreadPool& pool, AttnBuffers* buf = nullptr);
// Projected q/k/v rows of T tokens: row t of q at q + t·qs (heads·head_dim values), of k and v at
// k + t·ks, v + t·vs (kv_heads·head_dim values each).
struct QkvRows {
  float* q;
  int64_t qs;
  float* k;
  int64_t ks;
  float* v;
  int64_t vs;
};
// self_attention after the projections: (biases of L added when add_bias), q/k norms, RoPE (rows
// modified in place), causal attention per block, o_proj (wo, L's o bias).
void attend(const ModelConfig& cfg, const LayerTensors& L, const QkvRows& r, bool add_bias, int64_t blocks, int64_t len, const float* wo,
            float* o_in, float* out, ThreadPool& pool, AttnBuffers* buf = nullptr);
// SwiGLU MLP of the normed input m; down_in receives down_proj's input, out its output.
void mlp(const ModelConfig& cfg, const float* wg, const float* wu, const float* wd, const LayerTensors& L, const float* m, int64_t T,
         float* down_in, float* out, ThreadPool& pool);

}  // namespace awq::quant_detail
