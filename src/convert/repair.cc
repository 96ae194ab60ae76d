// `awq repair` (see include/awq/repair.h). Works from the shard files themselves, so it also
// repairs directories whose index ModelDir refuses; quantization config decisions are checked by
// re-opening the written tensors with the format readers.
#include "awq/repair.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "awq/error.h"
#include "awq/formats.h"
#include "awq/fsutil.h"
#include "awq/model_dir.h"
#include "convert/shard_writer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace awq {
using namespace convert_detail;

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The tensor files to repair: those the index names (all must exist), else model.safetensors,
// else every *.safetensors.
std::vector<std::string> tensor_files(const fs::path& dir, bool& had_index, json& old_index) {
  std::error_code ec;
  const fs::path idx = dir / "model.safetensors.index.json";
  std::vector<std::string> files;
  had_index = fs::exists(idx, ec);
  if (had_index) {
    try {
      old_index = read_json_file(idx.string());
    } catch (const Error&) {
      old_index = json();
    }
    if (old_index.is_object() && old_index.contains("weight_map") && old_index["weight_map"].is_object()) {
      std::set<std::string> seen;
      for (const auto& [_, f] : old_index["weight_map"].items()) {
        if (!f.is_string() || !seen.insert(f.get<std::string>()).second) continue;
        const std::string name = f.get<std::string>();
        if (name.find('/') != std::string::npos || name.find("..") != std::string::npos)
          fail(idx.string(), "", "shard name \"" + name + "\" points outside the model directory");
        if (!fs::is_regular_file(dir / name, ec))
          fail(idx.string(), "", "names shard " + name + ", which does not exist; repair cannot invent tensors (download it)");
        files.push_back(name);
      }
      std::sort(files.begin(), files.end());
      if (!files.empty()) return files;
    }
  }
  if (fs::exists(dir / "model.safetensors", ec)) return {"model.safetensors"};
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && n[0] != '.' && ends_with(n, ".safetensors")) files.push_back(n);
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) fail(dir.string(), "", "no *.safetensors files to repair");
  return files;
}

// Files copied unchanged: everything but tensors, the index and the configs we rewrite.
std::vector<std::string> aux_files(const fs::path& dir) {
  static const std::set<std::string> kSkip = {"config.json", "model.safetensors.index.json", "quant_config.json", "quantize_config.json"};
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_regular_file() || n.empty() || n[0] == '.' || kSkip.count(n)) continue;
    if (ends_with(n, ".safetensors") || ends_with(n, ".npz") || ends_with(n, ".bin") || ends_with(n, ".pt")) continue;
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// AWQ quantization_config with the names transformers and vLLM (incl. awq_marlin) read.
json normalise_awq(const json& q) {
  json out = q;
  for (const char* k : {"w_bit", "q_group_size"}) out.erase(k);
  auto pick = [&](std::initializer_list<const char*> keys, const json& def) {
    for (const char* k : keys)
      if (q.contains(k) && !q[k].is_null()) return q[k];
    return def;
  };
  out["quant_method"] = "awq";
  out["bits"] = pick({"bits", "w_bit"}, 4);
  out["group_size"] = pick({"group_size", "q_group_size"}, 128);
  out["zero_point"] = pick({"zero_point"}, true);
  const json v = pick({"version"}, "gemm");
  out["version"] = v.is_string() ? json(lower(v.get<std::string>())) : json("gemm");
  if (!out.contains("modules_to_not_convert")) out["modules_to_not_convert"] = nullptr;
  return out;
}

// The config the tensors imply, as the format's own tool writes it.
json config_from_scheme(const QuantScheme& s, const json& keep_skip) {
  if (s.format.rfind("autoawq-", 0) == 0) {
    const std::string v = s.format == "autoawq-gemm" ? "gemm" : s.format == "autoawq-gemv" ? "gemv" : "gemv_fast";
    return {{"quant_method", "awq"}, {"bits", s.bits}, {"group_size", s.group_size}, {"zero_point", s.zero_point},
            {"version", v}, {"modules_to_not_convert", keep_skip}};
  }
  if (s.format == "gptq")
    return {{"quant_method", "gptq"}, {"bits", s.bits}, {"group_size", s.group_size}, {"desc_act", false}, {"sym", !s.zero_point},
            {"static_groups", false}, {"true_sequential", true}, {"damp_percent", 0.01},
            {"checkpoint_format", s.gptq_format == "v2" ? "gptq_v2" : "gptq"}};
  return json();
}

