// `awq dequantize`: a quantized checkpoint -> a plain Hugging Face directory transformers loads
// as an unquantized model. Streamed: working memory is O(one tensor) beyond the mmap'd input.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "awq/formats.h"

namespace awq {

struct DequantizeOptions {
  std::string out_dir;
  std::optional<DType> dtype;            // default: the scales' dtype, or config torch_dtype for f32 scales
  uint64_t max_shard_bytes = 5'000'000'000ULL;
  bool force = false;                    // replace a non-empty out_dir once the new one is complete
  bool progress = true;
  // Stored tensors written instead of the same-named ones of the directory (see ConvertOptions).
  std::vector<const TensorView*> dense_overrides;
  // NaN/Inf in any scale, scaled zero, pre-quant scale or floating tensor is refused (naming the
  // tensor, row and group) unless this is set; then each such tensor is carried through and named
  // in DequantizeResult::warnings.
  bool allow_nonfinite = false;
  // Auxiliary files (auxiliary_files()) not to copy: quantize leaves out the dense model's README.md.
  std::vector<std::string> skip_auxiliary;
  // The advice a NaN/Inf refusal ends with; empty: fix the source or pass --allow-nonfinite.
  std::string nonfinite_remedy;
};

// Floating tensors cast to the output dtype (RNE), per (from, to) pair.
struct CastSummary {
  DType from, to;
  size_t tensors = 0;
  double max_rel = 0;        // largest |rounded − x| / |x| over their finite non-zero values
  std::string worst_tensor;  // where max_rel occurs
};

struct DequantizeResult {
  DType dtype;
  size_t tensors = 0, modules = 0, shards = 0;
  uint64_t bytes = 0;
  std::vector<CastSummary> casts;     // stored F16/BF16/F32 tensors whose dtype differed from `dtype`
  std::vector<std::string> warnings;  // one line per tensor carried through with NaN/Inf
};

// Every floating tensor of the output (dequantized modules, embeddings, norms, biases, dense
// weights) is written in `dtype`, and config.json's torch_dtype says so. Refused, with nothing
// written: a dequantized weight or a cast value that `dtype` cannot hold (naming the module or
// tensor, the largest |w|, its row and group, and the dtypes that would hold it); NaN/Inf anywhere
// unless opt.allow_nonfinite.
DequantizeResult dequantize_model(const ModelDir& dir, const FormatReader& reader, const DequantizeOptions& opt);

// A GGUF file (llama / qwen2 / qwen3, tensors of any type dequantize_ggml supports) -> a plain
// Hugging Face directory: config.json rebuilt from the metadata (hf_config_from_gguf), llama.cpp
// names mapped back to Hugging Face's, the q/k rope row permutation undone, rope_freqs.weight
// dropped (config's rope_scaling says it). Values: ggml's dequantization rounded once to the
// output dtype (default f16). No tokenizer files are written (GGUF keeps its own vocabulary).
// Tensors no name maps back are an awq::Error naming them.
DequantizeResult dequantize_gguf(const std::string& gguf_path, const DequantizeOptions& opt);

}  // namespace awq
