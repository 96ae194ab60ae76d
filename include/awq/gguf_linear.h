// A GGUF tensor as the canonical QuantLinear, where a 4-bit block type maps onto it exactly
// (docs/GGUF.md "Reading GGUF into the runtime"). Q4_0, Q4_1 and Q4_K are groups of 32 columns
// with one scale and one offset each, which the 4-bit kernels hold as they are:
//   Q4_0: w = d·(q − 8)           -> kSymmetric, scale d (an f16), 4-bit codes
//   Q4_1: w = d·q + m             -> kScaledFma, scale d, scaled zero m (both f16)
//   Q4_K: w = (d·sc_j)·q − dmin·m_j per 32-column sub-block j of a 256 super-block
//                                 -> kScaledFma, scale d·sc_j, scaled zero −(dmin·m_j) (f32 each,
//                                    the products ggml itself forms in f32)
// Every code is kept. ggml's reference dequantization rounds the product and then adds the
// offset; the kernels fuse them (fma), so weights can differ by half an f32 ulp of the result.
#pragma once
#include <string>

#include "awq/gguf.h"
#include "awq/quant_linear.h"

namespace awq {

// Whether a 2-D tensor of type t maps exactly onto a QuantLinear (Q4_0, Q4_1, Q4_K).
bool gguf_maps_to_quant_linear(GgmlType t);

// The 2-D tensor t (ggml ne = [k, n]: k columns per row, n rows) of file `file` as a QuantLinear
// named `module`, format "gguf-<type>", group size 32. Throws awq::Error naming the file and
// tensor for another type, a shape that is not 2-D or a k that is not a multiple of the block.
QuantLinear gguf_quant_linear(const GgufTensorInfo& t, const std::string& file, const std::string& module);

}  // namespace awq