bool is_awq_config(const json& q) {
  if (!q.is_object()) return false;
  if (q.contains("quant_method") && q["quant_method"].is_string()) return lower(q["quant_method"].get<std::string>()) == "awq";
  return q.contains("w_bit") || q.contains("version");
}

struct Plan {
  std::map<std::string, std::string> rename;  // stored -> written
  std::set<std::string> drop;
};

Plan tied_plan(const json& cfg, const std::map<std::string, const TensorView*>& all, std::vector<std::string>& changes) {
  Plan p;
  const std::string mt = cfg.value("model_type", std::string());
  bool tie = mt.rfind("gemma", 0) == 0;
  if (cfg.contains("tie_word_embeddings") && cfg["tie_word_embeddings"].is_boolean()) tie = cfg["tie_word_embeddings"].get<bool>();
  if (!tie) return p;
  auto emb = all.find("model.embed_tokens.weight");
  auto head = all.find("lm_head.weight");
  if (head == all.end()) return p;
  if (emb == all.end()) {
    p.rename["lm_head.weight"] = "model.embed_tokens.weight";
    changes.push_back("restored model.embed_tokens.weight from the lone lm_head.weight (tie_word_embeddings is true; the AutoAWQ 0.2.7 save bug)");
  } else {
    const TensorView& e = *emb->second;
    const TensorView& h = *head->second;
    const bool same = e.dtype == h.dtype && e.shape == h.shape && std::equal(e.data, e.data + e.nbytes, h.data);
    p.drop.insert("lm_head.weight");
    changes.push_back("dropped lm_head.weight, a " + std::string(same ? "copy" : "different tensor (unused: tied models use the embedding)") +
                      " of model.embed_tokens.weight (tie_word_embeddings is true), saving " + std::to_string(h.nbytes) + " bytes");
  }
  return p;
}

// Writes the tensors shard by shard (same file names), with format "pt" and a fresh index.
void write_tensors(const fs::path& dir, const std::vector<std::unique_ptr<SafetensorsFile>>& files, const Plan& plan,
                   bool had_index, const json& old_index, const OutputDir& out, Progress& bar, std::vector<std::string>& changes) {
  std::vector<std::pair<std::string, std::string>> weight_map;
  uint64_t total = 0;
  for (const auto& f : files) {
    const std::string fname = fs::path(f->path()).filename().string();
    std::vector<OutTensor> ts;
    for (const auto& t : f->tensors()) {
      if (plan.drop.count(t.name)) continue;
      auto r = plan.rename.find(t.name);
      ts.push_back(copy_of(t, r == plan.rename.end() ? t.name : r->second));
      weight_map.emplace_back(ts.back().spec.name, fname);
      total += t.nbytes;
    }
    std::map<std::string, std::string> md = f->metadata();
    for (auto it = md.begin(); it != md.end();)
      it = (it->first != "format" && (plan.drop.count(it->first) || plan.rename.count(it->first))) ? md.erase(it) : std::next(it);
    if (md["format"] != "pt")
      changes.push_back("set safetensors metadata format \"pt\" in " + fname + " (transformers refuses the file without it)");
    md["format"] = "pt";
    write_tensor_file(out.file(fname), ts, md, &bar);
  }
  if (!had_index && files.size() < 2) return;
  bool same = old_index.is_object() && old_index.contains("weight_map") && old_index["weight_map"].is_object() &&
              old_index["weight_map"].size() == weight_map.size();
  if (same)
    for (const auto& [n, f] : weight_map) same = same && old_index["weight_map"].value(n, json()) == f;
  if (same) same = duplicate_index_keys((dir / "model.safetensors.index.json").string()).empty();  // a key listed twice
  const json ts = old_index.is_object() && old_index.contains("metadata") && old_index["metadata"].is_object()
                      ? old_index["metadata"].value("total_size", json()) : json();
  if (!same || ts != json(total))
    changes.push_back(std::string(had_index ? "rewrote" : "wrote") + " model.safetensors.index.json from the shards' contents (" +
                      std::to_string(weight_map.size()) + " tensors, total_size " + std::to_string(total) + ")");
  write_index(out, weight_map, total);
}

