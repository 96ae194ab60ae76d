#include <cstdio>

#include "awq/repair.h"
#include "cli/commands.h"

namespace awq::cli {

Action add_repair(CLI::App& app) {
  auto* sub = app.add_subcommand("repair", "Fix what `check` can fix without changing any quantized value, into a new directory");
  struct Args {
    std::string model, out;
    bool force = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("MODEL", a->model, "model directory (never edited)")->required();
  sub->add_option("-o,--output", a->out, "output directory (must not exist or be empty, unless --force)")->required();
  sub->add_flag("--force", a->force, "replace a non-empty output directory once the new one is complete");
  sub->add_flag("-q,--quiet", a->quiet, "no progress bar");
  return [a]() {
    RepairOptions opt;
    opt.out_dir = a->out;
    opt.force = a->force;
    opt.progress = !a->quiet;
    const RepairResult r = repair_model(a->model, opt);
    for (const auto& c : r.remarks) std::printf("note: %s\n", c.c_str());
    if (r.changes.empty()) std::printf("no changes needed; wrote a copy to %s (tensor bytes and configs unchanged)\n", a->out.c_str());
    for (const auto& c : r.changes) std::printf("repaired: %s\n", c.c_str());
    if (!r.changes.empty()) std::printf("wrote %s (%zu change%s)\n", a->out.c_str(), r.changes.size(), r.changes.size() == 1 ? "" : "s");
    return 0;
  };
}

}  // namespace awq::cli
