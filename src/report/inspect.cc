#include "awq/inspect.h"

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "awq/dtype.h"
#include "awq/model_config.h"
#include "awq/npz.h"
#include "awq/progress.h"

namespace awq {

using nlohmann::ordered_json;

namespace {
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

std::string architecture_of(const nlohmann::json& cfg) {
  if (cfg.contains("architectures") && cfg["architectures"].is_array() && !cfg["architectures"].empty() &&
      cfg["architectures"][0].is_string())
    return cfg["architectures"][0].get<std::string>();
  return cfg.contains("model_type") && cfg["model_type"].is_string() ? cfg["model_type"].get<std::string>() : "unknown";
}

// Tied-embedding state: the config's flag and which of the two tensors are stored (under their
// dense Hugging Face names, `dense_name`).
void add_tied_embeddings(ordered_json& r, const ModelDir& dir, const std::function<std::string(const std::string&)>& dense_name) {
  const auto& cfg = dir.config();
  const bool tie = cfg.contains("tie_word_embeddings") && cfg["tie_word_embeddings"].is_boolean() && cfg["tie_word_embeddings"].get<bool>();
  bool emb = false, head = false;
  for (const TensorView* t : dir.tensors()) {
    const std::string n = dense_name(t->name);
    if (ends_with(n, "embed_tokens.weight") || n == "transformer.wte.weight" || n == "vocab_embedding.weight") emb = true;
    if (n == "lm_head.weight") head = true;
  }
  r["tie_word_embeddings"] = tie;
  r["embeddings_stored"] = emb && head ? "both" : emb ? "embedding only" : head ? "lm_head only" : "neither";
}

void add_shards(ordered_json& r, const ModelDir& dir) {
  ordered_json shards = ordered_json::array();
  for (const auto& f : dir.shards())
    shards.push_back({{"file", std::filesystem::path(f->path()).filename().string()}, {"bytes", f->file_size()},
                      {"tensors", f->tensors().size()}});
  for (const auto& f : dir.npz_files())
    shards.push_back({{"file", std::filesystem::path(f->path()).filename().string()},
                      {"bytes", std::filesystem::file_size(f->path())}, {"tensors", f->tensors().size()}});
  r["shards"] = shards;
  r["sharded_index"] = dir.sharded();
}

// The dimensions a dense report states: ModelConfig's when the runtime takes the config, else
// what src/arch reads from it anyway (null where it holds none).
ordered_json dims_json(const DecoderDims& d) {
  auto v = [](int64_t x) { return x < 0 ? ordered_json(nullptr) : ordered_json(x); };
  ordered_json j;
  j["hidden_size"] = v(d.hidden);
  j["intermediate_size"] = v(d.intermediate);
  j["num_hidden_layers"] = v(d.layers);
  j["num_attention_heads"] = v(d.heads);
  j["num_key_value_heads"] = v(d.kv_heads);
  j["head_dim"] = v(d.head_dim);
  j["vocab_size"] = v(d.vocab);
  j["max_position_embeddings"] = d.model ? ordered_json(d.model->max_positions) : ordered_json(nullptr);
  j["rope_theta"] = d.model ? ordered_json(d.model->rope_theta) : ordered_json(nullptr);
  if (d.experts > 0) j[d.experts_key] = d.experts;
  return j;
}

std::string dtype_list(const std::set<std::string>& dtypes) {
  std::string s;
  for (const auto& d : dtypes) s += (s.empty() ? "" : ", ") + d;
  return s;
}

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
  r["architecture"] = architecture_of(cfg);
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
  // Over the decoder linears (inside model.layers.N): quantized modules at their stored bytes and
  // dense linear weights at their dtype's width, as `awq quantize --mixed` counts its budget.
  uint64_t dec_weights = 0, dec_bytes = 0;
  auto in_decoder = [](const std::string& name) { return name.find(".layers.") != std::string::npos; };
  for (const auto& m : reader.modules()) {
    const ModuleInfo info = reader.check(m);
    quant_weights += uint64_t(info.n) * uint64_t(info.k);
    if (!in_decoder(m)) continue;
    dec_weights += uint64_t(info.n) * uint64_t(info.k);
    for (const auto& t : reader.module_tensors(m))
      if (const TensorView* v = dir.find(t)) dec_bytes += v->nbytes;
  }
  size_t dec_dense = 0;
  for (const TensorView* t : dir.tensors())
    if (!consumed.count(t->name) && tensor_kind(t->name, false) == "dense_weights" && t->shape.size() == 2 &&
        in_decoder(t->name)) {
      dec_weights += uint64_t(t->numel());
      dec_bytes += t->nbytes;
      ++dec_dense;
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
  r["decoder_linear_bits_per_weight"] = dec_weights ? double(dec_bytes) * 8.0 / double(dec_weights) : 0.0;
  r["decoder_dense_linears"] = dec_dense;

  add_tied_embeddings(r, dir, [&reader](const std::string& n) { return reader.dense_tensor_name(n); });
  add_shards(r, dir);
  return r;
}

bool is_dense_checkpoint(const ModelDir& dir) {
  if (!dir.quant_config().is_null() || dir.hf_quant_config().is_object() || dir.is_npz() || dir.tensors().empty()) return false;
  for (const TensorView* t : dir.tensors())
    if (!is_float(t->dtype)) return false;
  return open_format_from_tensors(dir) == nullptr;
}

ordered_json inspect_dense_model(const ModelDir& dir) {
  const auto& cfg = dir.config();
  const DecoderDims d = decoder_dims(cfg, (std::filesystem::path(dir.path()) / "config.json").string());
  ordered_json r;
  r["path"] = dir.path();
  r["architecture"] = architecture_of(cfg);
  r["format"] = "dense";
  r["torch_dtype"] = cfg.contains("torch_dtype") && cfg["torch_dtype"].is_string() ? ordered_json(cfg["torch_dtype"].get<std::string>())
                                                                                   : ordered_json(nullptr);
  r["dims"] = dims_json(d);
  r["runtime_supported"] = d.model.has_value();
  if (!d.model) r["runtime_refusal"] = dir.has_config() ? d.model_error : "there is no config.json";

  struct Kind {
    uint64_t count = 0, bytes = 0, parameters = 0;
    std::set<std::string> dtypes;
  };
  std::map<std::string, Kind> kinds;
  uint64_t params = 0, total = 0;
  for (const TensorView* t : dir.tensors()) {
    Kind& k = kinds[tensor_kind(t->name, false)];
    k.count += 1;
    k.bytes += t->nbytes;
    k.parameters += uint64_t(t->numel());
    k.dtypes.insert(std::string(dtype_name(t->dtype)));
    params += uint64_t(t->numel());
    total += t->nbytes;
  }
  ordered_json tk = ordered_json::object();
  for (const auto& [name, k] : kinds)
    tk[name] = {{"count", k.count}, {"dtype", dtype_list(k.dtypes)}, {"parameters", k.parameters}, {"bytes", k.bytes}};
  r["tensors"] = tk;
  r["parameters"] = params;
  r["total_bytes"] = total;
  add_tied_embeddings(r, dir, [](const std::string& n) { return n; });
  add_shards(r, dir);
  return r;
}

namespace {

void render_shards(std::ostringstream& o, const ordered_json& r) {
  o << "\n" << fmt::format("{:<40} {:>8} {:>14}\n", "shard", "tensors", "bytes");
  for (const auto& s : r["shards"])
    o << fmt::format("{:<40} {:>8} {:>14}\n", s["file"].get<std::string>(), s["tensors"].get<size_t>(), human_bytes(s["bytes"].get<uint64_t>()));
}

std::string render_dense_text(const ordered_json& r) {
  std::ostringstream o;
  auto line = [&](const std::string& k, const std::string& v) { o << fmt::format("{:<26} {}\n", k, v); };
  auto num = [](const ordered_json& v) { return v.is_null() ? std::string("?") : v.dump(); };
  const auto& d = r["dims"];
  line("path", r["path"].get<std::string>());
  line("architecture", r["architecture"].get<std::string>());
  line("format", "dense" + (r["torch_dtype"].is_string() ? " (torch_dtype " + r["torch_dtype"].get<std::string>() + ")" : std::string()));
  line("hidden size", num(d["hidden_size"]));
  line("intermediate size", num(d["intermediate_size"]));
  line("layers", num(d["num_hidden_layers"]));
  line("attention heads", num(d["num_attention_heads"]) + " (kv heads " + num(d["num_key_value_heads"]) + ", head_dim " +
                              num(d["head_dim"]) + ")");
  line("vocab size", num(d["vocab_size"]));
  if (!d["max_position_embeddings"].is_null()) line("context", num(d["max_position_embeddings"]) + " positions");
  const uint64_t params = r["parameters"].get<uint64_t>();
  line("parameters", fmt::format("{} ({:.2f} M)", params, double(params) / 1e6));
  line("tie_word_embeddings", r["tie_word_embeddings"].get<bool>() ? "true" : "false");
  line("embeddings stored", r["embeddings_stored"].get<std::string>());
  line("awq run", r["runtime_supported"].get<bool>() ? "supported" : "not supported: " + r["runtime_refusal"].get<std::string>());
  o << "\n" << fmt::format("{:<20} {:>8} {:<10} {:>14} {:>14}\n", "tensor kind", "count", "dtype", "parameters", "bytes");
  for (const auto& [k, v] : r["tensors"].items())
    o << fmt::format("{:<20} {:>8} {:<10} {:>14} {:>14}\n", k, v["count"].get<uint64_t>(), v["dtype"].get<std::string>(),
                     v["parameters"].get<uint64_t>(), human_bytes(v["bytes"].get<uint64_t>()));
  o << fmt::format("{:<20} {:>8} {:<10} {:>14} {:>14}\n", "total", "", "", params, human_bytes(r["total_bytes"].get<uint64_t>()));
  render_shards(o, r);
  return o.str();
}

}  // namespace

std::string render_inspect_text(const ordered_json& r) {
  if (r["format"] == "dense") return render_dense_text(r);
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
  line("effective bits/weight", fmt::format("{:.3f} (quantized modules only: codes, scales, zeros)",
                                            r["effective_bits_per_weight"].get<double>()));
  line("decoder linears bits/wt", fmt::format("{:.3f} (every linear in the decoder layers, {} of them dense at their dtype's width)",
                                              r["decoder_linear_bits_per_weight"].get<double>(),
                                              r["decoder_dense_linears"].get<size_t>()));
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
  render_shards(o, r);
  return o.str();
}

}  // namespace awq
