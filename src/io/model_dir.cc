#include "awq/model_dir.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/npz.h"
#include "awq/sealed.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace awq {

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail(path, "", std::string("invalid JSON: ") + e.what());
  }
}

std::vector<std::pair<std::string, std::vector<std::string>>> duplicate_index_keys(const std::string& index_file) {
  std::ifstream in(index_file, std::ios::binary);
  if (!in) fail(index_file, "", "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string top_key, key;
  std::map<std::string, std::vector<std::string>> listed;
  std::vector<std::string> order;
  // The parser reports every key and value, duplicates included, before it keeps only the last.
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1) top_key = parsed.get<std::string>();
    if (depth != 2 || top_key != "weight_map") return true;
    if (ev == json::parse_event_t::key) {
      key = parsed.get<std::string>();
    } else if (ev == json::parse_event_t::value) {
      auto& v = listed[key];
      if (v.empty()) order.push_back(key);
      v.push_back(parsed.is_string() ? parsed.get<std::string>() : parsed.dump());
    }
    return true;
  };
  try {
    [[maybe_unused]] const json doc = json::parse(ss.str(), cb);
  } catch (const json::exception& e) {
    fail(index_file, "", std::string("invalid JSON: ") + e.what());
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& k : order)
    if (listed[k].size() > 1) out.emplace_back(k, listed[k]);
  return out;
}

namespace {
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// A shard name from an index must be a relative path that stays inside the model directory.
void check_inside(const std::string& index_file, const std::string& shard) {
  fs::path p(shard);
  bool ok = !shard.empty() && p.is_relative() && !p.has_root_name() && !p.has_root_directory();
  for (const auto& part : p)
    if (part == "..") ok = false;
  if (!ok) fail(index_file, "", "shard name \"" + shard + "\" points outside the model directory");
}
}  // namespace

ModelDir::ModelDir(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  std::vector<std::string> files;  // tensor files to open
  if (fs::is_regular_file(p, ec)) {
    dir_ = p.parent_path().empty() ? "." : p.parent_path().string();
    const std::string sealed_ext = std::string(".safetensors") + kSealedSuffix;
    files.push_back(ends_with(p.string(), sealed_ext) ? p.string().substr(0, p.string().size() - 4) : p.string());
  } else if (fs::is_directory(p, ec)) {
    dir_ = p.string();
  } else {
    fail(path, "", "no such model directory or file");
  }
  if (!files.empty() && (ends_with(files[0], ".pt") || ends_with(files[0], ".bin")))
    fail(files[0], "", "PyTorch pickles (such as llm-awq's *-v2.pt dumps) are detected but not read; convert to safetensors first");
  // Callers open a file with the "GGUF" magic as GGUF; one named .gguf without it lands here.
  if (!files.empty()) refuse_gguf_without_magic(files[0]);
  load_configs();
  if (files.empty()) {
    const fs::path idx = fs::path(dir_) / "model.safetensors.index.json";
    if (fs::exists(idx, ec)) {
      index_path_ = idx.string();
      load_index();
      return;
    }
    if (tensor_file_exists((fs::path(dir_) / "model.safetensors").string())) {
      files.push_back((fs::path(dir_) / "model.safetensors").string());
    } else {
      for (const auto& e : fs::directory_iterator(dir_, ec)) {
        const std::string n = e.path().filename().string();
        if (e.is_regular_file() && n[0] != '.' && (ends_with(n, ".safetensors") || ends_with(n, ".npz")))
          files.push_back(e.path().string());
        else if (e.is_regular_file() && n[0] != '.' && ends_with(n, std::string(".safetensors") + kSealedSuffix))
          files.push_back(e.path().string().substr(0, e.path().string().size() - 4));  // opened sealed
      }
      std::sort(files.begin(), files.end());
    }
    if (files.empty()) {
      std::string hint;
      for (const auto& e : fs::directory_iterator(dir_, ec))
        if (ends_with(e.path().filename().string(), ".pt") || ends_with(e.path().filename().string(), ".bin"))
          hint = " (found " + e.path().filename().string() +
                 ": PyTorch pickles such as llm-awq's *-v2.pt dumps are not read; convert them to safetensors first)";
      fail(dir_, "", "no model.safetensors, model.safetensors.index.json, *.safetensors or *.npz found" + hint);
    }
  }
  for (const auto& f : files) {
    if (ends_with(f, ".npz")) {
      npz_.push_back(std::make_unique<NpzFile>(f));
      add_tensors(npz_.back()->tensors(), f);
    } else if (ends_with(f, ".safetensors")) {
      shards_.push_back(open_tensor_file(f));
      add_tensors(shards_.back()->tensors(), f);
    } else {
      fail(f, "", "not a .safetensors or .npz file");
    }
  }
  for (const auto& [_, v] : by_name_) sorted_.push_back(v);
}

ModelDir::~ModelDir() = default;

