// `awq eval`: sliding-window perplexity, KL-divergence statistics against a reference, and the
// layer-by-layer divergence of the hidden states (conventions in include/awq/eval.h).
#include "awq/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "awq/error.h"
#include "awq/model.h"
#include "eval/token_stats.h"

namespace awq {
namespace {

using eval_detail::TokenStats;

// Error sums of hidden states against the reference's over chosen rows.
struct HiddenError {
  double err2 = 0, ref2 = 0, cos_sum = 0;
  int64_t rows = 0;
  // Rows [r0, r1) of [T][h] states a (ours) and b (the reference's).
  void add(const std::vector<float>& a, const std::vector<float>& b, int64_t h, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double dot = 0, aa = 0, bb = 0, ee = 0;
      for (int64_t i = r * h; i < (r + 1) * h; ++i) {
        const double x = a[size_t(i)], y = b[size_t(i)];
        dot += x * y;
        aa += x * x;
        bb += y * y;
        ee += (x - y) * (x - y);
      }
      err2 += ee;
      ref2 += bb;
      // Two zero vectors agree; one zero vector against another has no direction: cosine 0.
      cos_sum += (aa == 0 && bb == 0) ? 1.0 : (aa == 0 || bb == 0) ? 0.0 : dot / std::sqrt(aa * bb);
      ++rows;
    }
  }
  double rel() const { return ref2 > 0 ? std::sqrt(err2 / ref2) : (err2 > 0 ? INFINITY : 0.0); }
  double cosine() const { return rows ? cos_sum / double(rows) : 1.0; }
};

void check_pair(const Model& q, const Model& r) {
  const ModelConfig& a = q.config();
  const ModelConfig& b = r.config();
  if (a.vocab != b.vocab)
    throw Error("--ref: the vocabularies differ (" + std::to_string(a.vocab) + " vs the reference's " +
                std::to_string(b.vocab) + " ids)");
  if (a.hidden != b.hidden || a.layers != b.layers || a.intermediate != b.intermediate || a.heads != b.heads ||
      a.kv_heads != b.kv_heads || a.head_dim != b.head_dim)
    throw Error("--ref: the models differ in shape (hidden " + std::to_string(a.hidden) + " vs " +
                std::to_string(b.hidden) + ", layers " + std::to_string(a.layers) + " vs " + std::to_string(b.layers) +
                ", intermediate " + std::to_string(a.intermediate) + " vs " + std::to_string(b.intermediate) + ")");
}

// The first layer whose local error exceeds factor × the lower median of all layers' and the floor.
std::optional<int64_t> first_divergent(const std::vector<LayerDivergence>& layers, double factor, double floor) {
  if (layers.empty()) return std::nullopt;
  std::vector<double> v;
  for (const auto& l : layers) v.push_back(l.local_rel_error);
  std::sort(v.begin(), v.end());
  const double base = v[(v.size() - 1) / 2];
  for (const auto& l : layers)
    if (l.local_rel_error > factor * base && l.local_rel_error > floor) return l.layer;
  return std::nullopt;
}

// Throws when `x` ([rows][cols] of the window starting at token `begin`) holds a NaN/Inf: `who`
// computed it at `stage`; names the first (position, column).
void refuse_nonfinite(const std::vector<float>& x, int64_t cols, std::span<const int32_t> win, int64_t begin,
                      const std::string& who, const std::string& stage, const std::string& col_word) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isfinite(x[i])) continue;
    const int64_t row = int64_t(i) / cols, col = int64_t(i) % cols;
    throw Error(who + ": " + stage + " is " + (std::isnan(x[i]) ? "NaN" : "Inf") + " at token position " + std::to_string(begin + row) +
                " (id " + std::to_string(win[size_t(row)]) + "), " + col_word + " " + std::to_string(col) +
                ", the first non-finite value; no perplexity is computed from it (`awq check` names NaN/Inf weights and scales)");
  }
}

std::string layer_stage(int64_t l) { return "the output of decoder layer " + std::to_string(l) + " (model.layers." + std::to_string(l) + ")"; }

}  // namespace

