// Pieces of the f32 layer forward shared by the forward pass and the AWQ loss (internal).
#pragma once
#include "quant/awq_layer.h"

namespace awq::quant_detail {

// y[m][n] = x·Wᵀ + b.
void linear(const float* w, const std::vector<float>& b, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool& pool);
// Self-attention of the normed input a ([blocks·len][hidden]) with the given q/k/v/o weights (L gives
// biases and q/k norms); o_in receives o_proj's input, out its output.
void self_attention(const ModelConfig& cfg, const float* wq, const float* wk, const float* wv, const float* wo, const LayerTensors& L,
                    const float* a, int64_t blocks, int64_t len, float* o_in, float* out, ThreadPool& pool);
// SwiGLU MLP of the normed input m; down_in receives down_proj's input, out its output.
void mlp(const ModelConfig& cfg, const float* wg, const float* wu, const float* wd, const LayerTensors& L, const float* m, int64_t T,
         float* down_in, float* out, ThreadPool& pool);

}  // namespace awq::quant_detail
