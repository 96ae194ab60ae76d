#include <cstdio>

#include "awq/dequantize_model.h"
#include "awq/gguf.h"
#include "awq/error.h"
#include "awq/progress.h"
#include "cli/args.h"
#include "cli/commands.h"

namespace awq::cli {

void print_write_notes(const std::vector<CastSummary>& casts, const std::vector<std::string>& warnings) {
  for (const auto& c : casts)
    std::printf("%zu tensor(s) cast %s -> %s (round to nearest even), max relative rounding %.3g (in %s)\n", c.tensors,
                std::string(dtype_name(c.from)).c_str(), std::string(dtype_name(c.to)).c_str(), c.max_rel, c.worst_tensor.c_str());
  for (const auto& w : warnings) std::fprintf(stderr, "%s\n", w.c_str());
}

Action add_dequantize(CLI::App& app) {
  auto* sub = app.add_subcommand("dequantize", "Write a plain (unquantized) Hugging Face checkpoint: w = (q - zero) * scale");
  struct Args {
    std::string model, out, dtype, max_shard = "5GB";
    bool force = false, quiet = false, allow_nonfinite = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("MODEL", a->model, "quantized model directory, or a .gguf file")->required();
  sub->add_option("-o,--output", a->out, "output directory (must not exist or be empty, unless --force)")->required();
  sub->add_option("--dtype", a->dtype, "f16 | bf16 | f32, any case (default: the scales' dtype; config torch_dtype for f32 scales)")
      ->check(float_dtype_arg());
  sub->add_option("--max-shard-size", a->max_shard, "largest output shard, e.g. 5GB, 500MB (default 5GB)")->check(size_arg());
  sub->add_flag("--force", a->force, "replace a non-empty output directory once the new one is complete");
  sub->add_flag("--allow-nonfinite", a->allow_nonfinite,
                "carry NaN/Inf in scales and tensors through (one warning per tensor) instead of refusing");
  sub->add_flag("-q,--quiet", a->quiet, "no progress bar");
  return [a]() {
    DequantizeOptions opt;
    opt.out_dir = a->out;
    opt.force = a->force;
    opt.progress = !a->quiet;
    opt.allow_nonfinite = a->allow_nonfinite;
    opt.max_shard_bytes = parse_size(a->max_shard);
    if (!a->dtype.empty()) {
      opt.dtype = parse_float_dtype_cli(a->dtype);  // validated while parsing
    }
    DequantizeResult r;
    if (is_gguf_file(a->model)) {
      r = dequantize_gguf(a->model, opt);
    } else {
      ModelDir dir(a->model);
      auto reader = open_format(dir);
      r = dequantize_model(dir, *reader, opt);
    }
    std::printf("wrote %s: %zu tensors (%zu dequantized modules) in %zu shard(s), %s, dtype %s\n", a->out.c_str(),
                r.tensors, r.modules, r.shards, human_bytes(r.bytes).c_str(), std::string(dtype_name(r.dtype)).c_str());
    print_write_notes(r.casts, r.warnings);
    return 0;
  };
}

}  // namespace awq::cli
