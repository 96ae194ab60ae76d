// `awq compare`: each linear of a quantized (or dense) checkpoint against the dense original.
// Streamed: one module at a time, rows in blocks, so working memory is O(one tensor).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace awq {

// Error of one linear's weight W' (dequantized) against the reference W, both [n, k].
struct LayerError {
  std::string name;      // module, e.g. "model.layers.2.mlp.down_proj"
  std::string kind;      // last name component: "q_proj", "down_proj", ...
  int64_t n = 0, k = 0;
  bool quantized = false;  // W' came from a quantized module (else a dense tensor of QUANT)
  double cosine = 0;       // <W, W'> / (|W| |W'|) over the whole matrix
  double rel_mse = 0;      // |W' - W|^2 / |W|^2
  double sqnr_db = 0;      // 10 log10(|W|^2 / |W' - W|^2); +inf when identical
  double max_abs = 0;      // max |w' - w|
  int64_t worst_row = 0, worst_group = 0;  // group with the largest squared error sum
  int64_t group_size = 0;                  // columns per group used for that (the module's own)
  double worst_group_rel_mse = 0;          // that group's |dW|^2 / |W|^2 (inf when |W| = 0 there)
  bool below_bar = false;                  // cosine < the bar (NaN counts as below)
  double ref_energy = 0, err_energy = 0;   // |W|^2 and |W' - W|^2 (for energy-weighted totals)
  // The first NaN/Inf in W or W' (lowest row, then column), when there is one: every figure above
  // is then NaN.
  bool nonfinite = false;
  int64_t nonfinite_row = -1, nonfinite_col = -1;
  float nonfinite_ref = 0, nonfinite_quant = 0;  // w and w' there
};

// Totals over every layer of one kind (q_proj, ...): energy-weighted.
struct KindTotal {
  std::string kind;
  int64_t layers = 0, below_bar = 0;
  double rel_mse = 0;      // sum |dW|^2 / sum |W|^2
  double min_cosine = 1;
};

struct CompareResult {
  std::string ref_path, quant_path, quant_format;  // quant_format "dense" when QUANT is not quantized
  double cosine_bar = 0.99;
  std::vector<LayerError> layers;           // ranked: worst (largest rel_mse) first
  std::vector<KindTotal> kinds;             // sorted by name
  std::vector<std::string> missing_in_ref;  // linears of QUANT with no REF weight
  std::vector<std::string> mismatched;      // "name: REF [n, k] vs QUANT [n, k]"
  double total_rel_mse = 0;                 // over all compared layers
};

struct CompareOptions {
  double cosine_bar = 0.99;
  int threads = 0;  // <= 0: all cores
  // Called after each module with (done, total); may be empty.
  std::function<void(size_t, size_t)> on_progress;
};

// Compares every linear of QUANT (its quantized modules, and 2-D dense `.weight` tensors of
// linears stored in both) with REF's dense weight of the same name. REF must be dense
// (F32/BF16/F16). Throws awq::Error when either directory does not open or no linear matches, and
// at the first linear (in QUANT's module order) holding a NaN/Inf in REF's weight or QUANT's
// dequantized weight: naming the directory, the tensor (for a quantized module, its scales' first
// NaN/Inf row and group when they hold it) and the first row and column; nothing is reported then.
CompareResult compare_weights(const std::string& ref_dir, const std::string& quant_dir,
                              const CompareOptions& opt = {});

// The error figures of one pair of row-major [n, k] f32 matrices; groups are `group_size`
// consecutive columns (or the given per-column group map when not empty). Exposed for tests.
LayerError layer_error(const float* ref, const float* quant, int64_t n, int64_t k, int64_t group_size,
                       const std::vector<int32_t>& g_idx = {});

}  // namespace awq
