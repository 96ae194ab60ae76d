// Helpers shared by the scalar reference kernels and the SIMD drivers. Sharing them makes the
// activation passes identical by construction, so SIMD and reference differ only in the kernels.
#pragma once
#include <cstdint>
#include <vector>

#include "awq/dtype.h"
#include "awq/kernels.h"

namespace awq::kernels {

// Rows [m0, m1) of x ([m][k], F32 or BF16) -> dst [m1-m0][k_pad] f32 in the packed column order
// (dst[g·G + j] = x[w.source_column(g, j)]: a gather through source_col for act-order layers),
// times pre_quant_scale, zero in padded columns.
void pack_activations_f32(const PackedLinear& w, const void* x, DType xt, int64_t m0, int64_t m1, float* dst);

// Symmetric per-(row, group) int8 quantization of packed f32 rows xf [m1-m0][k_pad]:
// amax = max|x|, d = amax/127, a = nearbyint(x·(127/amax)) clamped to ±127 (all 0 when amax = 0).
// Writes a [m1-m0][k_pad], d_out and ds_out (= d·Σa) [m1-m0][n_groups].
void quantize_activations_i8(const PackedLinear& w, const float* xf, int64_t m0, int64_t m1, int8_t* a,
                             float* d_out, float* ds_out);

// Scale and offset (w = fma(q, s, o)) of the 16 rows of tile t in group g, as the kernels compute
// them: compact o = −(s·z), exact in f32.
void group_params(const PackedLinear& w, int64_t t, int64_t g, float* s, float* o);

// The SIMD entry points (quant_kernels.cc, dense_kernels.cc).
void gemm_simd(const PackedLinear& w, const void* x, DType xt, int64_t m, void* y, DType yt, Path path,
               ThreadPool& pool);
void dequantize_simd(const PackedLinear& w, DType out, int64_t r0, int64_t r1, void* dst, ThreadPool& pool);

}  // namespace awq::kernels

namespace awq::kernels {
// Per-calling-thread buffers reused across kernel calls (no page faults per call).
struct KernelScratch {
  std::vector<float> xf, y, d, ds;
  std::vector<int8_t> a;
  std::vector<uint8_t> bytes;
};
KernelScratch& kernel_scratch();
}  // namespace awq::kernels
