// `awq check`: a doctor for quantized checkpoints. Every finding carries a severity, a stable code,
// the tensor or file it concerns, and one line of evidence plus what to do.
//   error   - certainly breaks loading or output in the engines people use (transformers, vLLM, ...)
//   warning - suspicious, but can be legitimate
//   note    - information (tied duplicates, tensor-parallel fitness)
// The check runs on checkpoints that open_format() refuses: what it cannot read becomes findings.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace awq {

enum class Severity { kError, kWarning, kNote };
std::string severity_name(Severity s);  // "error" / "warning" / "note"

struct Finding {
  Severity severity;
  std::string code;     // stable kebab-case identifier, e.g. "nonfinite", "tied-lm-head-only"
  std::string tensor;   // tensor, module or file concerned ("" for the whole checkpoint)
  std::string message;  // evidence (numbers) and what to do, one line
};

struct CheckReport {
  std::string path;
  std::string format;  // detected format ("" when none could be read)
  std::vector<Finding> findings;
  size_t count(Severity s) const;
  bool has(const std::string& code) const;
};

struct CheckOptions {
  bool numeric = true;   // scan every tensor's values (NaN/Inf, scales, zero points, codes)
  bool progress = false; // progress bar with ETA on stderr (a terminal only) during the value scan
};

// Runs every check on the checkpoint at `path`. Throws awq::Error only when the check itself
// cannot run (no such path, no tensor files at all); everything else is a finding.
CheckReport check_model(const std::string& path, const CheckOptions& opt = {});

// {"findings": [{"severity", "code", "tensor", "message"}, ...]} (plus "path" and "format").
nlohmann::ordered_json check_json(const CheckReport& r);
// One line per finding: "error   code  tensor: message", then a summary line.
std::string render_check_text(const CheckReport& r);

}  // namespace awq
