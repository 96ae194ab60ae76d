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

DenseWeight::DenseWeight(const float* w_, int64_t n_, int64_t k_, ThreadPool& pool) : w(w_), n(n_), k(k_) {
  if (compute_mode() == Compute::kBf16) packed = kernels::bf16_pack(w, n, k, &pool);
}

void linear(const DenseWeight& w, const std::vector<float>& b, const float* x, int64_t m, float* y, ThreadPool& pool) {
  if (!w.packed) return linear(w.w, b, w.n, w.k, x, m, y, pool);
  kernels::bf16_gemm(x, m, *w.packed, y, &pool);
  if (!b.empty())
    pool.run(m, [&](int64_t t, int) {
      for (int64_t j = 0; j < w.n; ++j) y[t * w.n + j] += b[size_t(j)];
    });
}

int64_t chunk_blocks(int64_t len, int64_t chunk_tokens) { return std::max<int64_t>(1, chunk_tokens / std::max<int64_t>(1, len)); }

void self_attention(const ModelConfig& cfg, const float* wq, const float* wk, const float* wv, const float* wo, const LayerTensors& L,
                    const float* a, int64_t blocks, int64_t len, float* o_in, float* out, ThreadPool& pool, AttnBuffers* buf) {
  const int64_t H = cfg.hidden, qd = cfg.heads * cfg.head_dim, kd = cfg.kv_heads * cfg.head_dim;
  AttnBuffers local;
  AttnBuffers& B = buf ? *buf : local;
  const DenseWeight Wq(wq, qd, H, pool), Wk(wk, kd, H, pool), Wv(wv, kd, H, pool), Wo(wo, H, qd, pool);
  const int64_t P = std::min(blocks, chunk_blocks(len, B.chunk_tokens));
  B.q.resize(size_t(P * len * qd));
  B.k.resize(size_t(P * len * kd));
  B.v.resize(size_t(P * len * kd));
  for (int64_t b0 = 0; b0 < blocks; b0 += P) {  // whole blocks at a time: rows are independent, blocks attend within themselves
    const int64_t nb = std::min(P, blocks - b0), r0 = b0 * len, rows = nb * len;
    linear(Wq, L.b[0], a + r0 * H, rows, B.q.data(), pool);
    linear(Wk, L.b[1], a + r0 * H, rows, B.k.data(), pool);
    linear(Wv, L.b[2], a + r0 * H, rows, B.v.data(), pool);
    attend(cfg, L, {B.q.data(), qd, B.k.data(), kd, B.v.data(), kd}, false, nb, len, Wo, o_in + r0 * qd, out + r0 * H, pool, &B);
  }
}

void attend(const ModelConfig& cfg, const LayerTensors& L, const QkvRows& r, bool add_bias, int64_t blocks, int64_t len, const float* wo,
            float* o_in, float* out, ThreadPool& pool, AttnBuffers* buf) {
  attend(cfg, L, r, add_bias, blocks, len, DenseWeight(wo, cfg.hidden, cfg.heads * cfg.head_dim, pool), o_in, out, pool, buf);
}

void attend(const ModelConfig& cfg, const LayerTensors& L, const QkvRows& r, bool add_bias, int64_t blocks, int64_t len, const DenseWeight& wo,
            float* o_in, float* out, ThreadPool& pool, AttnBuffers* buf) {
  const int64_t T = blocks * len, hd = cfg.head_dim, qd = cfg.heads * hd, group = cfg.heads / cfg.kv_heads;
  AttnBuffers local;
  AttnBuffers& B = buf ? *buf : local;
  if (!B.rope || B.rope_len != len) {
    B.rope = kernels::make_rope_table(rope_inv_freq(hd, cfg.rope_theta, cfg.rope_scaling), len);
    B.rope_len = len;
  }
  const kernels::RopeTable& table = *B.rope;
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
  linear(wo, L.b[3], o_in, T, out, pool);
}

MlpWeights::MlpWeights(const ModelConfig& cfg, const float* wg, const float* wu, const float* wd, ThreadPool& pool)
    : gate(wg, cfg.intermediate, cfg.hidden, pool), up(wu, cfg.intermediate, cfg.hidden, pool), down(wd, cfg.hidden, cfg.intermediate, pool) {}

void mlp_rows(const ModelConfig& cfg, const MlpWeights& w, const LayerTensors& L, const float* m, int64_t T, float* down_in, float* out,
              std::vector<float>& u, ThreadPool& pool) {
  const int64_t I = cfg.intermediate;
  if (u.size() < size_t(T * I)) u.resize(size_t(T * I));
  linear(w.gate, L.b[4], m, T, down_in, pool);
  linear(w.up, L.b[5], m, T, u.data(), pool);
  pool.run(T, [&](int64_t t, int) { kernels::silu_mul(down_in + t * I, u.data() + t * I, I, down_in + t * I); });
  linear(w.down, L.b[6], down_in, T, out, pool);
}

