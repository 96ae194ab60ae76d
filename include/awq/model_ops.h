// The decoder's hot operations besides the linear layers: RMSNorm, rotary embeddings, softmax,
// SiLU-gated product, attention over a KV cache, and dense f32/f16-weight GEMMs. All in f32, following
// Hugging Face transformers' f32 arithmetic (formulas below). Each has a scalar reference (*_ref,
// kept forever); the others are Highway SIMD, dispatched once per call to the best target this CPU
// runs (kernels::force_target in kernels.h picks another one, for tests).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace awq {
class ThreadPool;
}

namespace awq::kernels {

// y = (x · 1/sqrt(mean(x²) + eps)) · w over n values (transformers' LlamaRMSNorm in f32, same
// order of the two products). y may equal x.
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y);
void rms_norm_ref(const float* x, const float* w, int64_t n, float eps, float* y);

// Rotates `heads` consecutive vectors of head_dim values in place with the rotate-half convention
// of transformers (apply_rotary_pos_emb): with h = head_dim/2 and i < h,
//   x'[i] = x[i]·cos[i] − x[i+h]·sin[i],   x'[i+h] = x[i+h]·cos[i] + x[i]·sin[i].
// cos/sin hold the h values of one position (RopeTable::cos/sin).
void rope(float* x, int64_t heads, int64_t head_dim, const float* cos, const float* sin);
void rope_ref(float* x, int64_t heads, int64_t head_dim, const float* cos, const float* sin);

// cos/sin of position·inv_freq[i] for positions [0, positions), i < head_dim/2 (inv_freq from
// rope_inv_freq in model_config.h); the angle is the f32 product, as transformers computes it.
struct RopeTable {
  int64_t half = 0, positions = 0;
  std::vector<float> cos_, sin_;  // [positions][half]
  const float* cos(int64_t pos) const { return cos_.data() + pos * half; }
  const float* sin(int64_t pos) const { return sin_.data() + pos * half; }
};
RopeTable make_rope_table(const std::vector<float>& inv_freq, int64_t positions);

// In-place softmax over n values: exp(x − max) / Σ.
void softmax(float* x, int64_t n);
void softmax_ref(float* x, int64_t n);

// out[i] = silu(gate[i])·up[i], silu(g) = g / (1 + exp(−g)). out may alias gate or up.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
void silu_mul_ref(const float* gate, const float* up, int64_t n, float* out);

// Attention of `group` query heads that share one KV head (GQA) over n_keys cached positions:
//   out[g] = softmax(scale · q[g]·K[j] for j < n_keys) · V
// q: group × head_dim contiguous; K and V rows j at k + j·kv_stride, v + j·kv_stride (head_dim
// values each); out: group × head_dim. scratch: at least group·n_keys floats. n_keys >= 1.
void attention(const float* q, int64_t group, int64_t head_dim, const float* k, const float* v, int64_t kv_stride,
               int64_t n_keys, float scale, float* out, float* scratch);
void attention_ref(const float* q, int64_t group, int64_t head_dim, const float* k, const float* v,
                   int64_t kv_stride, int64_t n_keys, float scale, float* out, float* scratch);
// The same with K and V held as f16 bits (a KV cache in f16), widened exactly to f32: equals
// attention() on the widened values (within f32 summation order, as attention vs attention_ref).
void attention_f16(const float* q, int64_t group, int64_t head_dim, const uint16_t* k, const uint16_t* v,
                   int64_t kv_stride, int64_t n_keys, float scale, float* out, float* scratch);
void attention_f16_ref(const float* q, int64_t group, int64_t head_dim, const uint16_t* k, const uint16_t* v,
                       int64_t kv_stride, int64_t n_keys, float scale, float* out, float* scratch);
// Causal self-attention of one whole sequence of `len` positions, `group` query heads sharing one
// KV head (quantize's calibration forwards): for query row i and head g,
//   out[i][g] = softmax_j(scale · q[i][g]·K[j]) · V over keys start(i) <= j <= i,
// start(i) = max(0, i + 1 − window) with window > 0, else 0. q row i, head g at q + i·q_stride +
// g·head_dim; K/V row j at k + j·kv_stride, v + j·kv_stride; out like q with out_stride. As blocked
// GEMMs (score and value tiles of several query rows): equals attention() per row within f32
// summation order, the same bits for the same inputs on any thread. scratch: at least
// causal_attention_scratch(len, head_dim) floats.
void causal_attention(const float* q, int64_t q_stride, int64_t group, int64_t head_dim, const float* k, const float* v,
                      int64_t kv_stride, int64_t len, int64_t window, float scale, float* out, int64_t out_stride, float* scratch);
