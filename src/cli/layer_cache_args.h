// --cache-bytes N and --prefetch D, shared by the commands that run a model (run, bench run, eval):
// the decoder layers stream through a LayerCache bounded to N bytes (include/awq/layer_cache.h).
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "awq/model.h"

namespace awq::cli {

struct LayerCacheArgs {
  std::string cache_bytes;  // empty: every layer stays loaded (the default)
  int prefetch = 1;
};

// Adds both options to `sub`, bound to `a` (which must outlive the parse). A bad size or a
// negative depth is a usage error (exit status 2).
void add_layer_cache_options(CLI::App* sub, LayerCacheArgs& a);
// With --cache-bytes: a fresh cache of that budget and the prefetch depth into `o`; else nothing.
void apply_layer_cache(const LayerCacheArgs& a, ModelOptions& o);

}  // namespace awq::cli
