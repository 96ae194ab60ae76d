// `awq check` orchestration: files first (they work on directories nothing else opens), then the
// model directory, the format reader (from the config, else from the tensors alone), and every
// group of checks that has what it needs. Findings are sorted errors, warnings, notes.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <sstream>

#include <fmt/format.h>

#include "awq/error.h"
#include "check/check_internal.h"

namespace fs = std::filesystem;

namespace awq {

std::string severity_name(Severity s) {
  switch (s) {
    case Severity::kError: return "error";
    case Severity::kWarning: return "warning";
    case Severity::kNote: return "note";
  }
  return "?";
}

size_t CheckReport::count(Severity s) const {
  return size_t(std::count_if(findings.begin(), findings.end(), [&](const Finding& f) { return f.severity == s; }));
}

bool CheckReport::has(const std::string& code) const {
  return std::any_of(findings.begin(), findings.end(), [&](const Finding& f) { return f.code == code; });
}

namespace check_detail {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
bool starts_with(const std::string& s, const std::string& pre) { return s.rfind(pre, 0) == 0; }

int64_t layer_index(const std::string& name) {
  static const std::string kMarks[] = {".layers.", ".h.", ".blocks."};
  for (const auto& m : kMarks) {
    const size_t p = name.find(m);
    if (p == std::string::npos) continue;
    size_t i = p + m.size(), j = i;
    while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
    if (j > i && j < name.size() && name[j] == '.') return std::stoll(name.substr(i, j - i));
  }
  return -1;
}

std::string fmt_num(double v) { return fmt::format("{:.4g}", v); }

}  // namespace check_detail

using namespace check_detail;

namespace {
// A dense checkpoint (`awq quantize --format dense`, a base model): no quantization config, no
// layout fits the tensors, and every tensor is floating point (packed codes are integers).
bool is_dense(const ModelDir& d, const FormatReader* reader) {
  if (reader || !d.quant_config().is_null() || d.hf_quant_config().is_object() || d.is_npz() || d.tensors().empty()) return false;
  return std::all_of(d.tensors().begin(), d.tensors().end(), [](const TensorView* t) { return is_float(t->dtype); });
}
}  // namespace

CheckReport check_model(const std::string& path, const CheckOptions& opt) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": no such model directory or file");
  CheckReport r;
  r.path = path;
  Ctx c;
  c.path = fs::is_directory(path, ec) ? path : fs::path(path).parent_path().string();
  c.out = &r.findings;
  c.progress = opt.progress;
  check_files(c);  // throws when there is nothing to check at all

  std::unique_ptr<ModelDir> dir;
  try {
    dir = std::make_unique<ModelDir>(path);
  } catch (const std::exception& e) {
    const bool explained = std::any_of(r.findings.begin(), r.findings.end(), [](const Finding& f) { return f.severity == Severity::kError; });
    if (explained)
      c.note("checks-skipped", "", std::string("the model-level checks did not run because the directory does not open: ") + e.what());
    else
      c.error("model-unreadable", "", e.what());
  }
  std::unique_ptr<FormatReader> reader;
  std::string open_error;
  DecoderDims dims;
  if (dir) {
    c.dir = dir.get();
    dims = decoder_dims(dir->config(), (fs::path(dir->path()) / "config.json").string());
    c.dims = &dims;
    try {
      reader = open_format(*dir);
      c.reader_from_config = true;
    } catch (const std::exception& e) {
      open_error = e.what();
      try {
        reader = open_format_from_tensors(*dir);
      } catch (const std::exception&) {
      }
    }
    c.reader = reader.get();
    if (reader) r.format = reader->scheme().format;
    if (is_dense(*dir, reader.get())) {
      // Nothing to unpack: the quantization checks have nothing to say, every other group runs.
      open_error.clear();
      r.format = "dense";
      c.note("dense-checkpoint", "", "no quantization config and no quantized tensors: checked as a dense model (config, "
             "shapes, values, tied embeddings)");
    }
    // A group that trips over something unforeseen (a config value of the wrong JSON type, ...)
    // becomes a finding; the other groups still run.
    auto run = [&](const char* group, const std::function<void()>& fn) {
      try {
        fn();
      } catch (const std::exception& e) {
        c.error("check-incomplete", "", std::string("the ") + group + " checks stopped: " + e.what());
      }
    };
    run("quantization config", [&] { check_quant_config(c, open_error); });
    run("architecture", [&] { check_architecture(c); });
    run("tied embedding", [&] { check_tied_embeddings(c); });
    if (opt.numeric) run("value", [&] { check_values(c); });
    run("tensor-parallel", [&] { check_tensor_parallel(c); });
  }
  std::stable_sort(r.findings.begin(), r.findings.end(),
                   [](const Finding& a, const Finding& b) { return int(a.severity) < int(b.severity); });
  return r;
}

nlohmann::ordered_json check_json(const CheckReport& r) {
  nlohmann::ordered_json j;
  j["path"] = r.path;
  j["format"] = r.format.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.format);
  j["findings"] = nlohmann::ordered_json::array();
  for (const auto& f : r.findings)
    j["findings"].push_back({{"severity", severity_name(f.severity)}, {"code", f.code}, {"tensor", f.tensor}, {"message", f.message}});
  j["errors"] = r.count(Severity::kError);
  j["warnings"] = r.count(Severity::kWarning);
  j["notes"] = r.count(Severity::kNote);
  return j;
}

std::string render_check_text(const CheckReport& r) {
  std::ostringstream o;
  o << r.path << (r.format.empty() ? "" : " (" + r.format + ")") << "\n";
  for (const auto& f : r.findings)
    o << fmt::format("{:<8}{:<28}{}{}\n", severity_name(f.severity), f.code, f.tensor.empty() ? "" : f.tensor + ": ", f.message);
  const size_t e = r.count(Severity::kError), w = r.count(Severity::kWarning), n = r.count(Severity::kNote);
  o << fmt::format("{} error{}, {} warning{}, {} note{}\n", e, e == 1 ? "" : "s", w, w == 1 ? "" : "s", n, n == 1 ? "" : "s");
  return o.str();
}

}  // namespace awq
