#include "awq/compare_report.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "awq/html.h"

namespace awq {
namespace {

using nlohmann::ordered_json;

ordered_json num(double v) { return std::isfinite(v) ? ordered_json(v) : ordered_json(nullptr); }

std::string fnum(double v, const char* spec) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format(fmt::runtime(spec), v);
}

std::string shape(const LayerError& l) { return fmt::format("{}x{}", l.n, l.k); }

std::string worst_group(const LayerError& l) {
  return fmt::format("r{} g{} ({})", l.worst_row, l.worst_group, fnum(l.worst_group_rel_mse, "{:.2e}"));
}

// What was undone for one linear: "cols", "rows", "cols+rows" or "".
std::string undone(const LayerError& l) {
  if (!l.undone_cols.empty() && !l.undone_rows.empty()) return "cols+rows";
  return !l.undone_cols.empty() ? "cols" : !l.undone_rows.empty() ? "rows" : "";
}

ordered_json fold_json(const FoldScales& f) {
  ordered_json j;
  j["source"] = f.source;
  j["from"] = f.from_norm ? "norm" : "rows";
  j["consumers"] = f.consumers;
  if (!f.from_norm) j["producer"] = f.producer;
  j["channels"] = f.channels;
  j["folded"] = f.folded;
  j["undone"] = f.undone;
  j["guarded"] = f.guarded;
  j["s_min"] = num(f.s_min);
  j["s_max"] = num(f.s_max);
  if (!f.from_norm) {
    j["producer_rel_mse_raw"] = num(f.producer_rel_mse_raw);
    j["producer_rel_mse_fit"] = num(f.producer_rel_mse_fit);
    j["departure_z2"] = num(f.departure_z2);
  }
  if (!f.note.empty()) j["note"] = f.note;
  return j;
}

// Counts of the folds: found (folded), undone, and guarded channels, by origin.
struct FoldCounts {
  size_t norms = 0, rows = 0, norms_found = 0, rows_found = 0, guarded = 0, examined_rows = 0;
  double s_min = 0, s_max = 0;
  bool any_s = false;
};

FoldCounts count_folds(const CompareResult& r) {
  FoldCounts c;
  for (const auto& f : r.folds) {
    (f.from_norm ? c.norms : c.examined_rows)++;
    if (!f.folded) continue;
    (f.from_norm ? c.norms_found : c.rows_found)++;
    c.guarded += size_t(f.guarded);
    if (f.guarded == f.channels) continue;
    c.s_min = c.any_s ? std::min(c.s_min, f.s_min) : f.s_min;
    c.s_max = c.any_s ? std::max(c.s_max, f.s_max) : f.s_max;
    c.any_s = true;
  }
  return c;
}

// One paragraph on the folds: what was undone and how, or that the figures measure stored weights.
std::string fold_summary(const CompareResult& r) {
  const FoldCounts c = count_folds(r);
  const std::string range = c.any_s ? fmt::format(", s from {:.4g} to {:.4g}", c.s_min, c.s_max) : "";
  const std::string guard =
      c.guarded ? fmt::format("; {} channel(s) with a zero, negative or non-finite ratio kept s = 1", c.guarded) : "";
  if (!r.undo_folds) {
    if (!c.norms_found) return fmt::format("--raw: stored weights measured as they are; no norm of QUANT differs from REF's ({} examined).\n", c.norms);
    return fmt::format(
        "--raw: stored weights measured as they are. {} of {} norms of QUANT differ from REF's (AWQ scales folded in{}): "
        "the figures of the linears after them measure W·diag(s), not what the model computes; without --raw they are undone.\n",
        c.norms_found, c.norms, range);
  }
  if (!c.norms_found && !c.rows_found)
    return fmt::format("No AWQ scale fold found (QUANT's norms equal REF's up to dtype rounding: {} examined; producer rows: {} examined): "
                       "stored weights measured as they are.\n", c.norms, c.examined_rows);
  return fmt::format(
      "AWQ scales folded into QUANT undone before measuring (--raw measures the stored weights): {} of {} norms "
      "(s = g_REF/g_QUANT per channel, exact), {} of {} producers' rows (v_proj/up_proj; s per row by least squares){}{}. "
      "Column \"undone\": cols = W·diag(1/s), rows = diag(s)·W.\n",
      c.norms_found, c.norms, c.rows_found, c.examined_rows, range, guard);
}

// Layer index from "model.layers.12.mlp.down_proj" (-1 if none): the HTML chart runs in model order.
long layer_index(const std::string& name) {
  const size_t p = name.find("layers.");
  if (p == std::string::npos) return -1;
  return std::strtol(name.c_str() + p + 7, nullptr, 10);
}

}  // namespace

ordered_json compare_json(const CompareResult& r) {
  ordered_json j;
  j["ref"] = r.ref_path;
  j["quant"] = r.quant_path;
  j["quant_format"] = r.quant_format;
  j["cosine_bar"] = r.cosine_bar;
  j["total_rel_mse"] = num(r.total_rel_mse);
  j["layers"] = ordered_json::array();
  for (const auto& l : r.layers) {
    ordered_json e;
    e["name"] = l.name;
    e["kind"] = l.kind;
    e["shape"] = {l.n, l.k};
    e["quantized"] = l.quantized;
    e["cosine"] = num(l.cosine);
    e["rel_mse"] = num(l.rel_mse);
    e["sqnr_db"] = num(l.sqnr_db);
    e["max_abs"] = num(l.max_abs);
    e["worst_group"] = {{"row", l.worst_row}, {"group", l.worst_group}, {"group_size", l.group_size},
                        {"rel_mse", num(l.worst_group_rel_mse)}};
    e["below_bar"] = l.below_bar;
    ordered_json u = nullptr;
    if (!l.undone_cols.empty()) u["columns"] = l.undone_cols;
    if (!l.undone_rows.empty()) u["rows"] = l.undone_rows;
    e["scales_undone"] = u;
    j["layers"].push_back(e);
  }
  j["kinds"] = ordered_json::array();
  for (const auto& k : r.kinds)
    j["kinds"].push_back({{"kind", k.kind}, {"layers", k.layers}, {"below_bar", k.below_bar},
                          {"rel_mse", num(k.rel_mse)}, {"min_cosine", num(k.min_cosine)}});
  j["missing_in_ref"] = r.missing_in_ref;
  j["mismatched"] = r.mismatched;
  j["folds"] = {{"undone", r.undo_folds}, {"summary", fold_summary(r)}, {"sources", ordered_json::array()}};
  for (const auto& f : r.folds) j["folds"]["sources"].push_back(fold_json(f));
  return j;
}