void mlp(const ModelConfig& cfg, const float* wg, const float* wu, const float* wd, const LayerTensors& L, const float* m, int64_t T,
         float* down_in, float* out, ThreadPool& pool) {
  const MlpWeights w(cfg, wg, wu, wd, pool);
  std::vector<float> u;
  for (int64_t r0 = 0; r0 < T; r0 += kChunkTokens) {
    const int64_t rows = std::min(kChunkTokens, T - r0);
    mlp_rows(cfg, w, L, m + r0 * cfg.hidden, rows, down_in + r0 * cfg.intermediate, out + r0 * cfg.hidden, u, pool);
  }
}

void MseSum::add(const float* a, const float* b, size_t n, ThreadPool* pool) {
  const auto close = [&] {
    double sum = 0;
    for (double& v : lane_) {
      sum += v;
      v = 0;
    }
    total_ += sum;
  };
  size_t i = 0;
  if (count_ % kChunk != 0) {  // the open chunk first
    const size_t m = std::min(n, kChunk - count_ % kChunk);
    for (; i < m; ++i) {
      const double d = double(a[i]) - double(b[i]);
      lane_[(count_ + i) % 8] += d * d;
    }
    count_ += m;
    if (count_ % kChunk == 0) close();
  }
  const size_t whole = (n - i) / kChunk;  // whole chunks, split over the pool, their sums added in order
  if (whole > 0) {
    std::vector<double> part(whole);
    const float *pa = a + i, *pb = b + i;
    const auto chunk = [&](int64_t c, int) {
      double acc[8] = {};
      const float *ca = pa + size_t(c) * kChunk, *cb = pb + size_t(c) * kChunk;
      for (size_t j = 0; j < kChunk; j += 8)
        for (size_t l = 0; l < 8; ++l) {
          const double d = double(ca[j + l]) - double(cb[j + l]);
          acc[l] += d * d;
        }
      double sum = 0;
      for (double v : acc) sum += v;
      part[size_t(c)] = sum;
    };
    if (pool) pool->run(int64_t(whole), chunk);
    else
      for (size_t c = 0; c < whole; ++c) chunk(int64_t(c), 0);
    for (double v : part) total_ += v;
    i += whole * kChunk;
    count_ += whole * kChunk;
  }
  for (; i < n; ++i, ++count_) {  // the rest opens a chunk
    const double d = double(a[i]) - double(b[i]);
    lane_[count_ % 8] += d * d;
  }
}

double MseSum::value() const {
  double t = total_;
  if (count_ % kChunk != 0) {
    double sum = 0;
    for (double v : lane_) sum += v;
    t += sum;
  }
  return t / double(count_);
}

void rms_rows(const float* x, const std::vector<float>& w, int64_t T, int64_t h, float eps, float* y, ThreadPool& pool) {
  pool.run(T, [&](int64_t t, int) { kernels::rms_norm(x + t * h, w.data(), h, eps, y + t * h); });
}

void layer_forward(const ModelConfig& cfg, const LayerTensors& L, Activations& act, LayerInputs* in, ThreadPool& pool) {
  const int64_t T = act.blocks * act.len, H = cfg.hidden, qd = cfg.heads * cfg.head_dim, I = cfg.intermediate;
  LayerInputs local;
  LayerInputs& In = in ? *in : local;
  In.qkv_in.resize(size_t(T * H));
  In.o_in.resize(size_t(T * qd));
  In.mlp_in.resize(size_t(T * H));
  In.down_in.resize(size_t(T * I));
  In.attn_out.resize(size_t(T * H));
  rms_rows(act.x.data(), L.attn_norm, T, H, float(cfg.rms_eps), In.qkv_in.data(), pool);
  self_attention(cfg, L.w[0].data(), L.w[1].data(), L.w[2].data(), L.w[3].data(), L, In.qkv_in.data(), act.blocks, act.len,
                 In.o_in.data(), In.attn_out.data(), pool);
  for (size_t i = 0; i < In.attn_out.size(); ++i) act.x[i] += In.attn_out[i];
  if (!in) In.attn_out = {};
  rms_rows(act.x.data(), L.mlp_norm, T, H, float(cfg.rms_eps), In.mlp_in.data(), pool);
  // The MLP in pieces of kChunkTokens rows, each piece's output added to the residual at once.
  const MlpWeights w(cfg, L.w[4].data(), L.w[5].data(), L.w[6].data(), pool);
  std::vector<float> u, out(static_cast<size_t>(std::min(T, kChunkTokens) * H));
  for (int64_t r0 = 0; r0 < T; r0 += kChunkTokens) {
    const int64_t rows = std::min(kChunkTokens, T - r0);
    mlp_rows(cfg, w, L, In.mlp_in.data() + r0 * H, rows, In.down_in.data() + r0 * I, out.data(), u, pool);
    float* x = act.x.data() + r0 * H;
    for (int64_t i = 0; i < rows * H; ++i) x[i] += out[size_t(i)];
  }
}

}  // namespace awq::quant_detail
