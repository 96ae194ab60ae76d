// awq eval [MODEL] [--ref REF] [--text FILE] [--ctx N] [--stride S] [--json] [--html FILE]:
// perplexity (Hugging Face's sliding window) and, with --ref, KL-divergence statistics and the
// layer-by-layer divergence against the reference, both models run here on the same tokens.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>

#include "awq/error.h"
#include "awq/eval.h"
#include "awq/eval_report.h"
#include "awq/fsutil.h"
#include "awq/gguf.h"
#include "awq/model.h"
#include "awq/progress.h"
#include "awq/tokenizer.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/layer_cache_args.h"

namespace awq::cli {
namespace {
namespace fs = std::filesystem;

struct Args {
  std::string model, ref, text, html;
  int64_t ctx = 0, stride = 0;
  bool json = false, force = false;
  int threads = 0;
  LayerCacheArgs cache;  // one cache, shared by MODEL and REF
};

// --text, else MODEL's eval.txt, else the bundled model's.
std::string text_path(const Args& a, const std::string& model_dir) {
  if (!a.text.empty()) return a.text;
  const fs::path own = fs::path(model_dir) / "eval.txt";
  if (fs::exists(own)) return own.string();
  const fs::path bundled = fs::path(resolve_model_dir("")) / "eval.txt";
  if (fs::exists(bundled)) return bundled.string();
  throw Error("no --text given, and neither " + own.string() + " nor " + bundled.string() + " exists");
}

// MODEL's tokenizer, else REF's (a .gguf file carries its own).
std::unique_ptr<Tokenizer> tokenizer_for(const std::string& model_dir, const std::string& ref_dir) {
  for (const std::string& d : {model_dir, ref_dir}) {
    if (d.empty()) continue;
    if (is_gguf_file(d) || fs::exists(fs::path(d) / "tokenizer.json") || fs::exists(fs::path(d) / "tokenizer.model"))
      return load_tokenizer(d);
  }
  throw Error(model_dir + ": no tokenizer.json or tokenizer.model" + (ref_dir.empty() ? "" : " (nor in " + ref_dir + ")"));
}

std::string read_text(const std::string& path) { return read_text_file(path, "the text file"); }

// A usage error when --ctx exceeds `who`'s context (max_position_embeddings).
void check_ctx(int64_t ctx, const Model& m, const std::string& who) {
  if (ctx > m.config().max_positions)
    throw UsageError("--ctx " + std::to_string(ctx) + " exceeds " + who + "'s context of " + std::to_string(m.config().max_positions) +
                     " tokens (max_position_embeddings)");
}

int run(const Args& a) {
  const std::string dir = resolve_model_dir(a.model);
  for (const std::string& m : {dir, a.ref})  // named as missing, not as "no tokenizer" or with the bundled text
    if (!m.empty() && !fs::exists(m)) throw Error(m + ": no such model directory or file");
  const std::string text_file = text_path(a, dir);
  if (!a.html.empty()) {  // checked before the evaluation runs: never an input, an existing file only with --force
    std::vector<std::string> inputs = key_file_inputs();
    inputs.insert(inputs.end(), {dir, text_file});
    if (!a.ref.empty()) inputs.push_back(a.ref);
    check_output_file(a.html, a.force, inputs, "--html");
  }
  const std::string text = read_text(text_file);
  if (text.empty()) throw Error(text_file + ": the text file is empty; nothing to evaluate");
  auto tok = tokenizer_for(dir, a.ref);
  std::vector<int32_t> ids;
  try {
    ids = tok->encode(text);
  } catch (const Error& e) {
    throw Error(text_file + ": " + e.what() + " (expected a UTF-8 text file)");
  }
  if (ids.size() < 2) throw Error(text_file + ": " + std::to_string(ids.size()) + " token(s); perplexity needs at least 2");
  // f32 activations: the quantization error under test must not drown in the runtime's own.
  ModelOptions mo;
  mo.threads = a.threads;
  mo.path = kernels::Path::kF32;
  apply_layer_cache(a.cache, mo);
  auto model = Model::load(dir, mo);
  std::unique_ptr<Model> ref;
  if (!a.ref.empty()) ref = Model::load(a.ref, mo);
  if (a.ctx > 0) check_ctx(a.ctx, *model, "the model");
  if (ref && a.ctx > 0) check_ctx(a.ctx, *ref, "the reference");
  EvalOptions opt;
  opt.ctx = a.ctx > 0 ? a.ctx : std::min<int64_t>(512, model->config().max_positions);
  if (ref && a.ctx <= 0) opt.ctx = std::min(opt.ctx, ref->config().max_positions);
  if (a.stride > opt.ctx)
    throw UsageError("--stride " + std::to_string(a.stride) + " exceeds the window (--ctx " + std::to_string(opt.ctx) +
                     "): tokens between windows would never be scored");
  opt.stride = a.stride;
  opt.model_label = "MODEL " + dir;
  opt.ref_label = "REF " + a.ref;
  // Progress with ETA on a terminal (stderr): one step per decoder layer of each window.
  std::unique_ptr<Progress> bar;
  uint64_t bar_done = 0;
  opt.on_progress = [&](int64_t done, int64_t total) {
    if (!bar) bar = std::make_unique<Progress>(ref ? "eval vs ref" : "eval", uint64_t(total), true, "layer-windows");
    bar->advance(uint64_t(done) - bar_done);
    bar_done = uint64_t(done);
  };
  const EvalResult r = evaluate(*model, ref.get(), ids, opt);
  if (bar) bar->finish();
  const std::optional<int32_t> bos = tok->bos_id();
  const EvalSources src{dir, a.ref, text_file, bos && !ids.empty() && ids.front() == *bos};
  if (!a.html.empty()) write_file_atomic(a.html, render_eval_html(r, src), /*replace=*/a.force);
  if (a.json) std::printf("%s\n", json_text(eval_json(r, src), 2).c_str());
  else std::printf("%s", render_eval_text(r, src).c_str());
  return 0;
}

}  // namespace

Action add_eval(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "eval", "Perplexity (Hugging Face sliding window); with --ref: KL divergence and the first divergent layer");
  auto a = std::make_shared<Args>();
  sub->add_option("MODEL", a->model, "model directory or .gguf file (default: the bundled model in models/)");
  sub->add_option("--ref", a->ref, "reference model directory or .gguf (e.g. the dense original), run on the same tokens");
  sub->add_option("--text", a->text, "text file (default: MODEL/eval.txt, else the bundled model's)");
  sub->add_option("--ctx", a->ctx, "window length in tokens (default: 512, or the model's context if shorter)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 30));
  sub->add_option("--stride", a->stride, "tokens each window advances (default: ctx; < ctx overlaps windows)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  sub->add_flag("--json", a->json, "print the results as JSON");
  sub->add_option("--html", a->html, "also write a self-contained HTML report to FILE (an existing FILE only with --force)")
      ->check(file_name_arg());
  sub->add_flag("--force", a->force, "let --html replace an existing file (once the new one is complete)");
  sub->add_option("--threads", a->threads, "threads per model, 1 to 1024 (default, or 0: all cores)")->check(CLI::Range(0, 1024));
  add_layer_cache_options(sub, a->cache);  // with --ref, MODEL and REF share the one budget
  return [a]() { return with_json_error(a->json, [&] { return run(*a); }); };
}

}  // namespace awq::cli