std::string render_compare_text(const CompareResult& r) {
  size_t w = 6;
  for (const auto& l : r.layers) w = std::max(w, l.name.size());
  std::string s = fmt::format("REF   {}\nQUANT {} ({})\n\n", r.ref_path, r.quant_path, r.quant_format);
  s += fmt::format("{:>4}  {:<{}}  {:>11}  {:>9}  {:>10}  {:>8}  {:>10}  {:>9}  {}\n", "rank", "module", w, "shape", "cosine",
                   "rel MSE", "SQNR dB", "max |dw|", "undone", "worst group (row, group: rel MSE)");
  size_t below = 0;
  for (size_t i = 0; i < r.layers.size(); ++i) {
    const auto& l = r.layers[i];
    below += l.below_bar;
    s += fmt::format("{:>4}  {:<{}}  {:>11}  {:>9}  {:>10}  {:>8}  {:>10}  {:>9}  {}{}\n", i + 1, l.name, w, shape(l),
                     fnum(l.cosine, "{:.6f}"), fnum(l.rel_mse, "{:.3e}"), fnum(l.sqnr_db, "{:.2f}"),
                     fnum(l.max_abs, "{:.3e}"), undone(l).empty() ? "-" : undone(l), worst_group(l),
                     l.below_bar ? "  << below bar" : "");
  }
  s += fmt::format("\nby kind:\n{:<12}  {:>6}  {:>10}  {:>10}  {:>9}\n", "kind", "layers", "rel MSE", "min cos",
                   "below bar");
  for (const auto& k : r.kinds)
    s += fmt::format("{:<12}  {:>6}  {:>10}  {:>10}  {:>9}\n", k.kind, k.layers, fnum(k.rel_mse, "{:.3e}"),
                     fnum(k.min_cosine, "{:.6f}"), k.below_bar);
  for (const auto& m : r.missing_in_ref) s += "not in REF: " + m + "\n";
  for (const auto& m : r.mismatched) s += "shape mismatch: " + m + "\n";
  s += fmt::format("\n{} linears compared; {} below the cosine bar {}; total relative MSE {}\n", r.layers.size(),
                   below, r.cosine_bar, fnum(r.total_rel_mse, "{:.3e}"));
  s += fold_summary(r);
  return s;
}

std::string render_compare_html(const CompareResult& r) {
  std::vector<const LayerError*> order;
  for (const auto& l : r.layers) order.push_back(&l);
  std::stable_sort(order.begin(), order.end(), [](const LayerError* a, const LayerError* b) {
    const long ia = layer_index(a->name), ib = layer_index(b->name);
    return ia != ib ? ia < ib : a->name < b->name;
  });
  std::vector<html::Bar> bars;
  for (const auto* l : order)
    bars.push_back({l->name, std::isfinite(l->rel_mse) ? l->rel_mse : 0.0, l->below_bar,
                    std::isfinite(l->rel_mse) ? "cos " + fnum(l->cosine, "{:.5f}") : "non-finite"});
  std::string body = fmt::format("<p>REF <code>{}</code><br>QUANT <code>{}</code> ({})</p>", html::escape(r.ref_path),
                                 html::escape(r.quant_path), html::escape(r.quant_format));
  size_t below = 0;
  for (const auto& l : r.layers) below += l.below_bar;
  body += fmt::format("<p>{} linears; {} below the cosine bar {}; total relative MSE {}.</p>", r.layers.size(), below,
                      r.cosine_bar, fnum(r.total_rel_mse, "{:.3e}"));
  body += "<p>" + html::escape(fold_summary(r)) + "</p>\n";
  body += "<h2>Relative MSE per linear (model order; red: below the cosine bar)</h2>\n";
  body += html::bar_chart("weight-error", "relative MSE |dW|^2/|W|^2", bars, true);
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < r.layers.size(); ++i) {
    const auto& l = r.layers[i];
    rows.push_back({l.name, std::to_string(i + 1), shape(l), fnum(l.cosine, "{:.6f}"), fnum(l.rel_mse, "{:.3e}"),
                    fnum(l.sqnr_db, "{:.2f}"), fnum(l.max_abs, "{:.3e}"), undone(l), worst_group(l)});
  }
  body += "<h2>Ranked, worst first</h2>\n" +
          html::table({"module", "rank", "shape", "cosine", "rel MSE", "SQNR dB", "max |dw|", "scales undone", "worst group"}, rows);
  std::vector<std::vector<std::string>> krows;
  for (const auto& k : r.kinds)
    krows.push_back({k.kind, std::to_string(k.layers), fnum(k.rel_mse, "{:.3e}"), fnum(k.min_cosine, "{:.6f}"),
                     std::to_string(k.below_bar)});
  body += "<h2>By kind</h2>\n" + html::table({"kind", "layers", "rel MSE", "min cosine", "below bar"}, krows);
  return html::page("awq compare", body);
}

}  // namespace awq
