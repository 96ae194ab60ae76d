#include <cmath>
#include <cstdio>

#include "awq/convert.h"
#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/progress.h"
#include "cli/args.h"
#include "cli/commands.h"

namespace awq::cli {

Action add_convert(CLI::App& app) {
  auto* sub = app.add_subcommand("convert", "Translate a checkpoint into another 4-bit layout, keeping every code and scale");
  struct Args {
    std::string model, out, to = "autoawq-gemm", gptq_format = "v1", max_shard = "5GB", gguf_type = "q4_1", dense_type = "f16";
    bool force = false, quiet = false, requantize = false, allow_nonfinite = false, allow_underflow = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("MODEL", a->model, "quantized model directory")->required();
  sub->add_option("-o,--output", a->out, "output directory (must not exist or be empty, unless --force)")->required();
  sub->add_option("--to", a->to, "autoawq-gemm (default) | autoawq-gemv | autoawq-gemv-fast | compressed-tensors | gptq | modelopt | dense | gguf (-o names the .gguf file)")
      ->check(CLI::IsMember({"autoawq-gemm", "autoawq-gemv", "autoawq-gemv-fast", "compressed-tensors", "gptq", "modelopt", "dense", "gguf"}));
  sub->add_option("--gguf-type", a->gguf_type, "gguf: q4_1 (default; exact) | q4_k (codes kept, scales and mins in Q4_K's 6-bit form; faster in llama.cpp)")
      ->check(CLI::IsMember({"q4_1", "q4_k"}));
  sub->add_option("--dense-type", a->dense_type, "gguf: embeddings, lm_head and unquantized linears as f16 (default) | bf16 | q8_0")
      ->check(CLI::IsMember({"f16", "bf16", "q8_0"}));
  sub->add_option("--gptq-format", a->gptq_format, "v1 (default; checkpoint_format gptq, stores z-1) | v2 (gptq_v2, stores z)")
      ->check(CLI::IsMember({"v1", "v2"}));
  sub->add_option("--max-shard-size", a->max_shard, "largest output shard, e.g. 5GB, 500MB (default 5GB)")->check(size_arg());
  sub->add_flag("--requantize", a->requantize,
                "re-quantize (RTN) the modules the target cannot represent exactly, instead of refusing; reports the added error per layer");
  sub->add_flag("--allow-nonfinite", a->allow_nonfinite,
                "carry NaN/Inf in scales and tensors through (one warning per tensor) instead of refusing");
  sub->add_flag("--allow-underflow", a->allow_underflow,
                "gguf: write scales below f16's smallest subnormal (5.96e-8) as 0 (those groups dequantize to one value; one warning "
                "per tensor) instead of refusing");
  sub->add_flag("--force", a->force, "replace a non-empty output directory once the new one is complete");
  sub->add_flag("-q,--quiet", a->quiet, "no progress bar");
  return [a]() {
    ConvertOptions opt;
    opt.out_dir = a->out;
    opt.to = a->to;
    opt.gptq_format = a->gptq_format;
    opt.gguf_type = a->gguf_type;
    opt.dense_type = a->dense_type;
    opt.force = a->force;
    opt.requantize = a->requantize;
    opt.allow_nonfinite = a->allow_nonfinite;
    opt.allow_underflow = a->allow_underflow;
    opt.progress = !a->quiet;
    opt.max_shard_bytes = parse_size(a->max_shard);
    // The output (a directory, or the .gguf file) never replaces the key file in use.
    refuse_output_overlapping_inputs(a->out, key_file_inputs());
    ModelDir dir(a->model);
    // A dense checkpoint (no quantization config) goes to GGUF as it is (--dense-type).
    const bool dense = dir.quant_config().is_null() && !dir.hf_quant_config().is_object() && !dir.is_npz();
    std::unique_ptr<FormatReader> reader;
    if (!(dense && opt.to == "gguf")) reader = open_format(dir);
    const ConvertResult r = reader ? convert_model(dir, *reader, opt) : convert_to_gguf(dir, nullptr, opt);
    std::printf("converted %s -> %s: %zu modules, %zu tensors in %zu shard(s), %s, wrote %s\n", r.from.c_str(), r.to.c_str(), r.modules,
                r.tensors, r.shards, human_bytes(r.bytes).c_str(), a->out.c_str());
    if (r.to == "gguf") {
      for (const auto& d : r.layer_diffs)
        std::printf("%s: max |w_gguf - w_source| %.6g (in %s)\n", d.layer < 0 ? "embeddings/head" : ("layer " + std::to_string(d.layer)).c_str(),
                    d.max_abs, d.tensor.c_str());
      std::printf("total: max |w_gguf - w_source| %.6g (in %s)\n", r.max_abs_diff, r.max_diff_module.c_str());
    }
    if (r.arithmetic_differs && r.to != "gguf")
      std::printf("note: %s and %s dequantize with different arithmetic (s*(q-z) vs the fused q*s + sz); every code and scale is kept; "
                  "largest weight difference %.6g (in %s)\n", r.from.c_str(), r.to.c_str(), r.max_abs_diff, r.max_diff_module.c_str());
    for (const auto& q : r.requantized) {
      if (std::isfinite(q.max_abs) && std::isfinite(q.rel_rms))
        std::printf("requantized %s: max |added error| %.6g, relative RMS %.4g%% (because: %s)\n", q.module.c_str(), q.max_abs,
                    100.0 * q.rel_rms, q.reason.c_str());
      else
        std::printf("requantized %s: added error not measurable (the source weights hold NaN/Inf, carried through) (because: %s)\n",
                    q.module.c_str(), q.reason.c_str());
    }
    for (const auto& n : r.notes) std::printf("note: %s\n", n.c_str());
    print_write_notes(r.casts, r.warnings);
    return 0;
  };
}

}  // namespace awq::cli
