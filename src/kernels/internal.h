// Helpers shared by the scalar reference kernels and the SIMD drivers. Sharing them makes the
// activation passes identical by construction, so SIMD and reference differ only in the kernels.
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "awq/dtype.h"
#include "awq/kernels.h"

namespace awq::kernels {

// Rows [m0, m1) of x ([m][k], F32 or BF16) -> dst [m1-m0][k_pad] f32 in the packed column order
// (dst[g·G + j] = x[w.source_column(g, j)]: a gather through source_col for act-order layers),
// times pre_quant_scale, zero in padded columns.
void pack_activations_f32(const PackedLinear& w, const void* x, DType xt, int64_t m0, int64_t m1, float* dst);

// Symmetric per-(row, group) int8 quantization of packed f32 rows xf [m1-m0][k_pad]:
// amax = max|x|, d = amax/127, a = nearbyint(x·(127/amax)) clamped to ±127 (all 0 when amax = 0);
// the product is rounded to f32 first, then to an integer (nearest even).
// Writes a [m1-m0][k_pad], d_out and ds_out (= d·Σa) [m1-m0][n_groups].
void quantize_activations_i8(const PackedLinear& w, const float* xf, int64_t m0, int64_t m1, int8_t* a,
                             float* d_out, float* ds_out);

// Per-(row, group) 16-bit quantization for Path::kInt16, held as two int8 planes:
// amax = max|x|, d = amax/kI16Max, r = nearbyint(x·(kI16Max/amax)) clamped to ±kI16Max (all 0 when
// amax = 0), then r = 256·hi + lo with hi = floor((r + 128) / 256) in [-127, 127] and lo in [-128, 127].
// Writes hi [m1-m0][k_pad], lo [m1-m0][k_pad], d_out and ds_out (= d·Σr) [m1-m0][n_groups].
constexpr float kI16Max = 32639.f;  // the largest r whose hi part fits [-127, 127]
void quantize_activations_i16(const PackedLinear& w, const float* xf, int64_t m0, int64_t m1, int8_t* hi,
                              int8_t* lo, float* d_out, float* ds_out);
// Splits a rounded activation r (|r| <= kI16Max) into its int8 planes (see above).
inline void split_i16(int32_t r, int8_t& hi, int8_t& lo) {
  const int32_t h = (r + 128) >> 8;  // arithmetic shift: floor
  hi = int8_t(h);
  lo = int8_t(r - 256 * h);
}

// Scale and offset (w = fma(q, s, o)) of the 16 rows of tile t in group g, as the kernels compute
// them: compact o = −(s·z), exact in f32.
void group_params(const PackedLinear& w, int64_t t, int64_t g, float* s, float* o);

// f32 -> bf16 bits exactly as VCVTNE(2)PS2BF16 rounds: nearest even, NaN quieted (as f32_to_bf16),
// and, unlike f32_to_bf16, f32 denormals flushed to a zero of the same sign.
inline uint16_t f32_to_bf16_ftz(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0) return uint16_t((u >> 16) & 0x8000u);
  return f32_to_bf16(f);
}

// One 32-bit lane of VDPBF16PS (Intel SDM; verified bit for bit on Zen 5 including denormals):
// the odd (high) pair element first, each step a fused multiply-add rounded to nearest even with
// denormal inputs read as zero (DAZ) and a denormal result flushed to zero (FTZ); MXCSR is ignored.
// The operands here are bf16 values widened to f32 (so their products are exact).
inline float ftz_f32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float dpbf16_lane(float acc, float x_lo, float x_hi, float w_lo, float w_hi) {
  acc = ftz_f32(std::fma(ftz_f32(x_hi), ftz_f32(w_hi), ftz_f32(acc)));
  return ftz_f32(std::fma(ftz_f32(x_lo), ftz_f32(w_lo), acc));
}

// The SIMD entry points (quant_kernels.cc, dense_kernels.cc; bf16_kernels.cc for Path::kBF16,
// which the caller must have checked with path_available).
void gemm_bf16(const PackedLinear& w, const void* x, DType xt, int64_t m, void* y, DType yt, ThreadPool& pool);
void gemm_simd(const PackedLinear& w, const void* x, DType xt, int64_t m, void* y, DType yt, Path path,
               ThreadPool& pool);
