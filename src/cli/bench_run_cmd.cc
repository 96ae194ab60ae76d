// awq bench run [MODEL]: the whole model's speed. Prefill of --prompt-tokens random ids (one
// forward over all of them), then --gen-tokens decode steps of one random id each, timed
// separately; peak RSS of the process (getrusage ru_maxrss: loading included). No tokenizer.
// Cold start: the seconds to open the model (load_s) and to the first token's logits (first_token_s:
// the load plus the untimed warm-up's prefill, the first forward this process runs).
// --cache-bytes/--prefetch stream the layers through a bounded cache, as in `awq run`.
// Method: one untimed warm-up (a prefill of min(P, 16) ids and 2 decode steps) per thread count,
// then --repeats timed runs on a fresh cache; speeds are the median run's, and the table also
// shows the slowest and fastest.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "awq/error.h"
#include "awq/layer_cache.h"
#include "awq/model.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/layer_cache_args.h"

namespace awq::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Args : ModelRunOptions {
  int64_t prompt_tokens = 512, gen_tokens = 128;
  int repeats = 3;
  bool json = false;
  LayerCacheArgs cache;
};

size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return size_t(u.ru_maxrss) * 1024;  // Linux reports KiB
}

struct Speeds {
  double prefill_tps = 0, decode_tps = 0;
};

// One prefill of `ids` and one decode step per entry of `gen`, on a fresh cache.
Speeds run_once(const Model& m, const std::vector<int32_t>& ids, const std::vector<int32_t>& gen) {
  KvCache c = m.new_cache(1, int64_t(ids.size() + gen.size()));
  std::vector<float> logits;
  const auto t0 = Clock::now();
  m.forward(c, {ids}, false, logits);
  const double p = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto t1 = Clock::now();
  for (int32_t id : gen) m.forward(c, {{id}}, false, logits);
  const double d = std::chrono::duration<double>(Clock::now() - t1).count();
  return {double(ids.size()) / p, gen.empty() ? 0.0 : double(gen.size()) / d};
}

int bench_run(const Args& a) {
  const std::string dir = resolve_model_dir(a.model);
  if (a.prompt_tokens < 1) throw Error("--prompt-tokens must be >= 1");
  if (a.gen_tokens < 0) throw Error("--gen-tokens must be >= 0");
  if (a.repeats < 1) throw Error("--repeats must be >= 1");
  std::vector<int> threads = a.threads;
  if (threads.empty()) threads = {int(std::max(1u, std::thread::hardware_concurrency()))};
  const kernels::Path path = run_path(a);
  ModelOptions mo;
  mo.threads = threads[0];
  mo.path = path;
  mo.kv_cache = run_kv_cache(a);
  apply_layer_cache(a.cache, mo);
  const auto t_open = Clock::now();
  auto m = Model::load(dir, mo);
  const double load_s = std::chrono::duration<double>(Clock::now() - t_open).count();
  double first_token_s = 0;
  const ModelConfig& cfg = m->config();
  if (a.prompt_tokens + a.gen_tokens > cfg.max_positions)
    throw Error("--prompt-tokens + --gen-tokens = " + std::to_string(a.prompt_tokens + a.gen_tokens) +
                " exceeds the model's context of " + std::to_string(cfg.max_positions));
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(cfg.vocab - 1));
  std::vector<int32_t> ids(size_t(a.prompt_tokens)), gen(size_t(a.gen_tokens));
  for (auto& v : ids) v = tok(rng);
  for (auto& v : gen) v = tok(rng);

  nlohmann::json rows = nlohmann::json::array();
  if (!a.json)
    std::printf("model %s (%s, %s path%s), prompt %lld tokens, %lld generated, median of %d runs [min-max]\n",
                dir.c_str(), cfg.architecture.c_str(), kernels::path_name(path),
                a.cache.cache_bytes.empty() ? ""
                                            : (", layer cache " + a.cache.cache_bytes + " bytes, prefetch " +
                                               std::to_string(a.cache.prefetch)).c_str(),
                (long long)a.prompt_tokens, (long long)a.gen_tokens, a.repeats);
  for (int t : threads) {
    m->set_threads(t);
    const Speeds warm = run_once(*m, std::vector<int32_t>(ids.begin(), ids.begin() + std::min<int64_t>(16, a.prompt_tokens)),
                                 std::vector<int32_t>(gen.begin(), gen.begin() + std::min<int64_t>(2, a.gen_tokens)));
    if (first_token_s == 0) first_token_s = load_s + double(std::min<int64_t>(16, a.prompt_tokens)) / warm.prefill_tps;
    std::vector<double> pf, dc;
    for (int r = 0; r < a.repeats; ++r) {
      const Speeds s = run_once(*m, ids, gen);
      pf.push_back(s.prefill_tps);
      dc.push_back(s.decode_tps);
    }
    std::sort(pf.begin(), pf.end());
    std::sort(dc.begin(), dc.end());
    const double pfm = pf[pf.size() / 2], dcm = dc[dc.size() / 2];
    rows.push_back({{"model", dir}, {"threads", t}, {"prompt_tokens", a.prompt_tokens}, {"gen_tokens", a.gen_tokens},
                    {"prefill_tps", pfm}, {"decode_tps", dcm}, {"peak_rss_bytes", peak_rss_bytes()},
                    {"load_s", load_s}, {"first_token_s", first_token_s}});
    if (!a.json)
      std::printf("threads %2d  prefill %9.2f tokens/s [%.2f-%.2f]  decode %8.2f tokens/s [%.2f-%.2f]  peak RSS %.1f MiB\n", t,
                  pfm, pf.front(), pf.back(), dcm, dc.front(), dc.back(), double(peak_rss_bytes()) / (1 << 20));
  }
  if (!a.json) std::printf("cold start: loaded in %.2f s, first token's logits %.2f s after the start\n", load_s, first_token_s);
  if (mo.layer_cache && !a.json) {
    const LayerCache::Stats st = mo.layer_cache->stats();
    std::printf("layer cache: %zu layers held, %.1f of %.1f MiB; %llu hits, %llu misses, %llu evictions\n", st.entries,
                double(st.bytes) / (1 << 20), double(st.budget) / (1 << 20), (unsigned long long)st.hits,
                (unsigned long long)st.misses, (unsigned long long)st.evictions);
  }
  if (a.json) std::printf("%s\n", json_text(rows, 1).c_str());
  return 0;
}

}  // namespace

Action add_bench_run(CLI::App& bench) {
  auto* sub = bench.add_subcommand("run", "Whole-model speed: prefill and decode tokens/s and peak RSS, random token ids");
  auto a = std::make_shared<Args>();
  add_model_run_options(sub, *a, true);
  sub->add_option("--prompt-tokens", a->prompt_tokens, "prompt length (default 512)");
  sub->add_option("--gen-tokens", a->gen_tokens, "decode steps (default 128)");
  sub->add_option("--repeats", a->repeats, "timed runs per thread count; the median is reported (default 3)");
  sub->add_flag("--json", a->json,
                "print a JSON list of {model, threads, prompt_tokens, gen_tokens, prefill_tps, decode_tps, peak_rss_bytes, "
                "load_s, first_token_s}");
  add_layer_cache_options(sub, a->cache);
  return [a, sub]() -> int { return sub->parsed() ? bench_run(*a) : -1; };
}

}  // namespace awq::cli
