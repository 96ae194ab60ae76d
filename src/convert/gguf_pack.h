// Canonical QuantLinear -> ggml blocks, keeping every code (internal to convert). See docs/GGUF.md
// for the exact mapping: an AWQ group of G columns is G/32 blocks sharing its scale and zero.
#pragma once
#include <string>
#include <vector>

#include "awq/gguf.h"
#include "awq/quant_linear.h"

namespace awq::convert_detail {

// Packs an integer-zero module (group size a multiple of 32, no g_idx reordering, no
// pre_quant_scale) into `type`'s blocks, row after row (ne = {k, n}):
//   Q4_1: d = f16(s), m = f16(−z·s), codes kept;   Q4_0: d = f16(s), code − 8 (every z must be 8);
//   Q8_0: d = f16(s), int8 = code − 128 (8-bit, every z 128);
//   Q4_K: codes kept; per 256-column super-block d, dmin (f16) and 6-bit sc, m with
//         d·sc ≈ s, dmin·m ≈ z·s for each 32-column sub-block (k % 256 == 0).
// Throws awq::Error naming the module when a value cannot be represented that way.
// Rows [row_begin, row_end) only (row_end < 0: to the last row).
std::string pack_ggml(const QuantLinear& q, GgmlType type, int64_t row_begin = 0, int64_t row_end = -1);

// ggml's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d); n a multiple of 32.
void quantize_q8_0_ref(const float* x, int64_t n, uint8_t* out);

// Dense f32 values -> F32 / F16 / BF16 (one RNE rounding) or Q8_0 (ggml's reference) bytes.
std::string encode_dense(const std::vector<float>& x, GgmlType type);

// Reorders whole rows of a row-major tensor of `rows` rows (bytes per row = size / rows) as
// llama.cpp's converter permutes q/k for Llama-family rope (gguf_permuted_source_row).
std::string permute_rows(const std::string& data, int64_t rows, int64_t heads);

}  // namespace awq::convert_detail
