// The runtime: a decoder-only model loaded from a checkpoint directory, its forward pass on our
// kernels, a KV cache for several sequences at once, and a sampler.
//
// Weights: quantized linears (any format `inspect` reads, or a GGUF file's Q4_0/Q4_1/Q4_K) are repacked at load into the kernels'
// layout (kernels.h), never expanded to a dense copy; dense linears (f32, bf16 or f16, read in
// place from the mapped file) go through the dense kernels (f32 accumulation); embeddings and lm_head
// stay dense (tied embeddings share one tensor). Activations are f32. The KV cache is f32, or f16
// on request (ModelOptions::kv_cache; llama.cpp's default): half the bytes a decode step reads from
// it (in f32, ~14 % of a 7B-shaped decode step's traffic at 512 positions).
// Prefill (many tokens) runs each linear as one GEMM; a decode step (one token per sequence) as a
// GEMV. Threads: one pool per model, all cores by default.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "awq/kernels.h"
#include "awq/layer_cache.h"
#include "awq/model_config.h"

namespace awq {

class ThreadPool;

struct ModelOptions {
  int threads = 0;  // <= 0: all hardware threads
  // Arithmetic of the quantized linears; default kInt16 (16-bit activations: meets the accuracy bar
  // against transformers as kF32 does, 2.1e-3 on the AWQ golden, and runs on the integer dot
  // products; kInt8 is faster and misses the bar where AWQ scales make outlier channels). `awq eval`
  // asks for kF32 (its measurement must not include the runtime's own rounding).
  kernels::Path path = kernels::Path::kInt16;
  // Work below which an operation runs on the calling thread instead of the pool (a parallel
  // region's wake-up and join cost more): ops touching < 64 K floats, linears reading < 256 KiB ×
  // rows. Scaled by this factor; 0 sends everything to the pool (tests of the parallel paths).
  double serial_threshold_scale = 1.0;
  // Decoder layers: null keeps every layer loaded for the model's lifetime (the default). A cache
  // (possibly shared with other models) makes the model stream its layers through it: a layer is
  // read and repacked when first needed and kept while the cache's byte budget allows; below the
  // model's size the layers admitted first stay and the others are read again on every pass (see
  // the admission rule in layer_cache.h). Logits are byte-identical either way.
  std::shared_ptr<LayerCache> layer_cache;
  // With a layer cache: while layer i computes, layers i+1 .. i+prefetch (wrapping to the first
  // ones for the next step) are read and repacked on a background thread. 0: no prefetch thread.
  int prefetch = 1;
  // The KV cache's dtype (see new_cache). f16 reads half the bytes at decode; it costs accuracy:
  // on the AutoAWQ golden, int16 path, 2.8e-3 / 4.2e-3 against transformers instead of 2.1e-3 / 2.6e-3
  // (bar 1e-2), so f32 stays the default.
  enum class KvDtype : uint8_t { kF32, kF16 };
  KvDtype kv_cache = KvDtype::kF32;
};

class Model;

// KV cache and working buffers for `batch` sequences of at most `capacity` positions each.
class KvCache {
 public:
  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length(int64_t seq) const { return len_[size_t(seq)]; }  // positions stored so far
  void clear();                                                    // every sequence back to empty

