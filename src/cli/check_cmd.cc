#include <cstdio>

#include "awq/check.h"
#include "awq/gguf.h"
#include "cli/args.h"
#include "cli/commands.h"

namespace awq::cli {

// Exit status: 0 no errors, 1 errors found, 2 the check itself could not run.
Action add_check(CLI::App& app) {
  auto* sub = app.add_subcommand("check", "Diagnose a quantized checkpoint: errors that break loading, warnings, notes");
  struct Args {
    std::string model;
    bool json = false, no_values = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("MODEL", a->model, "model directory (or a .safetensors file)")->required();
  sub->add_flag("--json", a->json, "print {\"findings\": [{severity, code, tensor, message}, ...]}");
  sub->add_flag("--no-values", a->no_values, "skip the value scans (NaN/Inf, scales, zero points, codes)");
  sub->add_flag("-q,--quiet", a->quiet, "no progress bar");
  return [a]() {
    CheckReport r;
    try {
      CheckOptions opt;
      opt.numeric = !a->no_values;
      opt.progress = !a->quiet;
      refuse_gguf_without_magic(a->model);
      r = check_model(a->model, opt);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "awq: check could not run: %s\n", e.what());
      return 2;
    }
    if (a->json) std::printf("%s\n", json_text(check_json(r), 2).c_str());
    else std::printf("%s", render_check_text(r).c_str());
    return r.count(Severity::kError) ? 1 : 0;
  };
}

}  // namespace awq::cli
