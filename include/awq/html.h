// Self-contained HTML pages with inline SVG charts: no script, no font or file from elsewhere.
#pragma once
#include <string>
#include <vector>

namespace awq::html {

std::string escape(const std::string& s);
// A whole page: <!doctype html>, inline CSS, the title as <h1>, then `body` (already HTML).
std::string page(const std::string& title, const std::string& body);
// A horizontal bar chart as an <svg> element with class "chart" and id `id`; one <rect class="bar">
// per value (flagged ones get class "bar flagged"), labels on the left, values printed at the bar's
// end. Values must be finite and >= 0; log10 scale when `log_scale` (zeros drawn as empty bars).
struct Bar {
  std::string label;
  double value = 0;
  bool flagged = false;
  std::string note;  // printed after the value
};
std::string bar_chart(const std::string& id, const std::string& title, const std::vector<Bar>& bars, bool log_scale);
// A line chart (<svg class="chart">, one <polyline class="series">), x = index, with point markers.
struct Series {
  std::string name;
  std::vector<double> y;
};
std::string line_chart(const std::string& id, const std::string& title, const std::vector<std::string>& x_labels,
                       const std::vector<Series>& series, bool log_scale);
// A simple table: header row, then rows (cells already text; escaped here).
std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

}  // namespace awq::html
