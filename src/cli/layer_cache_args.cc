#include "cli/layer_cache_args.h"

#include <memory>

#include "awq/layer_cache.h"
#include "awq/progress.h"
#include "cli/args.h"

namespace awq::cli {
namespace {

uint64_t cache_budget(const std::string& s) { return s == "0" ? 0 : parse_size(s); }

}  // namespace

void add_layer_cache_options(CLI::App* sub, LayerCacheArgs& a) {
  sub->add_option("--cache-bytes", a.cache_bytes,
                  "stream the decoder layers through a cache of ready layers bounded to this many bytes "
                  "(e.g. 2GB; 0 = keep none); default: every layer loaded for the whole run")
      ->check(CLI::Validator(
          [](std::string& s) -> std::string { return s == "0" ? std::string() : size_arg()(s); }, "SIZE"));
  sub->add_option("--prefetch", a.prefetch,
                  "with --cache-bytes: layers read and repacked ahead on a background thread (default 1, 0 = off)")
      ->check(CLI::Range(0, 64));
}

void apply_layer_cache(const LayerCacheArgs& a, ModelOptions& o) {
  if (a.cache_bytes.empty()) return;
  o.layer_cache = std::make_shared<LayerCache>(size_t(cache_budget(a.cache_bytes)));
  o.prefetch = a.prefetch;
}

}  // namespace awq::cli
