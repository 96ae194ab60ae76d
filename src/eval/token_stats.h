// Per-token statistics of eval (private to src/eval/): NLL of the model, and against a reference
// the sums llama-perplexity's --kl-divergence keeps, plus every token's KLD and Δp for quantiles.
#pragma once
#include <cstdint>
#include <vector>

#include "awq/eval.h"

namespace awq::eval_detail {

class TokenStats {
 public:
  // One scored token: the model's logits row (and the reference's, or null), both `vocab` long.
  void add(const float* logits, const float* ref_logits, int64_t vocab, int32_t target);
  // Fills the NLL / PPL fields of r, and the reference fields when references were given.
  void summarize(EvalResult& r) const;

 private:
  int64_t count_ = 0, same_top_ = 0;
  double nll_ = 0, nll2_ = 0, nll_ref_ = 0, nll_ref2_ = 0, nll_nll_ref_ = 0;
  double kld_ = 0, kld2_ = 0, dp_ = 0, dp2_ = 0, dp4_ = 0;
  std::vector<double> kld_values_, dp_values_;
};

// Mean and standard error of a quantity from its sum and sum of squares over n values, as
// llama-perplexity computes them (error 0 for n <= 10 or a non-positive variance).
MeanErr mean_err(double sum, double sum2, int64_t n);
// Quantiles of `values` (sorted in place).
Quantiles quantiles(std::vector<double>& values);

}  // namespace awq::eval_detail
