#include "awq/html.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace awq::html {
namespace {

constexpr const char* kCss =
    "body{font:14px/1.4 sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.bar{fill:#4a7bd0}.bar.flagged{fill:#d04a4a}"
    ".series{fill:none;stroke:#4a7bd0;stroke-width:2}.series.s1{stroke:#d04a4a}.pt{fill:#4a7bd0}"
    ".axis{stroke:#888}.lbl{font-size:11px;fill:#333}.ttl{font-size:13px;font-weight:bold}";

double scaled(double v, bool log_scale, double lo) { return log_scale ? std::log10(std::max(v, lo)) : v; }

}  // namespace

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string page(const std::string& title, const std::string& body) {
  return fmt::format("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title><style>{1}</style>"
                     "</head><body>\n<h1>{0}</h1>\n{2}\n</body></html>\n",
                     escape(title), kCss, body);
}

std::string bar_chart(const std::string& id, const std::string& title, const std::vector<Bar>& bars, bool log_scale) {
  const int label_w = 300, plot_w = 420, row_h = 16, top = 26;
  const int height = top + row_h * int(bars.size()) + 24;
  double lo = 1e300, hi = 0;
  for (const auto& b : bars)
    if (b.value > 0) lo = std::min(lo, b.value), hi = std::max(hi, b.value);
  if (hi <= 0) lo = hi = 1;
  const double floor_v = log_scale ? lo / 10 : 0;
  const double a = scaled(floor_v, log_scale, floor_v), z = scaled(hi, log_scale, floor_v);
  const double span = z > a ? z - a : 1;
  std::string s = fmt::format(
      "<svg class=\"chart\" id=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\">"
      "<text class=\"ttl\" x=\"0\" y=\"16\">{}</text>",
      escape(id), label_w + plot_w + 160, height, escape(title));
  for (size_t i = 0; i < bars.size(); ++i) {
    const auto& b = bars[i];
    const int y = top + int(i) * row_h;
    const double w = b.value > 0 ? (scaled(b.value, log_scale, floor_v) - a) / span * plot_w : 0;
    s += fmt::format("<text class=\"lbl\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", label_w - 6, y + 12,
                     escape(b.label));
    s += fmt::format("<rect class=\"bar{}\" x=\"{}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\"><title>{}</title></rect>",
                     b.flagged ? " flagged" : "", label_w, y + 2, std::max(w, 1.0), row_h - 4, escape(b.label));
    s += fmt::format("<text class=\"lbl\" x=\"{:.1f}\" y=\"{}\">{:.3g}{}</text>", label_w + std::max(w, 1.0) + 4,
                     y + 12, b.value, b.note.empty() ? "" : " " + escape(b.note));
  }
  s += fmt::format("<line class=\"axis\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>", label_w, top, height - 20);
  s += fmt::format("<text class=\"lbl\" x=\"{}\" y=\"{}\">{}</text></svg>\n", label_w, height - 4,
                   log_scale ? "log scale" : "linear scale");
  return s;
}

std::string line_chart(const std::string& id, const std::string& title, const std::vector<std::string>& x_labels,
                       const std::vector<Series>& series, bool log_scale) {
  const int left = 60, w = 560, h = 240, top = 30;
  double lo = 1e300, hi = -1e300;
  for (const auto& sr : series)
    for (double v : sr.y)
      if (std::isfinite(v) && (!log_scale || v > 0)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (lo > hi) lo = 0, hi = 1;
  if (log_scale) lo = std::log10(lo), hi = std::log10(hi);
  if (hi - lo < 1e-12) hi = lo + 1;
  const size_t n = x_labels.size();
  auto px = [&](size_t i) { return left + (n > 1 ? double(i) / double(n - 1) * w : w / 2.0); };
  auto py = [&](double v) { return top + h - ((log_scale ? std::log10(v) : v) - lo) / (hi - lo) * h; };
  std::string s = fmt::format(
      "<svg class=\"chart\" id=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\">"
      "<text class=\"ttl\" x=\"0\" y=\"16\">{}</text>",
      escape(id), left + w + 40, top + h + 50, escape(title));
  s += fmt::format("<line class=\"axis\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>", left, top, top + h);
  s += fmt::format("<line class=\"axis\" x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\"/>", left, top + h, left + w);
  s += fmt::format("<text class=\"lbl\" x=\"2\" y=\"{}\">{:.3g}</text>", top + 10, log_scale ? std::pow(10, hi) : hi);
  s += fmt::format("<text class=\"lbl\" x=\"2\" y=\"{}\">{:.3g}</text>", top + h, log_scale ? std::pow(10, lo) : lo);
  for (size_t i = 0; i < n; ++i)
    s += fmt::format("<text class=\"lbl\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>", px(i), top + h + 14,
                     escape(x_labels[i]));
  for (size_t k = 0; k < series.size(); ++k) {
    std::string pts;
    for (size_t i = 0; i < series[k].y.size() && i < n; ++i) {
      const double v = series[k].y[i];
      if (!std::isfinite(v) || (log_scale && v <= 0)) continue;
      pts += fmt::format("{:.1f},{:.1f} ", px(i), py(v));
      s += fmt::format("<circle class=\"pt\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\"/>", px(i), py(v));
    }
    s += fmt::format("<polyline class=\"series s{}\" points=\"{}\"/>", k, pts);
    s += fmt::format("<text class=\"lbl\" x=\"{}\" y=\"{}\">{}</text>", left + 10 + 160 * int(k), top + h + 36,
                     escape(series[k].name));
  }
  return s + "</svg>\n";
}

std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string s = "<table><tr>";
  for (const auto& h : header) s += "<th>" + escape(h) + "</th>";
  s += "</tr>\n";
  for (const auto& r : rows) {
    s += "<tr>";
    for (const auto& c : r) s += "<td>" + escape(c) + "</td>";
    s += "</tr>\n";
  }
  return s + "</table>\n";
}

}  // namespace awq::html
