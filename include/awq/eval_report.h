// Renderings of an EvalResult: terminal tables, JSON for scripts, a self-contained HTML page.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "awq/eval.h"

namespace awq {

// What the report names: the two models and the text, as the user gave them.
struct EvalSources {
  std::string model, ref, text;
  bool bos_added = false;  // the tokenizer's post-processor put a BOS first
};

// {"model", "text", "method", "tokens", "scored", "ctx", "stride", "windows", "bos", "nll_sum", "ppl",
//  "ppl_err", "seconds", "tokens_per_s"; with a reference also "ref", "ppl_ref", "ppl_ref_err",
//  "ln_ppl_ratio", "ln_ppl_ratio_err", "kld_mean", "kld_err", "kld": {quantiles}, "dp_mean", "dp_err",
//  "dp": {quantiles}, "dp_rms", "dp_rms_err", "same_top_p" (fraction), "same_top_p_err",
//  "layers": [{"layer", "cosine", "rel_error", "local_rel_error"}], "first_divergent_layer" (null when
//  none), "divergence_cause", "attention_only_error", "mlp_only_error"}. Non-finite numbers: null.
nlohmann::ordered_json eval_json(const EvalResult& r, const EvalSources& s);
std::string render_eval_text(const EvalResult& r, const EvalSources& s);
std::string render_eval_html(const EvalResult& r, const EvalSources& s);
// One line stating the perplexity method (windows, stride, which tokens are scored, BOS).
std::string eval_method(const EvalResult& r, const EvalSources& s);

}  // namespace awq
