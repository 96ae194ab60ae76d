#include <cstdio>
#include <memory>

#include "awq/compare.h"
#include "awq/compare_report.h"
#include "awq/fsutil.h"
#include "awq/progress.h"
#include "cli/args.h"
#include "cli/commands.h"

namespace awq::cli {

Action add_compare(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "compare", "Each linear of QUANT against the dense REF: cosine, relative MSE, SQNR, max |dw|, worst group");
  struct Opts {
    std::string ref, quant, html;
    bool json = false, force = false, raw = false;
    double bar = 0.99;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("REF", o->ref, "dense reference model directory (F32/BF16/F16)")->required();
  sub->add_option("QUANT", o->quant, "any checkpoint inspect reads, or a dense one")->required();
  sub->add_flag("--json", o->json, "print the ranked layers as JSON");
  sub->add_option("--html", o->html, "also write a self-contained HTML report to FILE (an existing FILE only with --force)")
      ->check(file_name_arg());
  sub->add_flag("--force", o->force, "let --html replace an existing file (once the new one is complete)");
  sub->add_flag("--raw", o->raw,
                "measure the stored weights as they are: AWQ's scale folds (W·diag(s), norm g/s) are not undone "
                "(the norms are still compared, and the report says which linears then measure scaled weights)");
  sub->add_option("--cosine-bar", o->bar, "flag layers whose cosine similarity is below this (default 0.99)")
      ->check(finite_range_arg(-1.0, 1.0));
  sub->add_option("--threads", o->threads, "threads, 1 to 1024 (default, or 0: all cores)")->check(CLI::Range(0, 1024));
  return [o]() { return with_json_error(o->json, [&] {
    // The report never replaces or lands inside a model (or key) it reads, nor an existing file without --force.
    if (!o->html.empty()) {
      std::vector<std::string> inputs = key_file_inputs();
      inputs.insert(inputs.end(), {o->ref, o->quant});
      check_output_file(o->html, o->force, inputs, "--html");
    }
    CompareOptions opt;
    opt.cosine_bar = o->bar;
    opt.threads = o->threads;
    opt.undo_folds = !o->raw;
    std::unique_ptr<Progress> bar;
    opt.on_progress = [&bar](size_t done, size_t total) {
      if (!bar) bar = std::make_unique<Progress>("compare", total);
      bar->advance(1);
      if (done == total) bar->finish();
    };
    const CompareResult r = compare_weights(o->ref, o->quant, opt);
    if (!o->html.empty()) write_file_atomic(o->html, render_compare_html(r), /*replace=*/o->force);
    if (o->json) std::printf("%s\n", json_text(compare_json(r), 2).c_str());
    else std::printf("%s", render_compare_text(r).c_str());
    return 0;
  }); };
}

}  // namespace awq::cli
