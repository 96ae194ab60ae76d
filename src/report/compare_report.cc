#include "awq/compare_report.h"

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
    j["layers"].push_back(e);
  }
  j["kinds"] = ordered_json::array();
  for (const auto& k : r.kinds)
    j["kinds"].push_back({{"kind", k.kind}, {"layers", k.layers}, {"below_bar", k.below_bar},
                          {"rel_mse", num(k.rel_mse)}, {"min_cosine", num(k.min_cosine)}});
  j["missing_in_ref"] = r.missing_in_ref;
  j["mismatched"] = r.mismatched;
  return j;
}

std::string render_compare_text(const CompareResult& r) {
  size_t w = 6;
  for (const auto& l : r.layers) w = std::max(w, l.name.size());
  std::string s = fmt::format("REF   {}\nQUANT {} ({})\n\n", r.ref_path, r.quant_path, r.quant_format);
  s += fmt::format("{:>4}  {:<{}}  {:>11}  {:>9}  {:>10}  {:>8}  {:>10}  {}\n", "rank", "module", w, "shape", "cosine",
                   "rel MSE", "SQNR dB", "max |dw|", "worst group (row, group: rel MSE)");
  size_t below = 0;
  for (size_t i = 0; i < r.layers.size(); ++i) {
    const auto& l = r.layers[i];
    below += l.below_bar;
    s += fmt::format("{:>4}  {:<{}}  {:>11}  {:>9}  {:>10}  {:>8}  {:>10}  {}{}\n", i + 1, l.name, w, shape(l),
                     fnum(l.cosine, "{:.6f}"), fnum(l.rel_mse, "{:.3e}"), fnum(l.sqnr_db, "{:.2f}"),
                     fnum(l.max_abs, "{:.3e}"), worst_group(l), l.below_bar ? "  << below bar" : "");
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
  body += "<h2>Relative MSE per linear (model order; red: below the cosine bar)</h2>\n";
  body += html::bar_chart("weight-error", "relative MSE |dW|^2/|W|^2", bars, true);
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < r.layers.size(); ++i) {
    const auto& l = r.layers[i];
    rows.push_back({l.name, std::to_string(i + 1), shape(l), fnum(l.cosine, "{:.6f}"), fnum(l.rel_mse, "{:.3e}"),
                    fnum(l.sqnr_db, "{:.2f}"), fnum(l.max_abs, "{:.3e}"), worst_group(l)});
  }
  body += "<h2>Ranked, worst first</h2>\n" +
          html::table({"module", "rank", "shape", "cosine", "rel MSE", "SQNR dB", "max |dw|", "worst group"}, rows);
  std::vector<std::vector<std::string>> krows;
  for (const auto& k : r.kinds)
    krows.push_back({k.kind, std::to_string(k.layers), fnum(k.rel_mse, "{:.3e}"), fnum(k.min_cosine, "{:.6f}"),
                     std::to_string(k.below_bar)});
  body += "<h2>By kind</h2>\n" + html::table({"kind", "layers", "rel MSE", "min cosine", "below bar"}, krows);
  return html::page("awq compare", body);
}

}  // namespace awq
