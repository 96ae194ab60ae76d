// `awq repair` (see include/awq/repair.h). Works from the shard files themselves, so it also
// repairs directories whose index ModelDir refuses; quantization config decisions are checked by
// re-opening the written tensors with the format readers.
#include "awq/repair.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "awq/error.h"
#include "awq/formats.h"
#include "awq/fsutil.h"
#include "awq/resources.h"
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

// Changes as they are decided, each with the output file it concerns. Only those whose file ends
// up different from the input's are reported (see keep_real_changes); remarks are never changes.
struct Log {
  std::vector<std::pair<std::string, std::string>> changes;  // (file, sentence)
  std::vector<std::string> remarks;
  void change(const std::string& file, const std::string& text) { changes.emplace_back(file, text); }
};

struct Plan {
  std::map<std::string, std::string> rename;  // stored -> written
  std::set<std::string> drop;
};

Plan tied_plan(const json& cfg, const std::map<std::string, const TensorView*>& all, Log& log) {
  Plan p;
  const std::string mt = cfg.value("model_type", std::string());
  bool tie = mt.rfind("gemma", 0) == 0;
  if (cfg.contains("tie_word_embeddings") && cfg["tie_word_embeddings"].is_boolean()) tie = cfg["tie_word_embeddings"].get<bool>();
  if (!tie) return p;
  auto emb = all.find("model.embed_tokens.weight");
  auto head = all.find("lm_head.weight");
  if (head == all.end()) return p;
  const std::string file = fs::path(*head->second->file).filename().string();
  if (emb == all.end()) {
    p.rename["lm_head.weight"] = "model.embed_tokens.weight";
    log.change(file, "restored model.embed_tokens.weight from the lone lm_head.weight (tie_word_embeddings is true; the AutoAWQ 0.2.7 save bug)");
  } else {
    const TensorView& e = *emb->second;
    const TensorView& h = *head->second;
    const bool same = e.dtype == h.dtype && e.shape == h.shape && std::equal(e.data, e.data + e.nbytes, h.data);
    if (!same) {  // a trained head under a wrong tie flag would be lost: keep it
      log.remarks.push_back("kept lm_head.weight: it differs from model.embed_tokens.weight, so it may be a trained head under a "
                            "wrong tie_word_embeddings true (set it false if so)");
      return p;
    }
    p.drop.insert("lm_head.weight");
    log.change(file, "dropped lm_head.weight, a copy of model.embed_tokens.weight (tie_word_embeddings is true), saving " +
                         std::to_string(h.nbytes) + " bytes");
  }
  return p;
}

// Writes the tensors shard by shard (same file names), with format "pt" and a fresh index.
void write_tensors(const fs::path& dir, const std::vector<std::unique_ptr<SafetensorsFile>>& files, const Plan& plan,
                   bool had_index, const json& old_index, const OutputDir& out, Progress& bar, Log& log) {
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
      log.change(fname, "set safetensors metadata format \"pt\" in " + fname + " (transformers refuses the file without it)");
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
  if (same && ts == json(total)) {  // the index is right as it is: keep its bytes
    copy_auxiliary(dir.string(), {"model.safetensors.index.json"}, out);
    return;
  }
  log.change("model.safetensors.index.json", std::string(had_index ? "rewrote" : "wrote") +
                                                 " model.safetensors.index.json from the shards' contents (" +
                                                 std::to_string(weight_map.size()) + " tensors, total_size " + std::to_string(total) + ")");
  write_index(out, weight_map, total);
}

