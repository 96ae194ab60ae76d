// `awq convert`: one quantized layout -> another, through the canonical QuantLinear, keeping every
// code and scale. Targets (docs/formats.md names): autoawq-gemm (default), autoawq-gemv,
// autoawq-gemv-fast, compressed-tensors, gptq (--gptq-format v1|v2), modelopt, dense (= dequantize).
// A target that cannot represent the source exactly (asymmetric into symmetric-only, act-order
// into a layout without g_idx, a zero point of 0 into GPTQ v1, shapes the layout forbids) is
// refused with the reason and nothing is written. Into a target whose arithmetic differs
// (GEMV_fast's fused q·s + sz) every code and scale is kept and the largest difference between the
// two dequantizations is reported. Streamed: O(one module) of working memory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "awq/dequantize_model.h"
#include "awq/formats.h"

namespace awq {

struct ConvertOptions {
  std::string out_dir;
  std::string to = "autoawq-gemm";
  std::string gptq_format = "v1";  // "v1" (checkpoint_format gptq) or "v2" (gptq_v2)
  bool force = false;
  bool progress = true;
  // Re-quantize (round to nearest, from the module's own dense weight) the modules the target
  // cannot hold exactly, instead of refusing; every other module keeps its codes and scales.
  bool requantize = false;
  uint64_t max_shard_bytes = 5'000'000'000ULL;
  // Stored tensors to write instead of the same-named ones of the model directory (same name,
  // any dtype/shape): `quantize` passes the norms it folded AWQ scales into. Must outlive the call.
  std::vector<const TensorView*> dense_overrides;
  // NaN/Inf in scales, scaled zeros, pre-quant scales or floating tensors: refused (naming the
  // tensor, row and group) unless set; then carried through with one warning per tensor.
  bool allow_nonfinite = false;
  // Auxiliary files (auxiliary_files()) not to copy: quantize leaves out the dense model's README.md.
  std::vector<std::string> skip_auxiliary;
  // The advice a NaN/Inf refusal ends with; empty: fix the source or pass --allow-nonfinite.
  std::string nonfinite_remedy;
  // --to gguf only: 4-bit block type ("q4_1" exact, or "q4_k": codes kept, 6-bit scales/mins) and
  // the type of embeddings / lm_head / unquantized linears ("f16", "bf16", "q8_0").
  std::string gguf_type = "q4_1";
  std::string dense_type = "f16";
  // --to gguf only: a non-zero scale (or Q4_1 min, Q4_K super-block scale/min) that f16 can hold
  // only as 0 (below 5.96e-8; that group's codes would dequantize to one value) is refused naming
  // the scales tensor, row and group, unless set; then one warning per tensor.
  bool allow_underflow = false;
};

struct ConvertResult {
  std::string from, to;
  size_t modules = 0, tensors = 0, shards = 0;
  uint64_t bytes = 0;
  // Largest |w_target − w_source| over all weights when the dequantization arithmetic differs
  // (GEMV_fast <-> integer-zero layouts), and where; 0 / "" when it is the same arithmetic.
  double max_abs_diff = 0;
  std::string max_diff_module;
  bool arithmetic_differs = false;
  struct Requantized {
    std::string module, reason;
    double max_abs = 0, rel_rms = 0;  // added error: max |w_new − w_old|, ||w_new − w_old|| / ||w_old||
  };
  std::vector<Requantized> requantized;  // --requantize only; NaN figures when the source held NaN/Inf
  std::vector<CastSummary> casts;         // --to dense only (see dequantize_model)
  std::vector<std::string> warnings;      // one line per tensor carried through with NaN/Inf
  std::vector<std::string> notes;         // facts about the output's readers (e.g. compressed-tensors versions)
  // --to gguf: largest |w_gguf − w_source| (ggml's dequantization against ours) per decoder layer
  // (-1: embeddings / lm_head), with the tensor where it occurs; and what was decided per tensor
  // that the user should know (fallbacks), one line each.
  struct LayerDiff {
    int64_t layer = -1;
    double max_abs = 0;
    std::string tensor;
  };
  std::vector<LayerDiff> layer_diffs;
};

// Target names in the order `--to` documents them.
std::vector<std::string> convert_targets();

// Throws awq::Error (naming the module and why) when the target cannot represent the source and
// opt.requantize is false. opt.to == "gguf" writes the single file opt.out_dir (see convert_to_gguf).
ConvertResult convert_model(const ModelDir& dir, const FormatReader& reader, const ConvertOptions& opt);

// `--to gguf`: one GGUF v3 file as llama.cpp's convert_hf_to_gguf.py would write it for the model
// (architecture metadata, tokenizer, llama.cpp tensor names, q/k rows permuted for Llama-family
// rope), quantized linears mapped block for block (docs/GGUF.md): asymmetric 4-bit -> Q4_1,
// symmetric -> Q4_0, symmetric 8-bit -> Q8_0, or Q4_K with opt.gguf_type "q4_k". Act-order,
// pre_quant_scale, group sizes not a multiple of 32 and asymmetric 8-bit are refused unless
// opt.requantize. reader == nullptr: a dense checkpoint (no quantization config): every linear in
// opt.dense_type (f16, bf16 or q8_0). Written to a temporary file, fsync'ed and renamed; an
// existing file is replaced only with opt.force.
ConvertResult convert_to_gguf(const ModelDir& dir, const FormatReader* reader, const ConvertOptions& opt);

}  // namespace awq