EvalResult evaluate(const Model& model, const Model* ref, std::span<const int32_t> ids, const EvalOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& cfg = model.config();
  EvalResult r;
  r.tokens = int64_t(ids.size());
  r.ctx = opt.ctx;
  r.stride = opt.stride > 0 ? opt.stride : opt.ctx;
  if (r.ctx > cfg.max_positions)
    throw Error("--ctx " + std::to_string(r.ctx) + " exceeds the model's context of " +
                std::to_string(cfg.max_positions) + " (max_position_embeddings)");
  if (ref) {
    check_pair(model, *ref);
    if (r.ctx > ref->config().max_positions)
      throw Error("--ctx " + std::to_string(r.ctx) + " exceeds the reference's context of " +
                  std::to_string(ref->config().max_positions));
  }
  const std::vector<EvalWindow> windows = eval_windows(r.tokens, r.ctx, r.stride);
  r.windows = int64_t(windows.size());
  r.has_ref = ref != nullptr;
  const int64_t V = cfg.vocab, H = cfg.hidden, L = cfg.layers;
  // Progress steps: one per layer of each window; with a reference a second pass of as many steps
  // (attributing the first divergent layer; skipped, and counted done, when none diverges).
  const int64_t passes = ref ? 2 : 1, total_steps = r.windows * L * passes;
  int64_t done = 0;
  auto step = [&](int64_t n) {
    done += n;
    if (opt.on_progress) opt.on_progress(done, total_steps);
  };
  TokenStats stats;
  std::vector<HiddenError> prop(size_t(ref ? L : 0)), local(size_t(ref ? L : 0));
  for (const EvalWindow& w : windows) {
    const std::span<const int32_t> win = ids.subspan(size_t(w.begin), size_t(w.end - w.begin));
    // Rows of the window whose logits score a token: positions first_scored-1 .. end-2.
    const int64_t r0 = w.first_scored - 1 - w.begin, r1 = w.end - 1 - w.begin;
    // Layer by layer (Model::run_layer chained equals forward() bit for bit): progress per layer.
    // Every stage is checked finite (a NaN/Inf weight would otherwise end as "PPL: nan").
    auto check = [&](const std::vector<float>& x, const std::string& who, const std::string& stage) {
      refuse_nonfinite(x, H, win, w.begin, who, stage, "hidden column");
    };
    std::vector<float> xq = model.embed(win), xr, xl;
    check(xq, opt.model_label, "the token embedding");
    if (ref) {
      xr = ref->embed(win);
      check(xr, opt.ref_label, "the token embedding");
    }
    for (int64_t l = 0; l < L; ++l) {
      if (ref) {
        xl = xr;
        model.run_layer(l, xl);  // this layer alone, on the reference's input
        ref->run_layer(l, xr);
      }
      model.run_layer(l, xq);
      check(xq, opt.model_label, layer_stage(l));
      if (ref) {
        check(xr, opt.ref_label, layer_stage(l));
        check(xl, opt.model_label, layer_stage(l) + " run on the reference's input");
      }
      if (ref) {
        prop[size_t(l)].add(xq, xr, H, r0, r1);
        local[size_t(l)].add(xl, xr, H, r0, r1);
      }
      step(1);
    }
    const std::vector<float> logits = model.logits_of(xq);
    refuse_nonfinite(logits, V, win, w.begin, opt.model_label, "the logits (final norm and lm_head)", "vocabulary id");
    const std::vector<float> ref_logits = ref ? ref->logits_of(xr) : std::vector<float>();
    if (ref) refuse_nonfinite(ref_logits, V, win, w.begin, opt.ref_label, "the logits (final norm and lm_head)", "vocabulary id");
    for (int64_t row = r0; row < r1; ++row)
      stats.add(logits.data() + row * V, ref ? ref_logits.data() + row * V : nullptr, V,
                win[size_t(row + 1)]);
  }
  stats.summarize(r);
  if (ref) {
    for (int64_t l = 0; l < L; ++l)
      r.layers.push_back({l, prop[size_t(l)].cosine(), prop[size_t(l)].rel(), local[size_t(l)].rel()});
    r.first_divergent_layer = first_divergent(r.layers, opt.divergence_factor, opt.divergence_floor);
  }
  if (r.first_divergent_layer) {
    // Re-run that layer on the reference's input with one block at a time taken from the reference.
    const int64_t d = *r.first_divergent_layer;
    HiddenError attn_only, mlp_only;
    for (const EvalWindow& w : windows) {
      const std::span<const int32_t> win = ids.subspan(size_t(w.begin), size_t(w.end - w.begin));
      const int64_t r0 = w.first_scored - 1 - w.begin, r1 = w.end - 1 - w.begin;
      std::vector<float> xr = ref->embed(win);
      for (int64_t l = 0; l < d; ++l) ref->run_layer(l, xr);
      std::vector<float> xa = xr, xm = xr;
      model.run_layer(d, xa, nullptr, ref);  // our attention, the reference's MLP
      model.run_layer(d, xm, ref, nullptr);  // the reference's attention, our MLP
      ref->run_layer(d, xr);
      attn_only.add(xa, xr, H, r0, r1);
      mlp_only.add(xm, xr, H, r0, r1);
      step(L);
    }
    r.attention_only_error = attn_only.rel();
    r.mlp_only_error = mlp_only.rel();
    r.cause = r.attention_only_error >= r.mlp_only_error ? "attention" : "mlp";
  } else if (ref) {
    step(total_steps - done);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace awq
