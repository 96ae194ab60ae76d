// Subcommand registration for the `awq` command (each in its own file).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "awq/dequantize_model.h"
#include "awq/kernels.h"
#include "awq/model.h"

namespace awq::cli {

// Each registers its subcommand and returns the action to run when it was chosen.
using Action = std::function<int()>;
Action add_inspect(CLI::App& app);
Action add_dequantize(CLI::App& app);
Action add_bench(CLI::App& app);
Action add_check(CLI::App& app);
Action add_repair(CLI::App& app);
Action add_convert(CLI::App& app);
Action add_tokenize(CLI::App& app);
Action add_run(CLI::App& app);
Action add_quantize(CLI::App& app);
Action add_eval(CLI::App& app);
// `awq bench run`: registered under the bench subcommand; the action runs when `run` was given.
Action add_bench_run(CLI::App& bench);

// MODEL as given, or with none the bundled model: the first directory with a config.json under
// ./models/, else under the source tree's models/ (compiled in). Throws awq::Error when none.
std::string resolve_model_dir(const std::string& given);

// The options of the commands that load a model and run it (`awq run`, `awq bench run`).
struct ModelRunOptions {
  std::string model;         // MODEL as given; empty: the bundled model (resolve_model_dir)
  std::vector<int> threads;  // --threads, each in [1, 1024] (else a usage error); empty: all cores
  std::string path = "int16";  // --path: the quantized linears' arithmetic (kernels::path_name spelling)
  std::string kv_cache = "f32";  // --kv-cache f32|f16
};
// Registers MODEL and --threads on `sub`. `thread_list`: --threads takes a comma-separated list of
// counts (bench run measures each); otherwise exactly one.
void add_model_run_options(CLI::App* sub, ModelRunOptions& o, bool thread_list);
// The --path of `o`, checked runnable on this CPU (else awq::Error naming what is missing).
kernels::Path run_path(const ModelRunOptions& o);
// The --kv-cache of `o`.
ModelOptions::KvDtype run_kv_cache(const ModelRunOptions& o);

Action add_compare(CLI::App& app);
Action add_keygen(CLI::App& app);
Action add_encrypt(CLI::App& app);
Action add_decrypt(CLI::App& app);
// --key-file on a reading subcommand; apply_key_file() sets the library's default key from it or
// from AWQ_KEY_FILE before the action runs.
void add_key_file_option(CLI::App* sub);
void apply_key_file();
// The key file in use (--key-file, else AWQ_KEY_FILE), as an input no output may replace; empty
// list when none.
std::vector<std::string> key_file_inputs();

// Prints what a writer rounded ("N tensors cast F16 -> BF16, max relative rounding X") and one
// warning line per tensor carried through with NaN/Inf (--allow-nonfinite), warnings to stderr.
void print_write_notes(const std::vector<CastSummary>& casts, const std::vector<std::string>& warnings);

}  // namespace awq::cli