size_t causal_attention_scratch(int64_t len, int64_t head_dim);
// The same attention on bf16-rounded inputs (quantize's calibration forwards under
// --compute bf16/auto, where the linears already run in bf16). Arithmetic, for row i, head g, keys
// j in [start(i), i], with bf16(x) = nearest-even bf16 rounding (f32_to_bf16, dtype.h):
//   s_j = Σ_d bf16(q[i][g][d])·bf16(K[j][d])   (exact products summed in f32)
//   x_j = scale·s_j,  p_j = bf16(exp(x_j − max_j x_j))   (f32)
//   out[i][g][d] = (Σ_j p_j·bf16(V[j][d])) · (1 / Σ_j p_j)   (exact products summed in f32)
// so the weights are exactly normalised (Σ of the rounded p). causal_attention_bf16_ref: each sum in
// index order, std::exp. The kernels: where amx_bf16_available(), the products on AMX-BF16 tiles
// (TDPBF16PS: the tile unit's summation order, denormal inputs and results flushed to zero) and exp
// by a degree-7 polynomial (within ~3 ulp of std::exp); elsewhere f32 FMAs on the rounded inputs
// (Highway, every target; the score and P·V sums in index order as the reference's) and Highway's
// exp (<= 1 ulp). Both sum the p in vector lanes, so they equal the reference bit for bit where every
// exp is exact (each row's scores tie at its maximum or lie > 104 below it) and every sum is exact
// (small integers); on other inputs a p may land one bf16 ulp (2^-8 relative) from the reference's
// (tests/kernels/causal_attention_bf16_test.cc states the bounds). Same bits for the same inputs on
// any thread. Finite inputs whose bf16 rounding stays finite (|x| < 3.39e38). Why: 2-3x the f32
// kernel with AMX (BENCHMARKS.md "bf16 causal attention"); its effect on quantize's output is in
// docs/quantize.md. scratch: causal_attention_bf16_scratch(len, group, head_dim) floats.
void causal_attention_bf16(const float* q, int64_t q_stride, int64_t group, int64_t head_dim, const float* k, const float* v,
                           int64_t kv_stride, int64_t len, int64_t window, float scale, float* out, int64_t out_stride, float* scratch);
void causal_attention_bf16_ref(const float* q, int64_t q_stride, int64_t group, int64_t head_dim, const float* k, const float* v,
                               int64_t kv_stride, int64_t len, int64_t window, float scale, float* out, int64_t out_stride);
size_t causal_attention_bf16_scratch(int64_t len, int64_t group, int64_t head_dim);
// n values of x into f16 bits for the KV cache: nearest even, saturating at ±65504 (a finite value
// never becomes an infinity), NaN and ±inf stay what they are.
void kv_to_f16(const float* x, int64_t n, uint16_t* dst);

// Dense baseline for f32 weights: y[m][n] = Σ_k x[m][k]·W[n][k] with W f32 row-major [n][k]
// (any alignment), split over the pool's threads (nullptr: default_pool()).
void dense_f32_gemm(const float* w, int64_t n, int64_t k, const float* x, int64_t m, float* y,
                    ThreadPool* pool = nullptr);
void dense_f32_gemm_ref(const float* w, int64_t n, int64_t k, const float* x, int64_t m, float* y);
// The same product for many activation rows (quantize's calibration forwards, m in the thousands):
// W is packed once per call into k-major panels and blocks of 128 rows of x are spread over the
// pool. Each y element is one FMA chain over k in index order (within f32 rounding of the above;
// the same bits for any thread count).
void dense_f32_gemm_tall(const float* w, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool* pool = nullptr);
// The same with f16 weights (bits, any 2-byte alignment), widened exactly to f32: checkpoints store
// embeddings and lm_head in f16, and reading them as f16 halves the bytes of the dense f32 copy.
void dense_f16_gemm(const uint16_t* w, int64_t n, int64_t k, const float* x, int64_t m, float* y,
                    ThreadPool* pool = nullptr);
void dense_f16_gemm_ref(const uint16_t* w, int64_t n, int64_t k, const float* x, int64_t m, float* y);

}  // namespace awq::kernels
