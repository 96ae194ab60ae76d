// `awq eval` reports: text tables, JSON and an HTML page (divergence curve, KLD distribution).
#include "awq/eval_report.h"

#include <cmath>

#include <fmt/format.h>

#include "awq/html.h"

namespace awq {
namespace {

nlohmann::ordered_json num(double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(); }

nlohmann::ordered_json quantiles_json(const Quantiles& q) {
  return {{"max", num(q.max)},   {"p99.9", num(q.p999)}, {"p99", num(q.p99)},       {"p95", num(q.p95)},
          {"p90", num(q.p90)},   {"p75", num(q.p75)},    {"median", num(q.median)}, {"p25", num(q.p25)},
          {"p10", num(q.p10)},   {"p5", num(q.p05)},     {"p1", num(q.p01)},        {"p0.1", num(q.p001)},
          {"min", num(q.min)}};
}

std::string layer_line(const EvalResult& r) {
  if (!r.first_divergent_layer) return "no divergent layer";
  return fmt::format("first divergent layer: {} ({}: with only its attention the layer's relative error is {:.3e}, "
                     "with only its MLP {:.3e})",
                     *r.first_divergent_layer, r.cause, r.attention_only_error, r.mlp_only_error);
}

constexpr const char* kDivergenceRule =
    "a layer diverges when its local relative error (the layer alone, run on the reference's input) exceeds 4x the "
    "lower median of all layers' and 1e-3; the cause is the block (attention or MLP) that, kept alone from MODEL "
    "with the other block taken from REF, leaves the larger error";

}  // namespace

std::string eval_method(const EvalResult& r, const EvalSources& s) {
  return fmt::format(
      "Hugging Face sliding window: {} tokens ({}), windows of {} advanced by {}, each scoring only the tokens "
      "not scored before and never its own first token; {} tokens scored in {} window{}",
      r.tokens, s.bos_added ? "BOS added once at the start by the tokenizer" : "no BOS", r.ctx, r.stride, r.scored,
      r.windows, r.windows == 1 ? "" : "s");
}

nlohmann::ordered_json eval_json(const EvalResult& r, const EvalSources& s) {
  nlohmann::ordered_json j;
  j["model"] = s.model;
  j["text"] = s.text;
  j["method"] = eval_method(r, s);
  j["tokens"] = r.tokens;
  j["scored"] = r.scored;
  j["ctx"] = r.ctx;
  j["stride"] = r.stride;
  j["windows"] = r.windows;
  j["bos"] = s.bos_added;
  j["nll_sum"] = num(r.nll_sum);
  j["ppl"] = num(r.ppl);
  j["ppl_err"] = num(r.ppl_err);
  j["seconds"] = num(r.seconds);
  j["tokens_per_s"] = r.seconds > 0 ? num(double(r.scored) / r.seconds) : nlohmann::ordered_json();
  if (!r.has_ref) return j;
  j["ref"] = s.ref;
  j["ppl_ref"] = num(r.ppl_ref);
  j["ppl_ref_err"] = num(r.ppl_ref_err);
  j["ln_ppl_ratio"] = num(r.ln_ppl_ratio.mean);
  j["ln_ppl_ratio_err"] = num(r.ln_ppl_ratio.err);
  j["ln_ppl_correlation"] = num(r.ln_ppl_correlation);
  j["kld_mean"] = num(r.kld.mean);
  j["kld_err"] = num(r.kld.err);
  j["kld"] = quantiles_json(r.kld_q);
  j["dp_mean"] = num(r.dp.mean);
  j["dp_err"] = num(r.dp.err);
  j["dp"] = quantiles_json(r.dp_q);
  j["dp_rms"] = num(r.dp_rms.mean);
  j["dp_rms_err"] = num(r.dp_rms.err);
  j["same_top_p"] = num(r.same_top.mean);
  j["same_top_p_err"] = num(r.same_top.err);
  j["layers"] = nlohmann::ordered_json::array();
  for (const auto& l : r.layers)
    j["layers"].push_back({{"layer", l.layer},
                           {"cosine", num(l.cosine)},
                           {"rel_error", num(l.rel_error)},
                           {"local_rel_error", num(l.local_rel_error)}});
  j["first_divergent_layer"] =
      r.first_divergent_layer ? nlohmann::ordered_json(*r.first_divergent_layer) : nlohmann::ordered_json();
  j["divergence_rule"] = kDivergenceRule;
  if (r.first_divergent_layer) {
    j["divergence_cause"] = r.cause;
    j["attention_only_error"] = num(r.attention_only_error);
    j["mlp_only_error"] = num(r.mlp_only_error);
  }
  return j;
}

std::string render_eval_text(const EvalResult& r, const EvalSources& s) {
  std::string o = fmt::format("model: {}\ntext:  {}\n", s.model, s.text);
  if (r.has_ref) o += fmt::format("ref:   {}\n", s.ref);
  o += "method: " + eval_method(r, s) + "\n";
  o += fmt::format("{:.1f} s, {:.1f} scored tokens/s\n\n", r.seconds, r.seconds > 0 ? double(r.scored) / r.seconds : 0);
  if (!r.has_ref) {
    o += fmt::format("PPL: {:.6f} ± {:.6f}\n", r.ppl, r.ppl_err);
    return o;
  }
  o += "====== Perplexity statistics ======\n";
  o += fmt::format("Mean PPL(Q)                   : {:10.6f} ± {:10.6f}\n", r.ppl, r.ppl_err);
  o += fmt::format("Mean PPL(ref)                 : {:10.6f} ± {:10.6f}\n", r.ppl_ref, r.ppl_ref_err);
  o += fmt::format("Cor(ln(PPL(Q)), ln(PPL(ref))) : {:6.2f}%\n", 100 * r.ln_ppl_correlation);
  o += fmt::format("Mean ln(PPL(Q)/PPL(ref))      : {:10.6f} ± {:10.6f}\n\n", r.ln_ppl_ratio.mean, r.ln_ppl_ratio.err);
  o += "====== KL divergence statistics ======\n";
  const Quantiles& k = r.kld_q;
  o += fmt::format("Mean    KLD: {:10.6f} ± {:10.6f}\n", r.kld.mean, r.kld.err);
  const std::pair<const char*, double> kr[] = {{"Maximum", k.max}, {"99.9%  ", k.p999}, {"99.0%  ", k.p99},
                                               {"95.0%  ", k.p95}, {"90.0%  ", k.p90},  {"Median ", k.median},
                                               {"10.0%  ", k.p10}, {" 5.0%  ", k.p05},  {" 1.0%  ", k.p01},
                                               {" 0.1%  ", k.p001}, {"Minimum", k.min}};
  for (const auto& [n, v] : kr) o += fmt::format("{} KLD: {:10.6f}\n", n, v);
  o += "\n====== Token probability statistics ======\n";
  const Quantiles& d = r.dp_q;
  o += fmt::format("Mean    Δp: {:6.3f} ± {:5.3f} %\n", 100 * r.dp.mean, 100 * r.dp.err);
  const std::pair<const char*, double> dr[] = {
      {"Maximum", d.max}, {"99.9%  ", d.p999}, {"99.0%  ", d.p99},  {"95.0%  ", d.p95}, {"90.0%  ", d.p90},
      {"75.0%  ", d.p75}, {"Median ", d.median}, {"25.0%  ", d.p25}, {"10.0%  ", d.p10}, {" 5.0%  ", d.p05},
      {" 1.0%  ", d.p01}, {" 0.1%  ", d.p001}, {"Minimum", d.min}};
  for (const auto& [n, v] : dr) o += fmt::format("{} Δp: {:6.3f}%\n", n, 100 * v);
  o += fmt::format("RMS Δp    : {:6.3f} ± {:5.3f} %\n", 100 * r.dp_rms.mean, 100 * r.dp_rms.err);
  o += fmt::format("Same top p: {:6.3f} ± {:5.3f} %\n\n", 100 * r.same_top.mean, 100 * r.same_top.err);
  o += "====== Hidden state after each layer vs the reference (scored positions) ======\n";
  o += "layer     cosine   rel error  local rel error\n";
  for (const auto& l : r.layers)
    o += fmt::format("{:5d}  {:9.6f}  {:10.3e}  {:15.3e}{}\n", l.layer, l.cosine, l.rel_error, l.local_rel_error,
                     r.first_divergent_layer == l.layer ? "  <- first divergent" : "");
  o += layer_line(r) + "\n(" + kDivergenceRule + ")\n";
  return o;
}

std::string render_eval_html(const EvalResult& r, const EvalSources& s) {
  std::string body = fmt::format("<p>MODEL <code>{}</code>{}<br>text <code>{}</code></p><p>{}</p>", html::escape(s.model),
                                 r.has_ref ? "<br>REF <code>" + html::escape(s.ref) + "</code>" : std::string(),
                                 html::escape(s.text), html::escape(eval_method(r, s)));
  std::vector<std::vector<std::string>> rows = {{"PPL(Q)", fmt::format("{:.6f} ± {:.6f}", r.ppl, r.ppl_err)}};
  if (r.has_ref) {
    rows.push_back({"PPL(ref)", fmt::format("{:.6f} ± {:.6f}", r.ppl_ref, r.ppl_ref_err)});
    rows.push_back({"ln(PPL(Q)/PPL(ref))", fmt::format("{:.6f} ± {:.6f}", r.ln_ppl_ratio.mean, r.ln_ppl_ratio.err)});
    rows.push_back({"mean KLD", fmt::format("{:.6f} ± {:.6f}", r.kld.mean, r.kld.err)});
    rows.push_back({"median / 99% / max KLD", fmt::format("{:.6f} / {:.6f} / {:.6f}", r.kld_q.median, r.kld_q.p99, r.kld_q.max)});
    rows.push_back({"RMS Δp", fmt::format("{:.3f} ± {:.3f} %", 100 * r.dp_rms.mean, 100 * r.dp_rms.err)});
    rows.push_back({"same top p", fmt::format("{:.3f} ± {:.3f} %", 100 * r.same_top.mean, 100 * r.same_top.err)});
    rows.push_back({"first divergent layer", layer_line(r)});
  }
  body += html::table({"figure", "value"}, rows);
  if (!r.has_ref) return html::page("awq eval", body);
  std::vector<std::string> x;
  html::Series prop{"relative error after the layer", {}}, local{"local relative error (the layer alone)", {}};
  bool all_positive = true;
  for (const auto& l : r.layers) {
    x.push_back(std::to_string(l.layer));
    prop.y.push_back(l.rel_error);
    local.y.push_back(l.local_rel_error);
    all_positive = all_positive && l.rel_error > 0 && l.local_rel_error > 0;
  }
  body += "<h2>Divergence per layer (blue: hidden state after the layer; red: the layer alone)</h2>\n";
  body += html::line_chart("divergence", "relative error vs the reference", x, {prop, local}, all_positive);
  std::vector<html::Bar> bars;
  for (size_t i = 0; i < r.kld_histogram.size(); ++i) {
    const double lo = -6 + 8.0 * double(i) / double(r.kld_histogram.size());
    const double hi = lo + 8.0 / double(r.kld_histogram.size());
    bars.push_back({i == 0 ? fmt::format("KLD <= 1e{:.1f}", hi) : fmt::format("1e{:.1f} .. 1e{:.1f}", lo, hi),
                    double(r.kld_histogram[i]), false, "tokens"});
  }
  body += "<h2>KL divergence per token (histogram of log10 KLD)</h2>\n";
  body += html::bar_chart("kld", "tokens per KLD bin", bars, false);
  std::vector<std::vector<std::string>> lrows;
  for (const auto& l : r.layers)
    lrows.push_back({std::to_string(l.layer), fmt::format("{:.6f}", l.cosine), fmt::format("{:.3e}", l.rel_error),
                     fmt::format("{:.3e}", l.local_rel_error)});
  body += "<h2>Layers</h2>\n" + html::table({"layer", "cosine", "rel error", "local rel error"}, lrows);
  body += "<p>" + html::escape(kDivergenceRule) + "</p>";
  return html::page("awq eval", body);
}

}  // namespace awq
