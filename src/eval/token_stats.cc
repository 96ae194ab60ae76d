// Per-token perplexity and KL-divergence statistics; the formulas follow llama-perplexity's
// --kl-divergence report (tools/perplexity/perplexity.cpp), computed here in double from the full
// f32 logits of both models (llama.cpp stores the reference's log-probs in 16 bits and skips
// reference probabilities below e^-16; we do neither).
#include "eval/token_stats.h"

#include <algorithm>
#include <cmath>

#include "awq/model.h"

namespace awq::eval_detail {
namespace {

// ln Σ exp(v) in double.
double log_sum_exp(const float* v, int64_t n, float max) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(v[i]) - double(max));
  return double(max) + std::log(s);
}

double at_fraction(const std::vector<double>& s, double f) {
  if (f <= 0) return s.front();
  if (f >= 1) return s.back();
  const double p = f * double(s.size() - 1);
  const size_t i = size_t(p);
  const double w = p - double(i);
  return (1 - w) * s[i] + w * s[std::min(i + 1, s.size() - 1)];
}

}  // namespace

MeanErr mean_err(double sum, double sum2, int64_t n) {
  if (n < 1) return {};
  const double m = sum / double(n);
  const double var = sum2 / double(n) - m * m;
  return {m, var > 0 && n > 10 ? std::sqrt(var / double(n - 1)) : 0.0};
}

Quantiles quantiles(std::vector<double>& v) {
  Quantiles q;
  if (v.empty()) return q;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  q.max = v.back();
  q.min = v.front();
  q.median = n % 2 == 0 ? 0.5 * (v[n / 2] + v[n / 2 - 1]) : v[n / 2];
  q.p999 = at_fraction(v, 0.999);
  q.p99 = at_fraction(v, 0.99);
  q.p95 = at_fraction(v, 0.95);
  q.p90 = at_fraction(v, 0.90);
  q.p75 = at_fraction(v, 0.75);
  q.p25 = at_fraction(v, 0.25);
  q.p10 = at_fraction(v, 0.10);
  q.p05 = at_fraction(v, 0.05);
  q.p01 = at_fraction(v, 0.01);
  q.p001 = at_fraction(v, 0.001);
  return q;
}

void TokenStats::add(const float* logits, const float* ref, int64_t vocab, int32_t target) {
  const std::span<const float> row(logits, size_t(vocab));
  const int32_t top = argmax(row);
  const double lse = log_sum_exp(logits, vocab, logits[top]);
  const double nll = lse - double(logits[target]);
  ++count_;
  nll_ += nll;
  nll2_ += nll * nll;
  if (!ref) return;
  const int32_t top_ref = argmax(std::span<const float>(ref, size_t(vocab)));
  const double lse_ref = log_sum_exp(ref, vocab, ref[top_ref]);
  const double nll_ref = lse_ref - double(ref[target]);
  nll_ref_ += nll_ref;
  nll_ref2_ += nll_ref * nll_ref;
  nll_nll_ref_ += nll * nll_ref;
  // KL(p_ref || p_q) = Σ p_ref (ln p_ref − ln p_q).
  double kld = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    const double lr = double(ref[i]) - lse_ref;
    const double lq = double(logits[i]) - lse;
    kld += std::exp(lr) * (lr - lq);
  }
  kld = std::max(kld, 0.0);  // rounding can leave a tiny negative sum for identical distributions
  kld_ += kld;
  kld2_ += kld * kld;
  kld_values_.push_back(kld);
  const double dp = std::exp(-nll) - std::exp(-nll_ref);
  dp_ += dp;
  dp2_ += dp * dp;
  dp4_ += dp * dp * dp * dp;
  dp_values_.push_back(dp);
  if (top == top_ref) ++same_top_;
}

void TokenStats::summarize(EvalResult& r) const {
  r.scored = count_;
  r.nll_sum = nll_;
  r.ln_ppl = mean_err(nll_, nll2_, count_);
  r.ppl = std::exp(r.ln_ppl.mean);
  r.ppl_err = r.ppl * r.ln_ppl.err;
  if (!r.has_ref || count_ == 0) return;
  r.ln_ppl_ref = mean_err(nll_ref_, nll_ref2_, count_);
  r.ppl_ref = std::exp(r.ln_ppl_ref.mean);
  r.ppl_ref_err = r.ppl_ref * r.ln_ppl_ref.err;
  // Covariance of the two means (llama-perplexity: 0 below 10 values).
  double cov = 0;
  if (count_ >= 10) {
    const double n = double(count_);
    cov = (nll_nll_ref_ / n - (nll_ / n) * (nll_ref_ / n)) / (n - 1);
  }
  const double den = r.ln_ppl.err * r.ln_ppl_ref.err;
  r.ln_ppl_correlation = den > 0 ? cov / den : 0;
  const double var = r.ln_ppl.err * r.ln_ppl.err + r.ln_ppl_ref.err * r.ln_ppl_ref.err - 2 * cov;
  r.ln_ppl_ratio = {r.ln_ppl.mean - r.ln_ppl_ref.mean, var > 0 ? std::sqrt(var) : 0.0};
  r.kld = mean_err(kld_, kld2_, count_);
  r.dp = mean_err(dp_, dp2_, count_);
  const MeanErr mse = mean_err(dp2_, dp4_, count_);
  const double rms = std::sqrt(mse.mean);
  r.dp_rms = {rms, rms > 0 ? 0.5 / rms * mse.err : 0.0};
  const double f = double(same_top_) / double(count_);
  r.same_top = {f, count_ > 1 ? std::sqrt(f * (1 - f) / double(count_ - 1)) : 0.0};
  std::vector<double> k = kld_values_, d = dp_values_;
  r.kld_q = quantiles(k);
  r.dp_q = quantiles(d);
  r.kld_histogram.assign(20, 0);
  for (double v : kld_values_) {
    const double b = v > 1e-6 ? (std::log10(v) + 6) / 8 * 20 : 0;
    r.kld_histogram[size_t(std::clamp(b, 0.0, 19.0))]++;
  }
}

}  // namespace awq::eval_detail