namespace {
// A tensor stored in two files is refused whatever its bytes: loaders disagree on which copy wins
// (transformers takes the index's shard, a directory scan the last file read, safetensors' own
// loaders refuse), so no answer of ours would match every one of them.
[[noreturn]] void refuse_duplicate(const std::string& file, const TensorView& a, const TensorView& b) {
  const bool same = a.dtype == b.dtype && a.shape == b.shape && a.nbytes == b.nbytes && std::memcmp(a.data, b.data, a.nbytes) == 0;
  fail(file, a.name,
       "stored in two shards, " + *b.file + " and " + *a.file + (same ? " (identical bytes)" : " (different bytes)") +
           "; loaders disagree on which copy wins, so it is refused. Fix: keep one copy (awq check reports it as tensor-duplicate)");
}
}  // namespace

void ModelDir::add_tensors(const std::vector<TensorView>& views, const std::string& file) {
  for (const auto& t : views) {
    auto [it, inserted] = by_name_.emplace(t.name, &t);
    if (!inserted) refuse_duplicate(file, t, *it->second);
  }
}

void ModelDir::load_configs() {
  std::error_code ec;
  const fs::path d(dir_);
  if (fs::exists(d / "config.json", ec)) {
    config_ = read_json_file((d / "config.json").string());
    if (!config_.is_object()) fail((d / "config.json").string(), "", "is not a JSON object");
    has_config_ = true;
  }
  for (const char* legacy : {"quant_config.json", "quantize_config.json"}) {
    if (fs::exists(d / legacy, ec)) {
      legacy_files_.push_back(legacy);
      if (quant_config_.is_null()) {
        quant_config_ = read_json_file((d / legacy).string());
        quant_config_source_ = legacy;
      }
    }
  }
  if (has_config_ && config_.contains("quantization_config")) {
    quant_config_ = config_["quantization_config"];
    quant_config_source_ = "config.json";
  }
  if (!quant_config_.is_null() && !quant_config_.is_object())
    fail((d / quant_config_source_).string(), "", "quantization config is not a JSON object");
  if (fs::exists(d / "hf_quant_config.json", ec)) {
    hf_quant_config_ = read_json_file((d / "hf_quant_config.json").string());
    if (!hf_quant_config_.is_object()) fail((d / "hf_quant_config.json").string(), "", "is not a JSON object");
  }
}

void ModelDir::load_index() {
  index_ = read_json_file(index_path_);
  if (!index_.is_object() || !index_.contains("weight_map") || !index_["weight_map"].is_object())
    fail(index_path_, "", "has no \"weight_map\" object");
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [name, shard] : index_["weight_map"].items()) {
    if (!shard.is_string()) fail(index_path_, name, "weight_map value is not a string");
    const std::string s = shard.get<std::string>();
    check_inside(index_path_, s);
    by_shard[s].push_back(name);
  }
  std::vector<std::string> missing;
  std::error_code ec;
  for (const auto& [s, _] : by_shard)
    if (!tensor_file_exists((fs::path(dir_) / s).string())) missing.push_back(s);
  if (!missing.empty()) {
    std::string m;
    for (const auto& s : missing) m += (m.empty() ? "" : ", ") + s;
    fail(index_path_, "", "missing shard file(s): " + m);
  }
  for (const auto& [name, shards] : duplicate_index_keys(index_path_)) {
    std::string list;
    for (const auto& s : shards) list += (list.empty() ? "" : ", then ") + s;
    fail(index_path_, name,
         "listed " + std::to_string(shards.size()) + " times in weight_map (for " + list +
             "); JSON loaders keep the last entry silently, so which copy is meant is unknown. Fix: remove the duplicate entry "
             "(awq check reports it as index-duplicate-key)");
  }
  std::map<std::string, const TensorView*> stored;  // every tensor of every listed shard
  for (const auto& [s, names] : by_shard) {
    shards_.push_back(open_tensor_file((fs::path(dir_) / s).string()));
    const auto& f = *shards_.back();
    for (const auto& t : f.tensors()) {
      auto [it, inserted] = stored.emplace(t.name, &t);
      if (!inserted) refuse_duplicate(index_path_, t, *it->second);
    }
    for (const auto& name : names) {
      const TensorView* t = f.find(name);
      if (!t) fail(index_path_, name, "listed in the index for shard " + s + " but not stored there");
      by_name_.emplace(name, t);
    }
  }
  for (const auto& [_, v] : by_name_) sorted_.push_back(v);
}

const TensorView* ModelDir::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorView& ModelDir::get(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) fail(dir_, name, "missing");
  return *t;
}

std::vector<std::string> ModelDir::auxiliary_files() const {
  static const std::set<std::string> kSkip = {"config.json", "model.safetensors.index.json", "quant_config.json",
                                              "quantize_config.json", "hf_quant_config.json"};
  std::set<std::string> tensor_files;
  for (const auto& s : shards_) tensor_files.insert(fs::path(s->path()).filename().string());
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_regular_file() || n.empty() || n[0] == '.' || kSkip.count(n) || tensor_files.count(n)) continue;
    if (ends_with(n, ".safetensors") || ends_with(n, ".npz") || ends_with(n, ".bin") || ends_with(n, ".pt") ||
        ends_with(n, std::string(".safetensors") + kSealedSuffix))
      continue;
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace awq