// Decides the quantization_config: the existing one (from wherever loaders might find it),
// normalised, if the tensors agree with it; else the one the tensors imply.
void write_config(const fs::path& dir, json cfg, const OutputDir& out, std::vector<std::string>& changes) {
  json qc;
  std::string src;
  if (cfg.contains("quantization_config")) {
    qc = cfg["quantization_config"];
    src = "config.json";
  } else if (cfg.contains("text_config") && cfg["text_config"].is_object() && cfg["text_config"].contains("quantization_config")) {
    qc = cfg["text_config"]["quantization_config"];
    cfg["text_config"].erase("quantization_config");
    src = "text_config";
    changes.push_back("moved quantization_config from text_config to the top level of config.json (where vLLM looks)");
  } else {
    for (const char* legacy : {"quant_config.json", "quantize_config.json"}) {
      std::error_code ec;
      if (!fs::exists(dir / legacy, ec)) continue;
      qc = read_json_file((dir / legacy).string());
      src = legacy;
      changes.push_back(std::string("moved the legacy ") + legacy + " into config.json's quantization_config");
      break;
    }
  }
  json candidate = is_awq_config(qc) ? normalise_awq(qc) : qc;
  // A config.json that merely omits modules_to_not_convert is fine as it is (loaders default it).
  if (src == "config.json" && candidate.is_object() && !qc.contains("modules_to_not_convert")) candidate.erase("modules_to_not_convert");
  if (is_awq_config(qc) && candidate != qc && src != "")
    changes.push_back("normalised the AWQ quantization_config keys (bits, group_size, zero_point, lower-case version, quant_method)");
  auto try_config = [&](const json& q) -> std::unique_ptr<FormatReader> {
    json c = cfg;
    if (q.is_null()) c.erase("quantization_config");
    else c["quantization_config"] = q;
    write_file_atomic(out.file("config.json"), c.dump(2) + "\n");
    ModelDir md(out.tmp().string());
    try {
      return open_format(md);
    } catch (const Error&) {
      return nullptr;
    }
  };
  if (try_config(candidate)) {
    if (!qc.is_null()) return;
  }
  // The config is absent or contradicts the tensors: write what the tensors imply.
  std::unique_ptr<FormatReader> tensors;
  {
    json c = cfg;
    c.erase("quantization_config");
    write_file_atomic(out.file("config.json"), c.dump(2) + "\n");
    ModelDir md(out.tmp().string());
    tensors = open_format_from_tensors(md);
  }
  if (!tensors) {
    try_config(candidate);
    changes.push_back("left quantization_config as it was: the tensors fit no known layout");
    return;
  }
  const json skip = candidate.is_object() && candidate.contains("modules_to_not_convert") ? candidate["modules_to_not_convert"] : json();
  const json implied = config_from_scheme(tensors->scheme(), skip);
  if (implied.is_null()) {
    try_config(candidate);
    return;
  }
  try_config(implied);
  changes.push_back(std::string(qc.is_null() ? "wrote" : "replaced the contradicting") + " quantization_config from the tensors: " + implied.dump());
}

}  // namespace

RepairResult repair_model(const std::string& model, const RepairOptions& opt) {
  RepairResult res;
  std::error_code ec;
  const fs::path dir(model);
  if (!fs::is_directory(dir, ec)) fail(model, "", "not a model directory");
  if (!fs::exists(dir / "config.json", ec)) fail(model, "config.json", "missing; repair cannot invent the architecture config");
  json cfg = read_json_file((dir / "config.json").string());
  if (!cfg.is_object()) fail((dir / "config.json").string(), "", "is not a JSON object");
  bool had_index = false;
  json old_index;
  const auto names = tensor_files(dir, had_index, old_index);
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, const TensorView*> all;
  uint64_t bytes = 0;
  for (const auto& n : names) {
    files.push_back(std::make_unique<SafetensorsFile>((dir / n).string()));
    for (const auto& t : files.back()->tensors()) {
      auto [it, fresh] = all.emplace(t.name, &t);
      if (!fresh) fail((dir / n).string(), t.name, "also stored in " + *it->second->file + "; repair cannot choose between them");
      bytes += t.nbytes;
    }
  }
  const Plan plan = tied_plan(cfg, all, res.changes);
  OutputDir out(opt.out_dir, opt.force);
  Progress bar("repair", bytes, opt.progress);
  write_tensors(dir, files, plan, had_index, old_index, out, bar, res.changes);
  bar.finish();
  write_config(dir, cfg, out, res.changes);
  copy_auxiliary(dir.string(), aux_files(dir), out);
  out.commit();
  return res;
}

}  // namespace awq
