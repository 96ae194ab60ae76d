// Renderings of a CompareResult: a terminal table, JSON for scripts, a self-contained HTML page.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "awq/compare.h"

namespace awq {

// {"ref", "quant", "quant_format", "cosine_bar", "total_rel_mse",
//  "layers": [{"name", "kind", "shape", "cosine", "rel_mse", "sqnr_db", "max_abs", "worst_group":
//             {"row", "group", "group_size", "rel_mse"}, "below_bar", "scales_undone": null | {"columns": SRC,
//             "rows": SRC}}, ...] (worst first),
//  "kinds": [{"kind", "layers", "below_bar", "rel_mse", "min_cosine"}], "missing_in_ref", "mismatched",
//  "folds": {"undone", "summary", "sources": [{"source", "from": "norm"|"rows", "consumers", ["producer"],
//            "channels", "folded", "undone", "guarded", "s_min", "s_max", [rows: "producer_rel_mse_raw",
//            "producer_rel_mse_fit"], ["note"]}]}}.
// Non-finite figures (a NaN weight; sqnr_db of identical weights = +inf) are written as null.
nlohmann::ordered_json compare_json(const CompareResult& r);
std::string render_compare_text(const CompareResult& r);
std::string render_compare_html(const CompareResult& r);

}  // namespace awq
