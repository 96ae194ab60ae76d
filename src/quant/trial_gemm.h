// Scale-search candidates on the quantized int16 kernels (internal to quant/; docs/quantize.md
// "Fast search"). A candidate s's trial weights are Q(W·diag(s))·diag(s)⁻¹ (fake_quant_scaled), so
//   x·trialᵀ = (x·diag(1/s))·Q(W·s)ᵀ:
// the codes of W·s with their f16 scales and integer zeros are packed as a 4-bit linear with 1/s as
// its pre_quant_scale, and kernels::gemm runs it on Path::kInt16 (AMX-INT8 tiles where available):
// activations rounded to 16 bits per (row, group), relative error ~3e-5 against the f32 product of
// the dequantized trial, the same bits for any thread count.
#pragma once
#include <vector>

#include "awq/kernels.h"
#include "quant/awq_forward.h"

namespace awq::quant_detail {

// Whether candidates of linears with k input columns can run on the int16 kernels: 4-bit codes and
// whole groups.
bool trial_gemm_usable(const QParams& q, int64_t k, int64_t group_size);

// Q(W_i·diag(s)) of the linears `lins` of L (same k), their rows concatenated in that order, packed
// with pre_quant_scale 1/s (s null: s ≡ 1, none). L's weights are only read.
kernels::PackedLinear pack_trial(const LayerTensors& L, const std::vector<int>& lins, const float* s, int64_t group_size,
                                 const QParams& q, ThreadPool& pool);

// self_attention with the candidate's q/k/v (one int16 GEMM over the three, biases added in f32)
// and L's dense o_proj; o_in and out as self_attention's. `qkv`: the projections' buffer, reused.
void self_attention_trial(const ModelConfig& cfg, const LayerTensors& L, const float* s, int64_t group_size, const QParams& q,
                          const float* a, int64_t blocks, int64_t len, float* o_in, float* out, ThreadPool& pool,
                          std::vector<float>& qkv, AttnBuffers* buf = nullptr);
// The same with the candidate already packed (pack_trial(L, {0, 1, 2}, ...)) and o_proj prepared: the
// chunked q/k/v loss packs a candidate once and runs it on pieces of blocks.
void self_attention_trial(const ModelConfig& cfg, const LayerTensors& L, const kernels::PackedLinear& w, const DenseWeight& wo,
                          const float* a, int64_t blocks, int64_t len, float* o_in, float* out, ThreadPool& pool, std::vector<float>& qkv,
                          AttnBuffers* buf = nullptr);

}  // namespace awq::quant_detail
