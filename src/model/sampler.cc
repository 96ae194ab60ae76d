// Next-token sampling: greedy, or temperature / top-k / top-p with a seeded generator.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "awq/error.h"
#include "awq/model.h"

namespace awq {

int32_t argmax(std::span<const float> v) {
  if (v.empty()) throw Error("argmax of no values");
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return int32_t(best);
}

Sampler::Sampler(const SamplerOptions& o) : o_(o), rng_(o.seed) {
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    throw Error("--temperature must be a finite number >= 0");
  if (o.top_k < 0) throw Error("--top-k must be >= 0 (0 = no limit)");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw Error("--top-p must be in (0, 1]");
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (o_.temperature == 0) return argmax(logits);
  // Candidates by decreasing logit (ties: lower id first), cut to top_k.
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  size_t keep = ids.size();
  if (o_.top_k > 0) keep = std::min(keep, size_t(o_.top_k));
  auto by_logit = [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b); };
  std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(keep), ids.end(), by_logit);
  ids.resize(keep);
  // Softmax of logits / temperature in double.
  std::vector<double> p(keep);
  const double mx = logits[size_t(ids[0])];
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp((double(logits[size_t(ids[i])]) - mx) / o_.temperature);
  for (auto& v : p) v /= sum;
  // Top-p: the shortest prefix whose probability reaches top_p.
  if (o_.top_p < 1) {
    double cum = 0;
    size_t n = 0;
    while (n < keep && cum < double(o_.top_p)) cum += p[n++];
    keep = std::max<size_t>(n, 1);
    p.resize(keep);
    sum = std::accumulate(p.begin(), p.end(), 0.0);
    for (auto& v : p) v /= sum;
  }
  // A uniform double in [0, 1) from 53 bits of the generator (same on every platform).
  const double u = double(rng_() >> 11) * (1.0 / 9007199254740992.0);
  double cum = 0;
  for (size_t i = 0; i < keep; ++i) {
    cum += p[i];
    if (u < cum) return ids[i];
  }
  return ids[keep - 1];
}

}  // namespace awq
