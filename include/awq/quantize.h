// `awq quantize`: a dense Hugging Face checkpoint -> a 4-bit one (autoawq-gemm by default, any
// `convert` target through the convert writers). Methods: plain round-to-nearest (rtn) and AWQ
// (activation-aware scale search, then clip search; docs/quantize.md has the algorithm and where it
// departs from AutoAWQ). Layer-streamed from the mmap'd input: each finished decoder layer is saved
// under <OUT_DIR>.awq-progress/ (fsutil.h progress_dir_for), which makes an interrupted run resumable
// and is removed once OUT_DIR is committed.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace awq {

enum class QuantMethod : uint8_t { kRtn, kAwq };
// What to do with a NaN/Inf weight. kError: awq::Error naming tensor, row and group. kZero: the value
// is replaced by 0 before quantizing (counted in QuantizeResult::sanitized).
enum class SanitizePolicy : uint8_t { kError, kZero };
// AWQ scale formula of the α grid: x-only s = mean|x|^α, duo s = mean|x|^α / mean|ŵ|^(1−α), or both.
enum class ScaleFormula : uint8_t { kXOnly, kDuo, kBoth };
// Arithmetic of the calibration's dense products (the layer forwards' linears, XᵀX, the Gram-form
// losses; docs/quantize.md "Compute"). kF32: f32 FMAs. kBf16: inputs rounded to bf16, f32 sums, on
// AMX-BF16 tiles where the CPU has them (elsewhere the same arithmetic on f32 FMAs, no faster than
// kF32). kAuto: kBf16 where AMX-BF16 runs (on the bundled model 1.3x less CPU time for the whole run,
// perplexity 81.8552 against f32's 81.8528; 6.6-8.6x the f32 GEMM on 7B shapes), else kF32 (bit for
// bit the f32 results of earlier versions; without AMX the bf16 arithmetic is no faster). So the
// bytes written depend on whether the CPU has AMX-BF16; --compute f32 gives the same bytes everywhere.
enum class ComputeMode : uint8_t { kAuto, kF32, kBf16 };

// How each linear's (scaled) weights become codes once its groups are fixed: kNearest rounds each
// weight to the nearest level; kGptq rounds column by column and spreads each column's error over
// the columns not yet rounded, through the inverse of the calibration inputs' Gram matrix
// (docs/quantize.md "Rounding"). kAuto: kGptq with AWQ, kNearest with RTN (which stays plain
// round-to-nearest, AutoAWQ's codes bit for bit).
enum class Rounding : uint8_t { kAuto, kNearest, kGptq };

struct QuantizeOptions {
  std::string out_dir;
  QuantMethod method = QuantMethod::kAwq;
  int bits = 4;
  int64_t group_size = 128;
  bool zero_point = true;               // false: symmetric (zero 2^(bits-1), s = max|w| / (2^(bits-1) − 1))
  std::string format = "autoawq-gemm";  // any convert target (convert.h convert_targets())
  bool force = false, progress = true;
  SanitizePolicy sanitize = SanitizePolicy::kError;
  std::vector<std::string> not_convert;  // module-name substrings kept dense (AutoAWQ's rule); written
  int threads = 0;                       // <= 0: all cores
  ComputeMode compute = ComputeMode::kAuto;
  uint64_t max_shard_bytes = 5'000'000'000ULL;