// Decides the quantization_config: the existing one (from wherever loaders might find it),
// normalised, if the tensors agree with it; else the one the tensors imply.
void write_config(const fs::path& dir, json cfg, const OutputDir& out, Log& log, std::string& moved_legacy) {
  json qc;
  std::string src;
  if (cfg.contains("quantization_config")) {
    qc = cfg["quantization_config"];
    src = "config.json";
  } else if (cfg.contains("text_config") && cfg["text_config"].is_object() && cfg["text_config"].contains("quantization_config")) {
    qc = cfg["text_config"]["quantization_config"];
    cfg["text_config"].erase("quantization_config");
    src = "text_config";
    log.change("config.json", "moved quantization_config from text_config to the top level of config.json (where vLLM looks)");
  } else {
    for (const char* legacy : {"quant_config.json", "quantize_config.json"}) {
      std::error_code ec;
      if (!fs::exists(dir / legacy, ec)) continue;
      qc = read_json_file((dir / legacy).string());
      src = legacy;
      moved_legacy = legacy;
      log.change("config.json", std::string("moved the legacy ") + legacy + " into config.json's quantization_config");
      break;
    }
  }
  json candidate = is_awq_config(qc) ? normalise_awq(qc) : qc;
  // A config.json that merely omits modules_to_not_convert is fine as it is (loaders default it).
  if (src == "config.json" && candidate.is_object() && !qc.contains("modules_to_not_convert")) candidate.erase("modules_to_not_convert");
  if (is_awq_config(qc) && candidate != qc && src != "")
    log.change("config.json", "normalised the AWQ quantization_config keys (bits, group_size, zero_point, lower-case version, quant_method)");
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
    log.remarks.push_back("left quantization_config as it was: the tensors fit no known layout");
    return;
  }
  const json skip = candidate.is_object() && candidate.contains("modules_to_not_convert") ? candidate["modules_to_not_convert"] : json();
  json implied = config_from_scheme(tensors->scheme(), skip);
  if (implied.is_null() && tensors->scheme().format == "compressed-tensors" && candidate.is_object() &&
      candidate.contains("config_groups") && candidate["config_groups"].is_object()) {
    // compressed-tensors: only the bit width can be taken from the tensors (num_bits per group).
    json e = candidate;
    for (auto& [_, g] : e["config_groups"].items())
      if (g.is_object() && g.contains("weights") && g["weights"].is_object()) g["weights"]["num_bits"] = tensors->scheme().bits;
    if (e != candidate && try_config(e)) {
      log.change("config.json", "set num_bits " + std::to_string(tensors->scheme().bits) +
                                    " in the compressed-tensors config_groups: the tensors hold " + std::to_string(tensors->scheme().bits) +
                                    "-bit codes");
      return;
    }
  }
  if (implied.is_null()) {
    try_config(candidate);
    log.remarks.push_back(std::string("left quantization_config as it was: ") + (qc.is_null() ? "there is none, and" : "it contradicts the tensors, and") +
                          " repair writes configs only for AWQ and GPTQ (and a compressed-tensors bit width)");
    return;
  }
  // A contradicting config of the same method is edited as little as opens: first only the keys
  // the tensor shapes decide (bits, then group_size), then every implied key. Keys the tensors
  // only suggest (checkpoint_format v1/v2, sym) stay as they were while that works, since a wrong
  // one would shift every zero point.
  if (candidate.is_object() && candidate.value("quant_method", json()) == implied["quant_method"]) {
    std::vector<json> edits;
    for (const auto& keys : {std::vector<const char*>{"bits"}, std::vector<const char*>{"bits", "group_size"}}) {
      json e = candidate;
      for (const char* k : keys) e[k] = implied[k];
      edits.push_back(e);
    }
    edits.push_back(candidate);
    edits.back().update(implied);
    for (const auto& e : edits)
      if (e != candidate && try_config(e)) {
        implied = e;
        break;
      }
  }
  if (!try_config(implied)) {
    try_config(candidate);
    log.remarks.push_back("left quantization_config as it was: the config the tensors imply does not open either");
    return;
  }
  std::string why;
  if (!qc.is_null() && qc.is_object() && qc.contains("bits") && qc["bits"] != implied["bits"])
    why = " (bits " + qc["bits"].dump() + " -> " + implied["bits"].dump() + ": the tensors hold " + implied["bits"].dump() + "-bit codes)";
  log.change("config.json", std::string(qc.is_null() ? "wrote" : "replaced the contradicting") + " quantization_config from the tensors" + why +
                                ": " + implied.dump());
}

// Whether two files hold the same bytes (streamed; stops at the first difference, so a file that
// did change costs little).
bool same_bytes(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (!fs::is_regular_file(a, ec) || !fs::is_regular_file(b, ec) || fs::file_size(a, ec) != fs::file_size(b, ec)) return false;
  std::FILE* fa = std::fopen(a.c_str(), "rb");
  std::FILE* fb = std::fopen(b.c_str(), "rb");
  bool same = fa && fb;
  std::vector<char> ba(1 << 20), bb(1 << 20);
  while (same) {
    const size_t na = std::fread(ba.data(), 1, ba.size(), fa), nb = std::fread(bb.data(), 1, bb.size(), fb);
    same = na == nb && std::memcmp(ba.data(), bb.data(), na) == 0;
    if (na < ba.size()) break;
  }
  if (fa) std::fclose(fa);
  if (fb) std::fclose(fb);
  return same;
}

// A change counts only when what was written differs from what was read.
void keep_real_changes(const fs::path& dir, const OutputDir& out, const Log& log, RepairResult& res) {
  std::map<std::string, bool> differs;
  for (const auto& [file, text] : log.changes) {
    auto it = differs.find(file);
    if (it == differs.end()) it = differs.emplace(file, !same_bytes(dir / file, out.file(file))).first;
    if (it->second) res.changes.push_back(text);
  }
  res.remarks = log.remarks;
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
  Log log;
  const Plan plan = tied_plan(cfg, all, log);
  OutputDir out(opt.out_dir, opt.force, {model});
  check_resources({opt.out_dir, bytes, "", 0});  // the tensors are copied, never all held in memory
  Progress bar("repair", bytes, opt.progress);
  write_tensors(dir, files, plan, had_index, old_index, out, bar, log);
  bar.finish();
  std::string moved_legacy;
  write_config(dir, cfg, out, log, moved_legacy);
  if (read_json_file(out.file("config.json")) == cfg) copy_auxiliary(dir.string(), {"config.json"}, out);  // same content: same bytes
  std::vector<std::string> aux = aux_files(dir);
  for (const char* legacy : {"quant_config.json", "quantize_config.json"})  // kept unless moved into config.json
    if (legacy != moved_legacy && fs::exists(dir / legacy, ec)) {
      aux.push_back(legacy);
      if (!same_bytes(dir / "config.json", out.file("config.json")) && cfg.contains("quantization_config"))
        log.remarks.push_back(std::string("kept ") + legacy + " as it was (older tools read it); config.json's quantization_config is the one loaders use");
    }
  copy_auxiliary(dir.string(), aux, out);
  for (const auto& e : fs::directory_iterator(dir, ec)) {  // tensor files that are not the model's
    const std::string n = e.path().filename().string();
    const bool tensor_file = ends_with(n, ".safetensors") || ends_with(n, ".bin") || ends_with(n, ".pt") || ends_with(n, ".npz");
    if (e.is_regular_file() && !n.empty() && n[0] != '.' && tensor_file && std::find(names.begin(), names.end(), n) == names.end())
      log.remarks.push_back("did not copy " + n + ", which is not among the files transformers and awq load (" +
                            (had_index ? std::string("the indexed shards") : names[0]) + "); it stays in " + model);
  }
  keep_real_changes(dir, out, log, res);
  out.commit();
  return res;
}

}  // namespace awq
