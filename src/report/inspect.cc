#include "awq/inspect.h"

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "awq/npz.h"
#include "awq/progress.h"

namespace awq {

using nlohmann::ordered_json;

namespace {
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
}  // namespace

std::string tensor_kind(const std::string& name, bool quantized_part) {
  if (quantized_part) {  // '.'-separated HF names and ':'-separated TRT-LLM npz names alike
    if (has(name, "pre_quant") || has(name, "prequant")) return "pre_quant_scales";
    if (has(name, "zero")) return "zero_points";
    if (has(name, "scal")) return "scales";
    if (ends_with(name, "g_idx")) return "g_idx";
    if (ends_with(name, "qweight") || ends_with(name, "weight_packed") || ends_with(name, "weight")) return "quantized_weights";
    return "quant_metadata";
  }
  if (has(name, "embed") || has(name, "wte") || has(name, "vocab_embedding")) return "embeddings";
  if (has(name, "lm_head")) return "lm_head";
  if (has(name, "norm") || has(name, "ln_")) return "norms";
  if (ends_with(name, ".bias") || ends_with(name, ":bias")) return "biases";
  if (has(name, "act.scales") || has(name, "gelu_impl.scales")) return "activation_scales";
  if (ends_with(name, ".weight") || ends_with(name, ":weight")) return "dense_weights";
  return "other";
}

ordered_json inspect_model(const ModelDir& dir, const FormatReader& reader) {
  const QuantScheme& s = reader.scheme();
  const auto& cfg = dir.config();
  ordered_json r;
  r["path"] = dir.path();
  r["architecture"] = cfg.contains("architectures") && cfg["architectures"].is_array() && !cfg["architectures"].empty()
                          ? cfg["architectures"][0] : nlohmann::json(cfg.value("model_type", std::string("unknown")));
  r["format"] = s.format;
  r["version"] = s.version;
  if (!s.gptq_format.empty()) r["gptq_format"] = s.gptq_format;
  r["bits"] = s.bits;
  r["group_size"] = s.group_size;
  r["zero_point"] = s.zero_point;
  r["quant_config_source"] = dir.quant_config_source().empty() ? nullptr : nlohmann::json(dir.quant_config_source());
  r["modules_to_not_convert"] = s.modules_to_not_convert;
  r["quantized_layers"] = reader.modules();

  std::set<std::string> consumed;
  uint64_t quant_weights = 0, quant_bytes = 0;
  for (const auto& m : reader.modules()) {
    for (const auto& t : reader.module_tensors(m))
      if (const TensorView* v = dir.find(t)) {
        consumed.insert(t);
        quant_bytes += v->nbytes;
      }
  }
  // Quantized weight count: from each module's dense shape, computed without unpacking.
  std::map<std::string, std::pair<uint64_t, uint64_t>> kinds;  // kind -> (count, bytes)
  std::vector<std::string> dense_linears;
  for (const TensorView* t : dir.tensors()) {
    const bool q = consumed.count(t->name) > 0;
    const std::string kind = tensor_kind(t->name, q);
    kinds[kind].first += 1;
    kinds[kind].second += t->nbytes;
    if (!q && kind == "dense_weights" && t->shape.size() == 2) dense_linears.push_back(reader.dense_tensor_name(t->name));
  }
  for (const auto& m : reader.modules()) {
    const ModuleInfo info = reader.check(m);
    quant_weights += uint64_t(info.n) * uint64_t(info.k);
  }
  r["dense_linears"] = dense_linears;

  ordered_json tk = ordered_json::object();
  uint64_t total = 0;
  for (const auto& [k, v] : kinds) {
    tk[k] = {{"count", v.first}, {"bytes", v.second}};
    total += v.second;
  }
  r["tensors"] = tk;
  r["total_bytes"] = total;
  r["effective_bits_per_weight"] = quant_weights ? double(quant_bytes) * 8.0 / double(quant_weights) : 0.0;

  // Tied embeddings.
  const bool tie = cfg.value("tie_word_embeddings", false);
  bool emb = false, head = false;
  for (const TensorView* t : dir.tensors()) {
    const std::string n = reader.dense_tensor_name(t->name);
    if (ends_with(n, "embed_tokens.weight") || n == "transformer.wte.weight" || n == "vocab_embedding.weight") emb = true;
    if (n == "lm_head.weight") head = true;
  }
  r["tie_word_embeddings"] = tie;
  r["embeddings_stored"] = emb && head ? "both" : emb ? "embedding only" : head ? "lm_head only" : "neither";

  ordered_json shards = ordered_json::array();
  for (const auto& f : dir.shards())
    shards.push_back({{"file", std::filesystem::path(f->path()).filename().string()}, {"bytes", f->file_size()},
                      {"tensors", f->tensors().size()}});
  for (const auto& f : dir.npz_files())
    shards.push_back({{"file", std::filesystem::path(f->path()).filename().string()},
                      {"bytes", std::filesystem::file_size(f->path())}, {"tensors", f->tensors().size()}});
  r["shards"] = shards;
  r["sharded_index"] = dir.sharded();
  return r;
}

std::string render_inspect_text(const ordered_json& r) {
  std::ostringstream o;
  auto line = [&](const std::string& k, const std::string& v) { o << fmt::format("{:<26} {}\n", k, v); };
  line("path", r["path"].get<std::string>());
  line("architecture", r["architecture"].is_string() ? r["architecture"].get<std::string>() : r["architecture"].dump());
  line("format", r["format"].get<std::string>() + (r["version"].get<std::string>().empty() ? "" : " (version " + r["version"].get<std::string>() + ")") +
                     (r.contains("gptq_format") ? " gptq_format " + r["gptq_format"].get<std::string>() : ""));
  line("quant config from", r["quant_config_source"].is_null() ? "(none: inferred from tensors)" : r["quant_config_source"].get<std::string>());
  line("bits", std::to_string(r["bits"].get<int>()));
  const int64_t g = r["group_size"].get<int64_t>();
  line("group size", g == -1 ? "per-channel (-1)" : std::to_string(g));
  line("zero point", r["zero_point"].get<bool>() ? "yes (asymmetric)" : "no (symmetric)");
  line("effective bits/weight", fmt::format("{:.3f}", r["effective_bits_per_weight"].get<double>()));
  line("quantized modules", std::to_string(r["quantized_layers"].size()));
  line("dense linear weights", std::to_string(r["dense_linears"].size()));
  std::string mtnc;
  for (const auto& m : r["modules_to_not_convert"]) mtnc += (mtnc.empty() ? "" : ", ") + m.get<std::string>();
  line("modules_to_not_convert", mtnc.empty() ? "(none)" : mtnc);
  line("tie_word_embeddings", r["tie_word_embeddings"].get<bool>() ? "true" : "false");
  line("embeddings stored", r["embeddings_stored"].get<std::string>());
  o << "\n" << fmt::format("{:<20} {:>8} {:>14}\n", "tensor kind", "count", "bytes");
  for (const auto& [k, v] : r["tensors"].items())
    o << fmt::format("{:<20} {:>8} {:>14}\n", k, v["count"].get<uint64_t>(), human_bytes(v["bytes"].get<uint64_t>()));
  o << fmt::format("{:<20} {:>8} {:>14}\n", "total", "", human_bytes(r["total_bytes"].get<uint64_t>()));
  o << "\n" << fmt::format("{:<40} {:>8} {:>14}\n", "shard", "tensors", "bytes");
  for (const auto& s : r["shards"])
    o << fmt::format("{:<40} {:>8} {:>14}\n", s["file"].get<std::string>(), s["tensors"].get<size_t>(), human_bytes(s["bytes"].get<uint64_t>()));
  return o.str();
}

}  // namespace awq
