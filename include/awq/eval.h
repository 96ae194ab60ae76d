// `awq eval`: perplexity of a model on a token sequence and, against a reference model run in the
// same process on the same tokens, llama.cpp's `--kl-divergence` statistics and a layer-by-layer
// comparison of the hidden states that names the first layer where the two part.
//
// Perplexity convention (Hugging Face's sliding window, docs "Perplexity of fixed-length models"):
// the ids are the whole text as the tokenizer encodes it (its post-processor's BOS once at the
// start, as `tokenizer(text)` gives); windows of `ctx` tokens start at 0, stride, 2·stride, ...
// and stop at the first window that reaches the end; each window scores only the tokens not scored
// by an earlier window (positions [previous window's end, this window's end)), never its own first
// token (no context), so the first token of the text is never scored. PPL = exp(mean NLL) over the
// scored tokens, NLL from the f32 logits of a fresh forward over the window (no cache carried over).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace awq {

class Model;

struct EvalWindow {
  int64_t begin = 0, end = 0;  // the window is ids[begin, end)
  int64_t first_scored = 0;    // tokens [first_scored, end) are scored (first_scored > begin)
};

// The windows of the convention above for n ids. stride in [1, ctx]. Throws awq::Error for n < 2,
// ctx < 2 or a stride outside [1, ctx].
std::vector<EvalWindow> eval_windows(int64_t n, int64_t ctx, int64_t stride);

// A mean with its standard error, as llama-perplexity reports "x ± err" (err 0 below 11 values).
struct MeanErr {
  double mean = 0, err = 0;
};

// Quantiles of a distribution, llama-perplexity's set and interpolation (linear between the sorted
// values at fraction·(n−1)); median is the middle value (mean of the two middle ones for even n).
struct Quantiles {
  double max = 0, p999 = 0, p99 = 0, p95 = 0, p90 = 0, p75 = 0, median = 0, p25 = 0, p10 = 0, p05 = 0, p01 = 0,
         p001 = 0, min = 0;
};

// One decoder layer's output against the reference's, over the scored positions (the hidden states
// whose logits score a token). cosine: mean over those positions of cos(h_q, h_ref); rel_error:
// sqrt(Σ|h_q − h_ref|² / Σ|h_ref|²). local_rel_error: the same relative error for this layer alone,
// run on the reference's input to it (the error it adds, free of what earlier layers passed on).
struct LayerDivergence {
  int64_t layer = 0;
  double cosine = 1, rel_error = 0, local_rel_error = 0;
};

struct EvalOptions {
  int64_t ctx = 512;
  int64_t stride = 0;  // 0: ctx (windows side by side)
  // The first divergent layer: the first whose local_rel_error exceeds both divergence_factor × the
  // lower median of all layers' local_rel_error and divergence_floor.
  double divergence_factor = 4, divergence_floor = 1e-3;
  // Called after each layer of each window with (steps done, steps in all): windows × layers steps,
  // twice that with a reference (the second pass attributes the first divergent layer). May be empty.
  std::function<void(int64_t, int64_t)> on_progress;
  // How errors name the two models ("MODEL dir", "REF dir").
  std::string model_label = "the model", ref_label = "the reference";
};

struct EvalResult {
  int64_t tokens = 0;  // ids in the text (with the BOS)
  int64_t scored = 0;  // tokens scored
  int64_t ctx = 0, stride = 0, windows = 0;
  double nll_sum = 0;   // Σ −ln p(token) over the scored tokens
  MeanErr ln_ppl;       // mean NLL ± its standard error
  double ppl = 0, ppl_err = 0;  // exp(mean NLL), ± exp(mean)·err (llama-perplexity)

  bool has_ref = false;
  // With a reference (all over the same scored tokens):
  MeanErr ln_ppl_ref;
  double ppl_ref = 0, ppl_ref_err = 0;
  double ln_ppl_correlation = 0;  // Cor(ln PPL(Q), ln PPL(ref)) of the per-token NLLs
  MeanErr ln_ppl_ratio;           // ln(PPL(Q)/PPL(ref)), err with the covariance of the two NLLs
  MeanErr kld;                    // KL(p_ref || p_q) per token, nats
  Quantiles kld_q;
  MeanErr dp;                     // Δp = p_q(token) − p_ref(token)
  Quantiles dp_q;
  MeanErr dp_rms;                 // sqrt(mean Δp²), err = err(mean Δp²) / (2·rms)
  MeanErr same_top;               // fraction of tokens where both argmaxes agree, err sqrt(f(1−f)/(n−1))
  // KLD histogram for reports: counts in 20 bins of log10(KLD) from −6 to 2 (KLD ≤ 1e-6 in the first).
  std::vector<int64_t> kld_histogram;
  std::vector<LayerDivergence> layers;
  std::optional<int64_t> first_divergent_layer;
  // For the first divergent layer: that layer re-run on the reference's input with only its
  // attention (MLP from the reference) and with only its MLP (attention from the reference): the
  // relative error each leaves. cause: "attention" or "mlp", the larger of the two.
  double attention_only_error = 0, mlp_only_error = 0;
  std::string cause;
  double seconds = 0;  // wall time of the evaluation
};

// Evaluates `model` on `ids` (and against `ref` when not null: same vocabulary and shape, else
// awq::Error). Throws awq::Error for bad options (see eval_windows) or ids the model rejects, and
// when a model computes a NaN/Inf (a NaN/Inf weight or scale, an overflow): naming the model, the
// first place it appeared (the embedding, the output of decoder layer L, or the logits), the
// token position and id, and the column; nothing is measured from non-finite values.
EvalResult evaluate(const Model& model, const Model* ref, std::span<const int32_t> ids, const EvalOptions& opt);

}  // namespace awq
