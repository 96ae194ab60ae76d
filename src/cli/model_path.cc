// Where commands find the bundled model when no MODEL is given, and the options naming it.
#include <algorithm>
#include <filesystem>
#include <vector>

#include "awq/error.h"
#include "awq/gguf.h"
#include "cli/commands.h"

#ifndef AWQ_SOURCE_DIR
#define AWQ_SOURCE_DIR ""
#endif

namespace awq::cli {
namespace {
namespace fs = std::filesystem;

// The first directory (by name) under `root` that holds a config.json, or "".
std::string model_under(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return "";
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec) && fs::exists(e.path() / "config.json", ec)) found.push_back(e.path().string());
  std::sort(found.begin(), found.end());
  return found.empty() ? "" : found.front();
}
}  // namespace

std::string resolve_model_dir(const std::string& given) {
  refuse_gguf_without_magic(given);  // an empty .gguf is named as such, not as a missing tokenizer
  if (!given.empty()) return given;
  for (const fs::path root : {fs::current_path() / "models", fs::path(AWQ_SOURCE_DIR) / "models"}) {
    if (root.parent_path().empty()) continue;
    const std::string m = model_under(root);
    if (!m.empty()) return m;
  }
  throw Error(std::string("no MODEL given and no bundled model found in ./models/ or ") + AWQ_SOURCE_DIR + "/models/");
}

void add_model_run_options(CLI::App* sub, ModelRunOptions& o, bool thread_list) {
  sub->add_option("MODEL", o.model, "model directory or .gguf file (default: the bundled model in models/)");
  auto* t = sub->add_option("--threads", o.threads, thread_list ? "thread counts, comma-separated (default: all cores)"
                                                                 : "threads (default: all cores)")
                ->check(CLI::Range(1, 1024));
  if (thread_list) t->delimiter(',');
  else t->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  sub->add_option("--path", o.path,
                  "quantized linears' arithmetic: int16 (default: 16-bit activations, as accurate as f32 against "
                  "transformers and faster) | f32 | int8 (fastest, misses the accuracy bar on models with outlier "
                  "channels) | bf16 (AVX512_BF16 CPUs)")
      ->check(CLI::IsMember({"int16", "f32", "int8", "bf16"}));
  sub->add_option("--kv-cache", o.kv_cache,
                  "KV cache dtype: f32 (default) | f16 (half the bytes a decode step reads from it, as llama.cpp's "
                  "default; a little less accurate)")
      ->check(CLI::IsMember({"f32", "f16"}));
}

ModelOptions::KvDtype run_kv_cache(const ModelRunOptions& o) {
  return o.kv_cache == "f16" ? ModelOptions::KvDtype::kF16 : ModelOptions::KvDtype::kF32;  // CLI11 checked it
}

kernels::Path run_path(const ModelRunOptions& o) {
  kernels::Path p = kernels::Path::kInt16;
  kernels::parse_path(o.path, &p);  // CLI11 checked the name
  std::string why;
  if (!kernels::path_available(p, &why)) throw Error("--path " + o.path + ": " + why);
  return p;
}

}  // namespace awq::cli
