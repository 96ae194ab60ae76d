#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "awq/convert.h"
#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/model_config.h"
#include "awq/model_dir.h"
#include "awq/progress.h"
#include "awq/quantize.h"
#include "awq/resources.h"
#include "awq/tokenizer.h"
#include "cli/args.h"
#include "cli/commands.h"

namespace awq::cli {
namespace fs = std::filesystem;

namespace {

// An option whose empty value would silently mean something else (the default calibration text,
// no log, a --skip that matches every module): a usage error naming the option.
CLI::Validator non_empty(const std::string& what) {
  return CLI::Validator([what](std::string& v) -> std::string { return v.empty() ? "an empty value: give a " + what : ""; }, what,
                        "non_empty");
}

// True when `path` is `dir` or lies below it (both resolved as far as they exist).
bool inside(const std::string& path, const std::string& dir) {
  const fs::path p = fs::weakly_canonical(fs::absolute(path)), d = fs::weakly_canonical(fs::absolute(dir));
  auto pi = p.begin();
  for (auto di = d.begin(); di != d.end(); ++di, ++pi)
    if (di->empty() && std::next(di) == d.end()) break;  // a trailing separator
    else if (pi == p.end() || *pi != *di) return false;
  return true;
}

std::string read_text(const std::string& path) { return read_text_file(path, "the calibration text"); }

// --calib FILE, else MODEL/calib.txt, else the bundled model's calib.txt.
std::string calib_path(const std::string& given, const std::string& model) {
  if (!given.empty()) return given;
  if (fs::exists(fs::path(model) / "calib.txt")) return (fs::path(model) / "calib.txt").string();
  const std::string bundled = resolve_model_dir("");
  if (fs::exists(fs::path(bundled) / "calib.txt")) return (fs::path(bundled) / "calib.txt").string();
  throw Error("no calibration text: " + model + " has no calib.txt, nor has the bundled model; give --calib FILE");
}

// The --mixed auto table: every promoted module and the next most sensitive ones that stayed 4-bit.
void print_promotions(const QuantizeResult& r, double budget) {
  const size_t kept = size_t(std::count_if(r.sensitivity.begin(), r.sensitivity.end(), [](const ModuleSensitivity& m) { return m.promoted; }));
  // Two figures that answer different questions; each says what it covers (awq inspect prints both).
  std::printf("mixed precision: %.3f bits per weight over all decoder linears if all quantized, budget %.3f, %.3f written "
              "(%zu kept dense, at their dtype's width)\n",
              r.bpw_quantized, budget, r.bpw_final, kept);
  std::printf("  a quantized module alone: %.3f bits per weight (codes, scales, zeros; awq inspect's effective bits/weight)\n",
              r.bpw_quantized_module);
  std::printf("  %-4s %-44s %14s %10s  %s\n", "rank", "module", "rel. error", "weights", "kept");
  size_t shown_rest = 0;
  for (size_t i = 0; i < r.sensitivity.size(); ++i) {
    const auto& m = r.sensitivity[i];
    if (!m.promoted && shown_rest++ >= 3) continue;
    std::printf("  %-4zu %-44s %14.4e %10lld  %s\n", i + 1, m.module.c_str(), m.rel_error, (long long)m.weights,
                m.promoted ? "dense (promoted: most sensitive that fit the budget)" : "4-bit");
  }
}

}  // namespace

namespace {

// --samples x --seqlen is refused when the calibration could not fit: it holds at least the layer's
// inputs and outputs for every calibration token in f32 (2 x tokens x hidden_size x 4 bytes, a
// lower bound of what it uses), compared with the memory available (MemAvailable, or the cgroup's
// headroom; awq/resources.h), and never more than 2^31 tokens.
template <class Args>
void check_calibration_memory(const Args& a, int64_t hidden) {
  const std::string what = "--samples " + std::to_string(a.samples) + " x --seqlen " + std::to_string(a.seqlen);
  const double tokens = double(a.samples) * double(a.seqlen);
  if (tokens > double(int64_t(1) << 31))
    throw UsageError(what + " asks for more than 2^31 calibration tokens; lower --samples (a text too short gives fewer blocks anyway)");
  if (hidden < 1) return;
  ResourceNeeds needs;
  needs.out_dir = a.out;
  needs.tensor = "calibration activations (2 x " + std::to_string(int64_t(tokens)) + " tokens x hidden_size " +
                 std::to_string(hidden) + " x 4 bytes, at least)";
  needs.tensor_bytes = uint64_t(2 * tokens * double(hidden) * 4);
  try {
    check_resources(needs);
  } catch (const Error& e) {
    throw UsageError(what + ": " + e.what() + "; lower --samples or --seqlen");
  }
}

}  // namespace

Action add_quantize(CLI::App& app) {
  auto* sub = app.add_subcommand("quantize", "Quantize a dense Hugging Face checkpoint to 4 bits (AWQ or round-to-nearest)");
  struct Args {
    std::string model, out, method = "awq", format = "autoawq-gemm", calib, calib_tokens, sanitize = "error", formula = "duo", log, max_shard = "5GB",
                mixed = "off", search = "fast", rounding = "auto", compute = "auto";
    double budget = 4.5, gptq_damp = 0.01;
    int bits = 4, threads = 0, grid = 20;
    int64_t group = 128, samples = 64, seqlen = 512, loss_tokens = 8192, attn_loss_tokens = int64_t(1) << 40, proxy_rows = 1024;
    int refine = 3, refine_attn = 4;
    int64_t attn_screen_tokens = 4096;
    bool zero_point = false, symmetric = false, force = false, quiet = false, no_clip = false, sym_clip = false, no_identity = false,
         propagate = false, clip = false;
    std::vector<std::string> skip;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("MODEL", a->model, "dense model directory (f32, bf16 or f16)")->required();
  sub->add_option("-o,--output", a->out, "output directory (must not exist or be empty, unless --force)")->required()->check(non_empty("DIR"));
  sub->add_option("--method", a->method, "awq (default) | rtn")->check(CLI::IsMember({"awq", "rtn"}));
  sub->add_option("--bits", a->bits, "4 (default) | 8 (8 needs --format dense)")->check(CLI::IsMember({4, 8}));
  sub->add_option("--group-size", a->group, "input columns per quantization group (default 128)");
  auto* zp = sub->add_flag("--zero-point", a->zero_point, "asymmetric with a zero point per group (default)");
  sub->add_flag("--symmetric", a->symmetric, "symmetric (zero point 2^(bits-1))")->excludes(zp);
  sub->add_option("--format", a->format, "any convert target (default autoawq-gemm)")->check(CLI::IsMember(convert_targets()));
  sub->add_option("--calib", a->calib, "calibration text (default: MODEL/calib.txt, else the bundled model's)")->check(non_empty("FILE"));
  sub->add_option("--calib-tokens", a->calib_tokens, "pre-tokenized calibration: a file of whitespace-separated token ids (instead of --calib)")->check(non_empty("FILE"));
  sub->add_option("--samples", a->samples, "calibration blocks (default 64); --samples x --seqlen is refused when 2 f32 copies of hidden_size per token exceed the memory available");
  sub->add_option("--seqlen", a->seqlen, "tokens per calibration block (default 512)");
  sub->add_option("--scale-formula", a->formula, "duo (default) | x | both")->check(CLI::IsMember({"duo", "x", "both"}));
  sub->add_option("--grid", a->grid, "α grid: i/grid for i = 0..grid, grid 1 to 1000 (default 20)");
  sub->add_option("--search", a->search,
                  "fast (default): rank every candidate by the Gram form of its linears' output error, then the output loss of the "
                  "--refine best | full: every candidate's output loss on every calibration token")
      ->check(CLI::IsMember({"fast", "full"}));
  sub->add_option("--refine", a->refine, "fast search: gate/up (o, down) candidates besides s = 1 that get the output loss (default 3)");
  sub->add_option("--refine-attn", a->refine_attn, "fast search: q/k/v candidates besides s = 1 that get the attention output loss (default 4)");
  sub->add_option("--attn-screen-tokens", a->attn_screen_tokens,
                  "fast search: rank the q/k/v candidates by their attention output loss on this many tokens (default 4096; whole "
                  "blocks, evenly spaced; the Gram form when not fewer than --attn-loss-tokens)");
  sub->add_option("--attn-loss-tokens", a->attn_loss_tokens, "fast search: calibration tokens of the q/k/v output loss (default: all; whole blocks)");
  sub->add_option("--loss-tokens", a->loss_tokens,
                  "fast search: calibration tokens of the gate/up output loss (default 8192, evenly spaced)");
  sub->add_option("--proxy-rows", a->proxy_rows, "fast search: rows per linear in the Gram-form ranking (default 1024, evenly spaced)");
  sub->add_flag("--no-identity", a->no_identity, "drop s = 1 (plain RTN) from the candidates (AutoAWQ's grid)");
  sub->add_flag("--clip", a->clip, "run AutoAWQ's clip search after the scales (off by default: it raised perplexity on the bundled model)");
  sub->add_flag("--no-clip", a->no_clip, "no clip search (the default)");
  sub->add_flag("--propagate", a->propagate, "calibrate each layer on the previous layers' quantized outputs (error propagation)");
  sub->add_option("--rounding", a->rounding,
                  "auto (default): gptq with --method awq, nearest with --method rtn | nearest: each weight to the nearest level | "
                  "gptq: column by column, each column's error spread over the columns not yet rounded through the calibration "
                  "inputs' Gram matrix (needs calibration, with either method)")
      ->check(CLI::IsMember({"auto", "nearest", "gptq"}));
  sub->add_option("--gptq-damp", a->gptq_damp, "gptq: damping added to the Gram matrix's diagonal, as a fraction of its mean (default 0.01)");
  sub->add_flag("--sym-clip", a->sym_clip, "AutoAWQ's symmetric ±max clip instead of clipping min and max");
  sub->add_option("--mixed", a->mixed,
                  "auto: measure each linear's output error on the calibration data and keep the most sensitive dense within --budget | off (default)")
      ->check(CLI::IsMember({"auto", "off"}));
  sub->add_option("--budget", a->budget, "bits per weight of the decoder linears allowed with --mixed auto (default 4.5)");
  sub->add_option("--sanitize", a->sanitize, "NaN/Inf weights: error (default) | zero (replace by 0)")->check(CLI::IsMember({"error", "zero"}));
  sub->add_option("--skip", a->skip, "keep modules whose name contains this dense (repeatable; written to modules_to_not_convert)")->check(non_empty("NAME"));
  sub->add_option("--compute", a->compute,
                  "arithmetic of the calibration's dense products and attention: auto (default: bf16 where AMX-BF16 runs, "
                  "else f32) | f32 | bf16 (inputs rounded to bf16, f32 sums)")
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
  sub->add_option("--threads", a->threads, "threads, 1 to 1024 (default, or 0: all cores)")->check(CLI::Range(0, 1024));
  sub->add_option("--log", a->log, "append one JSON line per scaling group, clipped linear and layer")->check(file_name_arg());
  sub->add_option("--max-shard-size", a->max_shard, "largest output shard (default 5GB)")->check(size_arg());
  sub->add_flag("--force", a->force, "replace a non-empty output directory once the new one is complete");
  sub->add_flag("-q,--quiet", a->quiet, "no progress");
  return [a]() {
    // Option values refused up front (usage errors, exit 2), before anything is read or computed.
    const bool calib = a->method == "awq" || a->mixed == "auto" || a->rounding == "gptq";
    if (!(a->gptq_damp >= 0) || !std::isfinite(a->gptq_damp))
      throw UsageError("--gptq-damp " + std::to_string(a->gptq_damp) + ": must be a finite number >= 0");
    if (a->samples < 1) throw UsageError("--samples " + std::to_string(a->samples) + ": needs at least 1 calibration block");
    if (a->seqlen < 1) throw UsageError("--seqlen " + std::to_string(a->seqlen) + ": needs at least 1 token per calibration block");
    if (a->grid < 1 || a->grid > 1000)
      throw UsageError("--grid " + std::to_string(a->grid) + ": must be 1 to 1000 (alpha = i/grid, i = 0..grid; default 20)");
    if (a->refine < 1) throw UsageError("--refine " + std::to_string(a->refine) + ": needs at least 1 candidate");
    if (a->refine_attn < 1) throw UsageError("--refine-attn " + std::to_string(a->refine_attn) + ": needs at least 1 candidate");
    if (a->attn_screen_tokens < 1)
      throw UsageError("--attn-screen-tokens " + std::to_string(a->attn_screen_tokens) + ": needs at least 1 token");
    if (a->attn_loss_tokens < 1) throw UsageError("--attn-loss-tokens " + std::to_string(a->attn_loss_tokens) + ": needs at least 1 token");
    if (a->loss_tokens < 1) throw UsageError("--loss-tokens " + std::to_string(a->loss_tokens) + ": needs at least 1 token");
    if (a->proxy_rows < 1) throw UsageError("--proxy-rows " + std::to_string(a->proxy_rows) + ": needs at least 1 row");
    if (!(a->budget > 0) || !std::isfinite(a->budget))
      throw UsageError("--budget " + std::to_string(a->budget) + ": must be a positive, finite number of bits per weight");
    if (!a->calib.empty() && !a->calib_tokens.empty())
      throw UsageError("--calib and --calib-tokens: give one calibration source, not both");
    if (is_gguf_file(a->model))  // else named "not a .safetensors or .npz file"
      throw Error(a->model + ": is a GGUF file; quantize reads a dense Hugging Face checkpoint (a directory of safetensors)");
    if (!a->log.empty() && fs::is_directory(a->log)) throw Error(a->log + ": is a directory; --log appends to one file");
    if (!a->log.empty() && inside(a->log, a->out))  // the new OUT_DIR replaces the tree it was appended to
      throw Error(a->log + ": lies inside OUT_DIR " + a->out + ", which the run replaces; put --log outside it");
    if (a->group < 1) throw UsageError("--group-size " + std::to_string(a->group) + ": must be a positive number of input columns");
    if (a->bits == 8 && a->format != "dense")
      throw UsageError("--bits 8 needs --format dense (an 8-bit fake-quantized checkpoint): --format " + a->format + " holds 4-bit codes");
    if (a->format == "modelopt" && !a->symmetric)
      throw UsageError("--format modelopt stores symmetric codes only (no zero point): add --symmetric");
    if (const fs::path cj = fs::path(a->model) / "config.json"; calib && fs::exists(cj)) {
      const int64_t ctx = parse_model_config(read_json_file(cj.string()), cj.string()).max_positions;
      if (a->seqlen > ctx)
        throw UsageError("--seqlen " + std::to_string(a->seqlen) + " exceeds the model's context of " + std::to_string(ctx) +
                         " tokens (max_position_embeddings in " + cj.string() + ")");
      check_calibration_memory(*a, parse_model_config(read_json_file(cj.string()), cj.string()).hidden);
    }
    QuantizeOptions opt;
    opt.out_dir = a->out;
    opt.method = a->method == "rtn" ? QuantMethod::kRtn : QuantMethod::kAwq;
    opt.bits = a->bits;
    opt.group_size = a->group;
    opt.zero_point = !a->symmetric;
    opt.format = a->format;
    opt.force = a->force;
    opt.progress = !a->quiet;
    opt.sanitize = a->sanitize == "zero" ? SanitizePolicy::kZero : SanitizePolicy::kError;
    opt.not_convert = a->skip;
    opt.threads = a->threads;
    opt.compute = a->compute == "f32" ? ComputeMode::kF32 : a->compute == "bf16" ? ComputeMode::kBf16 : ComputeMode::kAuto;
    opt.max_shard_bytes = parse_size(a->max_shard);
    opt.samples = a->samples;
    opt.seqlen = a->seqlen;
    opt.formula = a->formula == "x" ? ScaleFormula::kXOnly : a->formula == "both" ? ScaleFormula::kBoth : ScaleFormula::kDuo;
    opt.grid = a->grid;
    opt.fast_search = a->search == "fast";
    opt.refine = a->refine;
    opt.refine_attn = a->refine_attn;
    opt.loss_tokens = a->loss_tokens;
    opt.attn_loss_tokens = a->attn_loss_tokens;
    opt.attn_screen_tokens = a->attn_screen_tokens;
    opt.proxy_rows = a->proxy_rows;
    opt.identity_candidate = !a->no_identity;
    opt.clip = a->clip && !a->no_clip;
    opt.asym_clip = !a->sym_clip;
    opt.propagate = a->propagate;
    opt.rounding = a->rounding == "gptq" ? Rounding::kGptq : a->rounding == "nearest" ? Rounding::kNearest : Rounding::kAuto;
    opt.gptq_damp = a->gptq_damp;
    opt.log_file = a->log;
    opt.mixed = a->mixed == "auto";
    opt.budget_bpw = a->budget;
    for (const std::string& k : key_file_inputs()) opt.inputs.push_back(k);  // --log and OUT_DIR never replace or append to it
    const bool calibrated = calib;
    if (calibrated && !a->calib_tokens.empty()) {
      std::ifstream f(a->calib_tokens);
      if (!f) throw Error(a->calib_tokens + ": cannot read the calibration token ids");
      long long id;
      while (f >> id) opt.calib_tokens.push_back(int32_t(id));
      if (!f.eof()) throw Error(a->calib_tokens + ": not a list of integer token ids");
      opt.inputs.push_back(a->calib_tokens);
    } else if (calibrated) {
      const std::string path = calib_path(a->calib, a->model);
      opt.inputs.push_back(path);
      const auto tok = load_tokenizer(a->model);
      opt.calib_tokens = tok->encode(read_text(path));
      if (!a->quiet) std::fprintf(stderr, "calibration: %s, %zu tokens\n", path.c_str(), opt.calib_tokens.size());
    }
    const bool show = !a->quiet, searched = opt.method == QuantMethod::kAwq;
    const auto r = quantize_model(a->model, opt, [show, searched](int64_t i, int64_t n, double secs, double ratio) {
      if (!show) return;
      const double eta = secs / double(i) * double(n - i);
      std::fprintf(stderr, "layer %lld/%lld  %.1fs  ETA %.1fs", (long long)i, (long long)n, secs, eta);
      // The ratio exists only where a scale search ran (RTN has none: it was printed as 0.000).
      if (searched && std::isfinite(ratio)) std::fprintf(stderr, "  loss/RTN %.3f", ratio);
      std::fprintf(stderr, "\n");
    });
    for (const auto& w : r.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    std::printf("wrote %s: %zu quantized modules, %zu layers (%zu resumed)%s", a->out.c_str(), r.modules, r.layers, r.resumed_layers,
                r.blocks ? "" : "\n");
    if (r.blocks) std::printf(", %zu calibration blocks of %lld tokens\n", r.blocks, (long long)a->seqlen);
    if (r.gptq_linears)
      std::printf("gptq rounding: %zu linears with error compensation, %zu kept round-to-nearest (lower output error, or an unusable Gram matrix)\n",
                  r.gptq_linears - r.gptq_kept_nearest, r.gptq_kept_nearest);
    if (r.sanitized) std::printf("sanitized: %zu non-finite weights replaced by 0\n", r.sanitized);
    if (opt.mixed) print_promotions(r, opt.budget_bpw);
    return 0;
  };
}

}  // namespace awq::cli
