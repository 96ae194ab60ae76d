// Format detection: config first, tensors always; errors that say what was found and what fit least badly.
#include <algorithm>
#include <exception>

#include "formats/common.h"
#include "formats/readers.h"

namespace awq {
using namespace fmt_detail;

namespace {

struct Layout {
  const char* name;
  Opener open;
  const char* signature;  // a tensor-name suffix that marks the layout's quantized modules
};

const std::vector<Layout>& layouts() {
  static const std::vector<Layout> k = {
      {"autoawq-gemm", open_autoawq_gemm, ".qweight"},
      {"autoawq-gemv", open_autoawq_gemv, ".qweight"},
      {"autoawq-gemv-fast", open_autoawq_gemv_fast, ".qweight"},
      {"gptq", open_gptq, ".qweight"},
      {"compressed-tensors", open_compressed_tensors, ".weight_packed"},
      {"modelopt", open_modelopt, ".weight_scale"},
      {"trtllm-npz", open_trtllm_npz, ":weights_scaling_factor"},
  };
  return k;
}

const Layout* layout_named(const std::string& n) {
  for (const auto& l : layouts())
    if (n == l.name) return &l;
  return nullptr;
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// What the config claims: a layout name, or a sentence for layouts we name but do not read.
struct Claim {
  std::string layout;     // empty: config names no layout
  std::string unreadable; // non-empty: detected but not read, with why
  const nlohmann::json* cfg = nullptr;
};

Claim config_claim(const ModelDir& dir) {
  Claim c;
  const auto& qc = dir.quant_config();
  if (dir.is_npz()) { c.layout = "trtllm-npz"; return c; }
  const std::string method = qc.is_object() ? lower(cfg_str(qc, {"quant_method"}, "")) : "";
  if (method.empty() && dir.hf_quant_config().is_object()) { c.layout = "modelopt"; c.cfg = &dir.hf_quant_config(); return c; }
  if (method == "modelopt") { c.layout = "modelopt"; c.cfg = dir.hf_quant_config().is_object() ? &dir.hf_quant_config() : &qc; return c; }
  c.cfg = qc.is_object() ? &qc : nullptr;
  if (method == "awq" || (method.empty() && qc.is_object() && (qc.contains("w_bit") || qc.contains("version")))) {
    const std::string v = lower(cfg_str(qc, {"version"}, "gemm"));
    if (v == "gemm" || v == "exllama" || v == "ipex") c.layout = "autoawq-gemm";
    else if (v == "gemv") c.layout = "autoawq-gemv";
    else if (v == "gemv_fast" || v == "gemvfast") c.layout = "autoawq-gemv-fast";
    else if (v == "marlin") c.unreadable = "an AutoAWQ Marlin-packed checkpoint (version \"marlin\"): Marlin tiles are a GPU kernel layout, not read; re-export it as GEMM with AutoAWQ";
    else c.unreadable = "an AWQ checkpoint with unknown version \"" + v + "\" (known: gemm, gemv, gemv_fast, marlin, exllama, ipex)";
  } else if (method == "gptq") {
    const std::string f = lower(cfg_str(qc, {"checkpoint_format", "format"}, "gptq"));
    if (f == "awq_gemm") c.layout = "autoawq-gemm";
    else if (f == "marlin" || cfg_bool(qc, {"is_marlin_format"}, false)) c.unreadable = "a GPTQ Marlin-packed checkpoint: not read; re-export it in the gptq format";
    else c.layout = "gptq";
  } else if (method == "compressed-tensors") {
    c.layout = "compressed-tensors";
  } else if (!method.empty()) {
    c.unreadable = "quant_method \"" + method + "\" is not an AWQ-style 4-bit format this tool reads";
  } else if (qc.is_object() && (qc.contains("desc_act") || qc.contains("checkpoint_format"))) {
    c.layout = "gptq";  // legacy quantize_config.json without quant_method
  }
  return c;
}

std::string found_summary(const ModelDir& dir) {
  std::string s = std::to_string(dir.tensors().size()) + " tensors";
  int shown = 0;
  for (const TensorView* t : dir.tensors()) {
    if (t->name.find("layers.0.") == std::string::npos && t->name.find("layers:0:") == std::string::npos) continue;
    s += (shown ? ", " : " (e.g. ") + t->name + " " + std::string(dtype_name(t->dtype)) + t->shape_str();
    if (++shown == 4) break;
  }
  if (shown) s += ")";
  const auto& qc = dir.quant_config();
  if (qc.is_object()) {
    s += "; quantization config from " + dir.quant_config_source() + " with keys";
    for (const auto& [k, _] : qc.items()) s += " " + k;
  } else {
    s += "; no quantization config";
  }
  return s;
}

}  // namespace

std::vector<std::string> format_names() {
  std::vector<std::string> n;
  for (const auto& l : layouts()) n.push_back(l.name);
  return n;
}

std::unique_ptr<FormatReader> open_format_from_tensors(const ModelDir& dir) {
  for (const auto& l : layouts()) {
    try {
      return l.open(dir, nullptr);
    } catch (const Error&) {
    }
  }
  return nullptr;
}

std::unique_ptr<FormatReader> open_format(const ModelDir& dir) {
  const Claim claim = config_claim(dir);
  if (!claim.unreadable.empty()) throw Unsupported(dir.path() + ": this is " + claim.unreadable);
  std::string claimed_err;
  std::exception_ptr claimed_exc;  // rethrown as raised, so its kind (Unsupported, ...) survives
  if (!claim.layout.empty()) {
    const Layout* l = layout_named(claim.layout);
    if (!l) throw Unsupported(dir.path() + ": the config names layout " + claim.layout + ", which this build cannot read yet");
    try {
      return l->open(dir, claim.cfg);
    } catch (const Error& e) {
      claimed_err = e.what();
      claimed_exc = std::current_exception();
    }
  }
  // Config absent or contradicted: which layouts do the tensors fit?
  std::vector<std::pair<std::string, std::string>> tried;  // layout, why not
  for (const auto& l : layouts()) {
    if (claim.layout == l.name) continue;
    try {
      auto r = l.open(dir, nullptr);
      if (claim.layout.empty()) return r;
      throw FormatConflict(dir.path() + ": the quantization config (" + dir.quant_config_source() + ") says " + claim.layout +
                           ", but the tensors are laid out as " + l.name + "; " + claim.layout + " failed with: " + claimed_err);
    } catch (const FormatConflict&) {
      throw;
    } catch (const Error& e) {
      tried.emplace_back(l.name, e.what());
    }
  }
  if (claimed_exc) std::rethrow_exception(claimed_exc);
  // Nearest layout: the first whose signature tensors exist.
  std::string nearest;
  for (size_t i = 0; i < layouts().size(); ++i)
    if (!modules_with_suffix(dir, layouts()[i].signature).empty()) {
      nearest = std::string(layouts()[i].name) + ", which failed: " + tried[i].second;
      break;
    }
  std::string names;
  for (const auto& [n, _] : tried) names += (names.empty() ? "" : ", ") + n;
  throw Error(dir.path() + ": no known 4-bit layout fits this checkpoint. Found " + found_summary(dir) +
              ". Tried: " + names + "." + (nearest.empty() ? " None of their quantized-tensor names appear." : " Nearest: " + nearest));
}

}  // namespace awq