  // AWQ only. Calibration tokens: cut into `samples` blocks of exactly `seqlen` tokens (fewer blocks
  // when the text is short; see calibration_blocks).
  std::vector<int32_t> calib_tokens;
  int64_t samples = 64, seqlen = 512;
  ScaleFormula formula = ScaleFormula::kDuo;
  int grid = 20;                // α = i/grid for i in [0, grid] (α = 1 included)
  // Scale search (docs/quantize.md "Fast search"). fast_search: every candidate ranked by the Gram
  // form of its linears' output error (all tokens through XᵀX, at most proxy_rows rows per linear),
  // then the sub-module's output loss of s ≡ 1 and of the `refine` best (q/k/v: refine_attn), on at
  // most loss_tokens tokens for gate/up and attn_loss_tokens for q/k/v. false (--search full):
  // every candidate's output loss on every token.
  bool fast_search = true;
  int refine = 3, refine_attn = 4;
  int64_t loss_tokens = 8192, attn_loss_tokens = int64_t(1) << 40, proxy_rows = 1024;
  // q/k/v: every candidate is ranked by its attention output loss on attn_screen_tokens tokens
  // (whole blocks, evenly spaced) instead of the Gram form, when fewer than attn_loss_tokens.
  int64_t attn_screen_tokens = 4096;
  bool identity_candidate = true;  // s ≡ 1 (plain RTN) is always a candidate
  bool clip = false;            // clip search (AutoAWQ: on); off by default: it raised perplexity on the bundled model (BENCHMARKS.md)
  bool asym_clip = true;        // clip min and max (false: AutoAWQ's symmetric ±max clip)
  // Error propagation: each layer is calibrated on the previous layers' quantized outputs (their
  // stored codes, scales and folded norms) instead of the dense ones (AutoAWQ).
  bool propagate = false;
  // Rounding of the final weights (either method; kGptq needs calibration tokens). kAuto (GPTQ with
  // AWQ) is the default: it lowered perplexity and KLD on the bundled model and on the same model
  // without its outlier transform (BENCHMARKS.md "GPTQ rounding"). gptq_damp: λ =
  // gptq_damp · mean(diag XᵀX) added to the Gram matrix's diagonal. A linear whose GPTQ output
  // error ‖ΔW·X‖² exceeds round-to-nearest's keeps round-to-nearest.
  Rounding rounding = Rounding::kAuto;
  double gptq_damp = 0.01;
  std::string log_file;         // JSON lines, one per scaling group and per clipped linear
  // Other files this run reads (the calibration text): like the model, never written, replaced or
  // removed — OUT_DIR, its saved progress and log_file may not be, contain or lie inside them.
  std::vector<std::string> inputs;

  // Mixed precision (--mixed auto): each linear's relative output error ‖ΔW·X‖²/‖W·X‖² on the
  // calibration inputs is measured; the most sensitive are kept dense (the convert targets have
  // no 8-bit layout) while the decoder linears' bits per weight stay within budget_bpw. Needs
  // calibration tokens with either method.
  bool mixed = false;
  double budget_bpw = 4.5;
};

// One decoder linear's measured sensitivity (--mixed auto), and whether it was kept dense.
struct ModuleSensitivity {
  std::string module;
  double rel_error = 0;  // ‖ΔW·X‖² / ‖W·X‖² of its quantized form on the calibration inputs
  int64_t weights = 0;
  bool promoted = false;
};

struct QuantizeResult {
  size_t modules = 0, layers = 0, resumed_layers = 0, blocks = 0;
  size_t sanitized = 0;  // non-finite weights zeroed (SanitizePolicy::kZero)
  // Rounding::kGptq: linears rounded with error compensation, and those that kept round-to-nearest
  // (its output error was lower, or the Gram matrix was unusable: NaN/Inf, no positive factor).
  size_t gptq_linears = 0, gptq_kept_nearest = 0;
  std::vector<std::string> warnings;
  // --mixed auto: every quantizable linear, most sensitive first. Bits per weight over all decoder
  // linears (a kept-dense one at its dtype's width) with every quantizable one 4-bit and after
  // the promotions; and of a quantized module alone (bits + (16 + bits)/group: codes, an f16 scale
  // and a packed zero per group; what `awq inspect` calls effective bits per weight).
  std::vector<ModuleSensitivity> sensitivity;
  double bpw_quantized = 0, bpw_final = 0, bpw_quantized_module = 0;
};

// Per-layer progress callback (i finished layers of n, seconds so far, last group's loss ratio).
using QuantizeProgress = std::function<void(int64_t i, int64_t n, double seconds, double loss_ratio)>;

// Quantizes `model_dir` into opt.out_dir (OutputDir rules: atomic, --force, no overlap with the
// input). Throws awq::Error naming the file/tensor (and row, group for non-finite weights).
QuantizeResult quantize_model(const std::string& model_dir, const QuantizeOptions& opt,
                              const QuantizeProgress& on_layer = {});

// Calibration blocks: the token stream cut into consecutive, non-overlapping blocks of exactly
// `seqlen` tokens from its start, at most `samples` of them; the remainder is dropped.
std::vector<std::vector<int32_t>> calibration_blocks(const std::vector<int32_t>& tokens, int64_t samples, int64_t seqlen);

}  // namespace awq
