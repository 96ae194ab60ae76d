// Pieces of the f32 layer forward shared by the forward pass and the AWQ loss (internal).
#pragma once
#include <optional>

#include "awq/kernels.h"
#include "awq/model_ops.h"
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

// y[m][n] = x·Wᵀ + b (compute_mode()'s arithmetic). Each output row depends only on its input
// row (one sum per output in a fixed order), so running the rows in pieces gives the same bits.
void linear(const float* w, const std::vector<float>& b, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool& pool);
// A linear's weight prepared once for many linear() calls (the chunked evaluations): with
// Compute::kBf16 packed for kernels::bf16_gemm (as linear() packs it on every call), else w itself.
// The same bits as linear() on w. w must outlive it and not change.
struct DenseWeight {
  DenseWeight(const float* w, int64_t n, int64_t k, ThreadPool& pool);
  const float* w;
  int64_t n, k;
  std::optional<kernels::Bf16Matrix> packed;
};
void linear(const DenseWeight& w, const std::vector<float>& b, const float* x, int64_t m, float* y, ThreadPool& pool);

// Tokens per piece of the chunked evaluations (forward, q/k/v and gate/up losses): their scratch
// is sized for this many rows (whole blocks for attention), never for all calibration tokens.
inline constexpr int64_t kChunkTokens = 2048;
// Whole blocks of `len` tokens per piece: chunk_tokens / len, at least 1.
int64_t chunk_blocks(int64_t len, int64_t chunk_tokens);

// Reusable buffers of self_attention/attend (projections, attention scratch, RoPE table): repeated
// calls (the scale search's candidates) reuse their pages instead of faulting in fresh ones.
// chunk_tokens: self_attention projects and attends this many tokens (whole blocks) at a time.
struct AttnBuffers {
  std::vector<float> q, k, v;
  std::vector<std::vector<float>> scratch;
  std::optional<kernels::RopeTable> rope;  // for rope_len positions
  int64_t rope_len = -1;
  int64_t chunk_tokens = kChunkTokens;
};
// Self-attention of the normed input a ([blocks·len][hidden]) with the given q/k/v/o weights (L gives
// biases and q/k norms); o_in receives o_proj's input, out its output. Runs in pieces of whole
// blocks (buf->chunk_tokens); the same bits for any piece size.
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
void attend(const ModelConfig& cfg, const LayerTensors& L, const QkvRows& r, bool add_bias, int64_t blocks, int64_t len, const DenseWeight& wo,
            float* o_in, float* out, ThreadPool& pool, AttnBuffers* buf = nullptr);
void attend(const ModelConfig& cfg, const LayerTensors& L, const QkvRows& r, bool add_bias, int64_t blocks, int64_t len, const float* wo,
            float* o_in, float* out, ThreadPool& pool, AttnBuffers* buf = nullptr);

// The SwiGLU MLP's weights (gate, up, down) prepared once, and its per-piece scratch.
struct MlpWeights {
  MlpWeights(const ModelConfig& cfg, const float* wg, const float* wu, const float* wd, ThreadPool& pool);
  DenseWeight gate, up, down;
};
// The MLP on the T rows of m, in one piece: down_in receives down_proj's input [T][I], out its
// output [T][hidden]; u: scratch, grown to T·I when smaller (reused across calls).
void mlp_rows(const ModelConfig& cfg, const MlpWeights& w, const LayerTensors& L, const float* m, int64_t T, float* down_in, float* out,
              std::vector<float>& u, ThreadPool& pool);
// SwiGLU MLP of the normed input m; down_in receives down_proj's input, out its output. Runs in
// pieces of kChunkTokens rows (the same bits as one piece).
void mlp(const ModelConfig& cfg, const float* wg, const float* wu, const float* wd, const LayerTensors& L, const float* m, int64_t T,
         float* down_in, float* out, ThreadPool& pool);

// mse()'s sum fed in pieces: add() takes the next n elements of both sequences, in order; value()
// equals mse() of the concatenations bit for bit (per 2^16-element chunk 8 double sums, element i
// into sum i mod 8, added in order; the chunks' sums in chunk order), for any piece sizes.
class MseSum {
 public:
  static constexpr size_t kChunk = size_t(1) << 16;
  void add(const float* a, const float* b, size_t n, ThreadPool* pool = nullptr);
  double value() const;  // sum / count (NaN when empty)
  size_t count() const { return count_; }

 private:
  double total_ = 0;      // the closed chunks' sums, in order
  double lane_[8] = {};   // the open chunk's 8 sums
  size_t count_ = 0;      // elements added; count_ % kChunk of them in the open chunk
};

}  // namespace awq::quant_detail