void dequantize_simd(const PackedLinear& w, DType out, int64_t r0, int64_t r1, void* dst, ThreadPool& pool);

// Path::kInt16 on AMX-INT8 (amx_kernels.cc), used by gemm_simd for m >= kAmxMinRows where
// amx_available() (include/awq/kernels.h). The activations are first copied into A tiles: per
// 16-row block, per K step of Ks columns (a group is G/Ks steps), per plane (hi, lo), 16 rows × Ks
// bytes contiguous (rows >= m zero). Each A tile is then one contiguous load: the planes' own rows
// are k_pad bytes apart, and 16 loads 4 KiB apart thrash one L1 set.
// Bytes of the packed activations of m rows.
int64_t amx_packed_bytes(const PackedLinear& w, int64_t m);
// Row blocks [mb0, mb1) of the planes hi, lo ([m][k_pad] each) into dst (amx_packed_bytes long).
void amx_pack_activations(const PackedLinear& w, const int8_t* hi, const int8_t* lo, int64_t m, int64_t mb0, int64_t mb1,
                          int8_t* dst);
struct AmxOperands {
  const int8_t* a;  // packed activations
  const float* d;   // [m][n_groups] as quantize_activations_i16 writes them
  const float* ds;
  int64_t m;
};
// Where amx_int16_tiles writes: final: the f32 output y[m][n] (ys = n), with bias, columns < n;
// otherwise the sums before bias into a buffer of whole tiles (ys >= n_tiles·16).
struct AmxOutput {
  float* y;
  int64_t ys;
  bool final;
};
// Output columns of tiles [t0, t1) for rows < m: the f32 sums gemm_ref(..., Path::kInt16) forms,
// bit for bit (then + bias when final). Configures (and releases) this thread's tiles.
void amx_int16_tiles(const PackedLinear& w, const AmxOperands& op, int64_t t0, int64_t t1, const AmxOutput& out);
// Calls of amx_int16_tiles so far (for tests: which kernel ran, since both give the same bits).
std::atomic<uint64_t>& amx_tile_calls();

}  // namespace awq::kernels

namespace awq::kernels {
// Per-calling-thread buffers reused across kernel calls (no page faults per call).
struct KernelScratch {
  std::vector<float> xf, y, d, ds;
  std::vector<int8_t> a;
  std::vector<uint8_t> bytes;
  std::vector<int8_t> amx_a;  // the AMX kernel's packed activations
};
KernelScratch& kernel_scratch();
}  // namespace awq::kernels

namespace awq::kernels {
// The dense bf16 GEMM on AMX-BF16 (amx_bf16_gemm.cc), behind amx_bf16_available (kernels.h).
// B layout: K padded to a multiple of 32 (zeros), N to a multiple of 16 (zero rows); tile (j16, s)
// of 16 columns × 32 k is 1 KiB at ((j16·steps + s)·512) bf16 values, the VNNI order TDPBF16PS
// reads: pair row p < 16, column c < 16, element e < 2 holds B[16·j16 + c][32·s + 2p + e].
int64_t amx_bf16_b_elems(int64_t n, int64_t k);
void amx_bf16_pack_b(const float* b, int64_t n, int64_t k, uint16_t* dst, ThreadPool& pool);
// C (+)= A·Bᵀ; upper (m == n, for XᵀX): only 256 × 256 blocks on or above the diagonal are written.
void amx_bf16_gemm(const float* a, int64_t m, const Bf16Matrix& b, float* c, bool accumulate, bool upper, ThreadPool& pool);
// Why AMX-BF16 cannot run beyond amx_available (CPUID bit, self-test); empty when it can.
std::string amx_bf16_missing();

// causal_attention_bf16 (model_ops.h) on AMX-BF16 tiles (amx_attention.cc), behind
// amx_bf16_available; scratch: amx_attention_bf16_scratch floats.
void amx_causal_attention_bf16(const float* q, int64_t q_stride, int64_t group, int64_t head_dim, const float* k, const float* v,
                               int64_t kv_stride, int64_t len, int64_t window, float scale, float* out, int64_t out_stride, float* scratch);
size_t amx_attention_bf16_scratch(int64_t len, int64_t group, int64_t head_dim);
}  // namespace awq::kernels
