// `awq compare`: each linear of a quantized (or dense) checkpoint against the dense original.
// Streamed: one module at a time, rows in blocks, so working memory is O(one tensor).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "awq/dtype.h"

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
  // AWQ scale folds undone before measuring (FoldScales::source of each; empty: none): W' is then
  // diag(s_rows)·W_QUANT·diag(1/s_cols), the weight that computes with REF's norm and REF's
  // producer rows what QUANT computes with its own.
  std::string undone_cols, undone_rows;
};

// A producer's rows count as folded when their fitted scales depart from 1 by more than 3 standard
// errors in RMS (FoldScales::departure_z2 > 9) and remove at least 10 % of its error: noise that
// scales with the weights (REF a bf16 twin of QUANT: s within 0.4 % of 1, departure ~25 on the 7B
// shape) passes the first test, not the second; below 10 % the stored figures mislead little.
inline constexpr double kRowFoldZ2 = 9.0;
inline constexpr double kRowFoldShare = 0.1;

// One AWQ scale fold of QUANT, looked for against REF. AWQ stores a scaled linear as W·diag(s) and
// divides what feeds it by s: the RMSNorm before it (q/k/v after input_layernorm, gate/up after
// post_attention_layernorm) stores g/s; o_proj's s divides v_proj's rows (only without GQA) and
// down_proj's divides up_proj's rows. The model computes the same function; the stored weights
// differ from REF's by s per input channel (README, `awq compare`).
struct FoldScales {
  std::string source;                  // the divided op: "model.layers.0.input_layernorm.weight" or "model.layers.0.mlp.up_proj"
  bool from_norm = true;               // s = g_REF / g_QUANT per channel (exact); else the producer's rows (least squares)
  std::vector<std::string> consumers;  // linears whose input columns QUANT stores times s
  std::string producer;                // !from_norm: the linear whose rows QUANT stores divided by s
  int64_t channels = 0;
  bool folded = false;  // norm: some g differs beyond the rounding of one dtype to the other; rows: see kRowFoldZ2
  bool undone = false;  // folded and undone (not --raw)
  int64_t guarded = 0;  // channels whose s is not measurable (zero, negative or non-finite ratio): s = 1 there
  double s_min = 1, s_max = 1;  // over the measurable channels
  std::vector<double> s;        // per channel when folded (1 where guarded)
  // Rows only: the producer's relative MSE with s = 1 and with the fitted s, and the test figure:
  // how far the fitted s depart from 1, as a mean squared number of standard errors (the error they
  // remove over what one free scale per row removes from pure quantization noise; about 1 without
  // a fold, 50-930 measured for AWQ's folds).
  double producer_rel_mse_raw = 0, producer_rel_mse_fit = 0, departure_z2 = 0;
  std::string note;  // why nothing was measured, when so (e.g. a norm missing in one model)
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
  bool undo_folds = true;                   // CompareOptions::undo_folds
  std::vector<FoldScales> folds;            // every fold looked for, in model order
};

struct CompareOptions {
  double cosine_bar = 0.99;
  int threads = 0;  // <= 0: all cores
  // Undo AWQ's scale folds before measuring (FoldScales). false (`--raw`): the stored weights are
  // measured as they are; the norms are still compared, so the result says which linears' figures
  // then measure scaled weights (producer rows are not examined).
  bool undo_folds = true;
  // Called after each module with (done, total); may be empty.
  std::function<void(size_t, size_t)> on_progress;
};

// Compares every linear of QUANT (its quantized modules, and 2-D dense `.weight` tensors of
// linears stored in both) with REF's dense weight of the same name. REF must be dense
// (F32/BF16/F16). Throws awq::Error when either directory does not open or no linear matches, and
// at the first linear (in QUANT's module order) holding a NaN/Inf in REF's weight or QUANT's
// dequantized weight: naming the directory, the tensor (for a quantized module, its scales' first
// NaN/Inf row and group when they hold it) and the first row and column; nothing is reported then.
// With opt.undo_folds, AWQ's scale folds are found and undone first (FoldScales): each producer
// (v_proj, up_proj) is then dequantized twice, once to fit its rows' s and once to be measured.
CompareResult compare_weights(const std::string& ref_dir, const std::string& quant_dir,
                              const CompareOptions& opt = {});

// The error figures of one pair of row-major [n, k] f32 matrices; groups are `group_size`
// consecutive columns (or the given per-column group map when not empty). Exposed for tests.
LayerError layer_error(const float* ref, const float* quant, int64_t n, int64_t k, int64_t group_size,
                       const std::vector<int32_t>& g_idx = {});

// The norm fold's test and scales from REF's and QUANT's norm weights (n floats each, stored as
// ref_dtype / quant_dtype): folded when for some channel neither g_REF rounded to quant_dtype is
// g_QUANT nor g_QUANT rounded to ref_dtype is g_REF (an f32 REF against its f16 checkpoint, or a
// bf16 twin of an f16 checkpoint, is no fold); then s = g_REF / g_QUANT per channel, and 1 (counted
// in guarded) where that ratio is zero, negative or not finite. `source`/`consumers` are left
// empty. Exposed for tests.
FoldScales norm_fold(const float* g_ref, DType ref_dtype, const float* g_quant, DType quant_dtype, int64_t n);

// The row fold's test and scales from a producer's REF rows d and QUANT rows q ([n, k] row-major, q
// with any column fold already undone): per row, q ≈ d/s, so 1/s = <q,d>/<d,d> by least squares
// (d the regressor: the quantization noise is in q), s = <d,d>/<q,d>; 1 (guarded) where <d,d> = 0
// or the ratio is not positive and finite. With err(s) = sum over rows of |s·q - d|^2, the test
// figure departure_z2 = (err(1) - err(s)) / (err(s) / (k - 1)); folded when above kRowFoldZ2 and
// err(1) - err(s) >= kRowFoldShare · err(1).
// Exposed for tests.
FoldScales row_fold(const float* ref, const float* quant, int64_t n, int64_t k);

}  // namespace awq
