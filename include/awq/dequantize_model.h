// `awq dequantize`: a quantized checkpoint -> a plain Hugging Face directory transformers loads
// as an unquantized model. Streamed: working memory is O(one tensor) beyond the mmap'd input.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "awq/formats.h"

namespace awq {

struct DequantizeOptions {
  std::string out_dir;
  std::optional<DType> dtype;            // default: the scales' dtype, or config torch_dtype for f32 scales
  uint64_t max_shard_bytes = 5'000'000'000ULL;
  bool force = false;                    // replace a non-empty out_dir once the new one is complete
  bool progress = true;
};

struct DequantizeResult {
  DType dtype;
  size_t tensors = 0, modules = 0, shards = 0;
  uint64_t bytes = 0;
};

DequantizeResult dequantize_model(const ModelDir& dir, const FormatReader& reader, const DequantizeOptions& opt);

}  // namespace awq