 private:
  friend class Model;
  int64_t batch_ = 0, capacity_ = 0;
  std::vector<int64_t> len_;
  // Per layer: [batch][kv_heads][capacity][head_dim] for K and for V, f32 (k_, v_) or, when f16_,
  // f16 bits (k16_, v16_; the other pair is empty). See Model::new_cache for which.
  bool f16_ = false;
  std::vector<std::vector<float>> k_, v_;
  std::vector<std::vector<uint16_t>> k16_, v16_;
};

class Model {
 public:
  // Loads the model in `dir` (config.json + weights), or the GGUF file `dir` names (llama, qwen2,
  // qwen3; config from its metadata; Q4_0/Q4_1/Q4_K linears on the 4-bit kernels as stored, other
  // block types dequantized to dense f32 — load_notes() says which). Throws awq::Error naming the
  // file, tensor or config key on anything unsupported or inconsistent.
  static std::unique_ptr<Model> load(const std::string& dir, const ModelOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const;
  int threads() const;
  // Replaces the model's thread pool with one of `threads` threads (<= 0: all cores).
  void set_threads(int threads);
  kernels::Path path() const;
  bool quantized() const;  // whether any linear is 4-bit
  // How the weights were loaded, one line each, for the user (a GGUF file: which block types run on
  // the 4-bit kernels and which were dequantized to dense); empty for a checkpoint directory.
  const std::vector<std::string>& load_notes() const;

  // A cache for `batch` sequences of up to `capacity` positions (<= max_position_embeddings). Keys
  // and values are stored in the dtype ModelOptions::kv_cache names: f16 rounds to nearest even,
  // saturating at ±65504 (NaN and infinities kept), and attention widens it exactly to f32.
  KvCache new_cache(int64_t batch, int64_t capacity) const;

  // Appends tokens[b] to sequence b of `cache` (tokens.size() == cache.batch(); a sequence with no
  // tokens does not advance) and computes their logits. all_positions: logits of every new token,
  // [Σ tokens][vocab] in sequence order; else of the last new token of each advancing sequence,
  // [advancing sequences][vocab]. Throws awq::Error for ids outside the vocabulary or a sequence
  // that would exceed the cache's capacity (the cache is then unchanged).
  void forward(KvCache& cache, const std::vector<std::vector<int32_t>>& tokens, bool all_positions,
               std::vector<float>& logits) const;

  // Logits at every position of one prompt, [ids.size()][vocab] (a fresh cache).
  std::vector<float> prompt_logits(std::span<const int32_t> ids) const;

  // Layer by layer (eval's divergence analysis). Hidden states are row-major [T][hidden] f32, the
  // rows being positions 0..T-1 of one sequence (1 <= T <= max_position_embeddings).
  //
  // The residual stream entering decoder layer 0: the embeddings of ids. Throws awq::Error for an
  // id outside the vocabulary or an empty or too long ids.
  std::vector<float> embed(std::span<const int32_t> ids) const;
  // Runs decoder layer `layer` on x in place: x becomes the residual stream after the layer, as the
  // ordinary forward computes it. attn_from / mlp_from (null: this model) lend that block's weights
  // (its RMSNorm and linears) from another model of the same shape (same hidden, heads, head_dim,
  // intermediate, layers, norms and biases); RoPE, eps and threads are this model's. Throws
  // awq::Error for a layer out of range, a size that is not a multiple of hidden, or a lender of
  // another shape.
  void run_layer(int64_t layer, std::vector<float>& x, const Model* attn_from = nullptr,
                 const Model* mlp_from = nullptr) const;
  // The final RMSNorm and lm_head on hidden states x [T][hidden]: logits [T][vocab].
  std::vector<float> logits_of(std::span<const float> x) const;
  // The residual stream after every decoder layer during forward() of ids: [layers][T][hidden].
  std::vector<float> layer_outputs(std::span<const int32_t> ids) const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Next-token choice. temperature 0: greedy (the lowest id among equal maxima). Otherwise the
// logits are divided by the temperature, restricted to the top_k largest (0: all), then to the
// smallest set of most probable tokens whose probability reaches top_p (1: all), and one is drawn
// with a seeded generator: the same seed and logits give the same tokens on every machine.
struct SamplerOptions {
  float temperature = 0;
  int64_t top_k = 0;
  float top_p = 1;
  uint64_t seed = 0;
};

class Sampler {
 public:
  // Throws awq::Error for a negative temperature or top_k, or top_p outside (0, 1].
  explicit Sampler(const SamplerOptions& options);
  int32_t sample(std::span<const float> logits);

 private:
  SamplerOptions o_;
  std::mt19937_64 rng_;
};

// Index of the largest value (the lowest such index on ties).
int32_t argmax(std::span<const float> v);

}  // namespace awq
