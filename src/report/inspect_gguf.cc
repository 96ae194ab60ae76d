// `awq inspect FILE.gguf` (inspect.h inspect_gguf).
#include <map>

#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/gguf_arch.h"
#include "awq/inspect.h"
#include "awq/model_config.h"

namespace awq {

nlohmann::ordered_json inspect_gguf(const std::string& path) {
  GgufFile f(path);
  nlohmann::ordered_json r;
  r["format"] = "gguf";
  r["version"] = f.version();
  r["alignment"] = f.alignment();
  const GgufValue* arch = f.find("general.architecture");
  const std::string a = arch && arch->type == GgufType::STRING ? arch->s : "";
  r["architecture"] = a;
  if (const GgufValue* n = f.find("general.name"); n && n->type == GgufType::STRING) r["name"] = n->s;
  nlohmann::ordered_json hp = nlohmann::ordered_json::object();
  for (const auto& [k, v] : f.metadata())
    if (!a.empty() && k.rfind(a + ".", 0) == 0) hp[k.substr(a.size() + 1)] = v.is_integer() ? nlohmann::ordered_json(*v.as_int()) : nlohmann::ordered_json(v.to_string());
  r["hyperparameters"] = hp;
  if (const GgufValue* m = f.find("tokenizer.ggml.model")) r["tokenizer"] = {{"model", m->s}, {"pre", f.find("tokenizer.ggml.pre") ? f.find("tokenizer.ggml.pre")->s : ""},
                                                                           {"tokens", f.find("tokenizer.ggml.tokens") ? f.find("tokenizer.ggml.tokens")->arr.size() : 0}};
  // HF names where the architecture is one we know.
  std::map<std::string, std::string> hf;
  try {
    const ModelConfig c = parse_model_config(hf_config_from_gguf(f), path);
    for (const auto& n : gguf_tensor_names(c)) hf[n.gguf] = n.hf;
  } catch (const Error&) {
  }
  std::map<std::string, std::pair<size_t, uint64_t>> by_type;
  uint64_t w_bytes = 0, w_elems = 0;
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  for (const auto& t : f.tensors()) {
    auto& e = by_type[ggml_type_name(t.type)];
    ++e.first;
    e.second += t.nbytes;
    if (t.ne.size() == 2) {
      w_bytes += t.nbytes;
      w_elems += uint64_t(t.numel());
    }
    tensors.push_back({{"name", t.name}, {"hf_name", hf.count(t.name) ? hf[t.name] : ""}, {"type", ggml_type_name(t.type)}, {"shape", t.ne}, {"bytes", t.nbytes}});
  }
  nlohmann::ordered_json bt = nlohmann::ordered_json::object();
  for (const auto& [k, v] : by_type) bt[k] = {{"count", v.first}, {"bytes", v.second}};
  r["tensor_count"] = f.tensors().size();
  r["by_type"] = bt;
  r["bits_per_weight_2d"] = w_elems ? 8.0 * double(w_bytes) / double(w_elems) : 0.0;
  r["file_bytes"] = f.file_size();
  r["tensors"] = tensors;
  return r;
}

std::string render_gguf_inspect_text(const nlohmann::ordered_json& r) {
  std::string s;
  auto line = [&](const std::string& k, const std::string& v) { s += k + ": " + v + "\n"; };
  line("format", "GGUF v" + std::to_string(r["version"].get<int>()) + " (alignment " + std::to_string(r["alignment"].get<int>()) + ")");
  line("architecture", r["architecture"].get<std::string>() + (r.contains("name") ? " (" + r["name"].get<std::string>() + ")" : ""));
  for (const auto& [k, v] : r["hyperparameters"].items()) line("  " + k, v.is_string() ? v.get<std::string>() : v.dump());
  if (r.contains("tokenizer"))
    line("tokenizer", r["tokenizer"]["model"].get<std::string>() + ", pre " + r["tokenizer"]["pre"].get<std::string>() + ", " +
                          std::to_string(r["tokenizer"]["tokens"].get<size_t>()) + " tokens");
  else line("tokenizer", "none");
  line("tensors", std::to_string(r["tensor_count"].get<size_t>()));
  for (const auto& [k, v] : r["by_type"].items())
    line("  " + k, std::to_string(v["count"].get<size_t>()) + " tensors, " + std::to_string(v["bytes"].get<uint64_t>()) + " bytes");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", r["bits_per_weight_2d"].get<double>());
  line("bits per weight (2-D tensors)", buf);
  for (const auto& t : r["tensors"])
    s += "  " + t["name"].get<std::string>() + "  " + t["type"].get<std::string>() + "  " + t["shape"].dump() +
         (t["hf_name"].get<std::string>().empty() ? "" : "  <- " + t["hf_name"].get<std::string>()) + "\n";
  return s;
}

}  // namespace awq
