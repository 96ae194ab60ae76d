// The f32 decoder-layer forward AWQ calibrates on (transformers' Llama/Mistral/Qwen2/Qwen3 layer),
// on the runtime's kernels (model_ops.h, kernels.h).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>

#include "awq/error.h"
#include "awq/kernels.h"
#include "awq/model_ops.h"
#include "awq/thread_pool.h"
#include "quant/awq_forward.h"

namespace awq::quant_detail {

Activations embed_blocks(const ModelDir& dir, const ModelConfig& cfg, const std::vector<std::vector<int32_t>>& blocks) {
  const TensorView& e = dir.get(cfg.names.embed);
  Activations a;
  a.blocks = int64_t(blocks.size());
  a.len = blocks.empty() ? 0 : int64_t(blocks[0].size());
  a.hidden = cfg.hidden;
  a.x.resize(size_t(a.blocks * a.len * a.hidden));
  size_t t = 0;
  for (const auto& b : blocks)
    for (int32_t id : b) {
      if (id < 0 || id >= e.dim(0)) fail(dir.path(), e.name, "calibration token id " + std::to_string(id) + " is outside the vocabulary");
      for (int64_t c = 0; c < a.hidden; ++c) a.x[t * size_t(a.hidden) + size_t(c)] = load_float(e.data, e.dtype, size_t(id * a.hidden + c));
      ++t;
    }
  return a;
}

namespace {
std::atomic<Compute> g_compute{Compute::kF32};
}  // namespace

Compute compute_mode() { return g_compute.load(std::memory_order_relaxed); }
ComputeScope::ComputeScope(Compute c) : saved_(g_compute.exchange(c)) {}
ComputeScope::~ComputeScope() { g_compute.store(saved_); }

void linear(const float* w, const std::vector<float>& b, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool& pool) {
  if (compute_mode() == Compute::kBf16) kernels::bf16_gemm(x, m, w, n, k, y, &pool);
  else kernels::dense_f32_gemm_tall(w, n, k, x, m, y, &pool);
  if (!b.empty())
    pool.run(m, [&](int64_t t, int) {
      for (int64_t j = 0; j < n; ++j) y[t * n + j] += b[size_t(j)];
    });
}

void self_attention(const ModelConfig& cfg, const float* wq, const float* wk, const float* wv, const float* wo, const LayerTensors& L,
                    const float* a, int64_t blocks, int64_t len, float* o_in, float* out, ThreadPool& pool, AttnBuffers* buf) {
  const int64_t T = blocks * len, qd = cfg.heads * cfg.head_dim, kd = cfg.kv_heads * cfg.head_dim;
  AttnBuffers local;
  AttnBuffers& B = buf ? *buf : local;
  B.q.resize(size_t(T * qd));
  B.k.resize(size_t(T * kd));
  B.v.resize(size_t(T * kd));
  linear(wq, L.b[0], qd, cfg.hidden, a, T, B.q.data(), pool);
  linear(wk, L.b[1], kd, cfg.hidden, a, T, B.k.data(), pool);
  linear(wv, L.b[2], kd, cfg.hidden, a, T, B.v.data(), pool);
  attend(cfg, L, {B.q.data(), qd, B.k.data(), kd, B.v.data(), kd}, false, blocks, len, wo, o_in, out, pool, &B);
}

void attend(const ModelConfig& cfg, const LayerTensors& L, const QkvRows& r, bool add_bias, int64_t blocks, int64_t len, const float* wo,
            float* o_in, float* out, ThreadPool& pool, AttnBuffers* buf) {
  const int64_t T = blocks * len, hd = cfg.head_dim, qd = cfg.heads * hd, group = cfg.heads / cfg.kv_heads;
  const auto table = kernels::make_rope_table(rope_inv_freq(hd, cfg.rope_theta, cfg.rope_scaling), len);
  pool.run(T, [&](int64_t t, int) {
    float* qt = r.q + t * r.qs;
    float* kt = r.k + t * r.ks;
    if (add_bias) {
      const std::pair<float*, int> parts[3] = {{qt, 0}, {kt, 1}, {r.v + t * r.vs, 2}};
      for (const auto& [p, i] : parts)
        for (size_t j = 0; j < L.b[size_t(i)].size(); ++j) p[j] += L.b[size_t(i)][j];
    }
    if (cfg.qk_norm) {
      for (int64_t h = 0; h < cfg.heads; ++h) kernels::rms_norm(qt + h * hd, L.q_norm.data(), hd, float(cfg.rms_eps), qt + h * hd);
      for (int64_t h = 0; h < cfg.kv_heads; ++h) kernels::rms_norm(kt + h * hd, L.k_norm.data(), hd, float(cfg.rms_eps), kt + h * hd);
    }
    const int64_t pos = t % len;
    kernels::rope(qt, cfg.heads, hd, table.cos(pos), table.sin(pos));
    kernels::rope(kt, cfg.kv_heads, hd, table.cos(pos), table.sin(pos));
  });
  // Per block and KV head, as blocked GEMMs (kernels::causal_attention: score and value tiles of
  // several query rows, no per-key horizontal sums); under Compute::kBf16 on bf16-rounded inputs as
  // the linears (causal_attention_bf16: AMX-BF16 tiles where they run).
  const float scale = 1.0f / std::sqrt(float(hd));
  const bool bf16 = compute_mode() == Compute::kBf16;
  AttnBuffers local;
  AttnBuffers& B = buf ? *buf : local;
  B.scratch.resize(size_t(pool.size()));
  for (auto& sc : B.scratch)
    sc.resize(bf16 ? kernels::causal_attention_bf16_scratch(len, group, hd) : kernels::causal_attention_scratch(len, hd));
  const auto attention = bf16 ? kernels::causal_attention_bf16 : kernels::causal_attention;
  pool.run(blocks * cfg.kv_heads, [&](int64_t task, int th) {
    const int64_t b = task / cfg.kv_heads, h = task % cfg.kv_heads;
    attention(r.q + b * len * r.qs + h * group * hd, r.qs, group, hd, r.k + b * len * r.ks + h * hd,
                              r.v + b * len * r.vs + h * hd, r.ks, len, cfg.sliding_window, scale, o_in + b * len * qd + h * group * hd, qd,
                              B.scratch[size_t(th)].data());
  });
  linear(wo, L.b[3], cfg.hidden, qd, o_in, T, out, pool);
}

void mlp(const ModelConfig& cfg, const float* wg, const float* wu, const float* wd, const LayerTensors& L, const float* m, int64_t T,
         float* down_in, float* out, ThreadPool& pool) {
  const int64_t I = cfg.intermediate;
  std::vector<float> u(static_cast<size_t>(T * I));
  linear(wg, L.b[4], I, cfg.hidden, m, T, down_in, pool);
  linear(wu, L.b[5], I, cfg.hidden, m, T, u.data(), pool);
  pool.run(T, [&](int64_t t, int) { kernels::silu_mul(down_in + t * I, u.data() + t * I, I, down_in + t * I); });
  linear(wd, L.b[6], cfg.hidden, I, down_in, T, out, pool);
}

void rms_rows(const float* x, const std::vector<float>& w, int64_t T, int64_t h, float eps, float* y, ThreadPool& pool) {
  pool.run(T, [&](int64_t t, int) { kernels::rms_norm(x + t * h, w.data(), h, eps, y + t * h); });
}

void layer_forward(const ModelConfig& cfg, const LayerTensors& L, Activations& act, LayerInputs* in, ThreadPool& pool) {
  const int64_t T = act.blocks * act.len, H = cfg.hidden, qd = cfg.heads * cfg.head_dim;
  LayerInputs local;
  LayerInputs& I = in ? *in : local;
  I.qkv_in.resize(size_t(T * H));
  I.o_in.resize(size_t(T * qd));
  I.mlp_in.resize(size_t(T * H));
  I.down_in.resize(size_t(T * cfg.intermediate));
  std::vector<float> out(static_cast<size_t>(T * H));
  rms_rows(act.x.data(), L.attn_norm, T, H, float(cfg.rms_eps), I.qkv_in.data(), pool);
  self_attention(cfg, L.w[0].data(), L.w[1].data(), L.w[2].data(), L.w[3].data(), L, I.qkv_in.data(), act.blocks, act.len,
                 I.o_in.data(), out.data(), pool);
  for (size_t i = 0; i < out.size(); ++i) act.x[i] += out[i];
  if (in) I.attn_out = out;
  rms_rows(act.x.data(), L.mlp_norm, T, H, float(cfg.rms_eps), I.mlp_in.data(), pool);
  mlp(cfg, L.w[4].data(), L.w[5].data(), L.w[6].data(), L, I.mlp_in.data(), T, I.down_in.data(), out.data(), pool);
  for (size_t i = 0; i < out.size(); ++i) act.x[i] += out[i];
}

}  // namespace awq::quant_detail
