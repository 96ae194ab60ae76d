// File-level checks (docs/formats.md §2): each safetensors file parses and says format "pt"; the shard
// index names files that exist, lists every stored tensor exactly once, and has the right total_size.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "awq/error.h"
#include "awq/model_dir.h"
#include "awq/safetensors.h"
#include "check/check_internal.h"

namespace fs = std::filesystem;

namespace awq::check_detail {
namespace {

std::string join(const std::vector<std::string>& v, size_t max_shown = 5) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max_shown; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max_shown) s += " and " + std::to_string(v.size() - max_shown) + " more";
  return s;
}

void check_metadata(const Ctx& c, const SafetensorsFile& f, const std::string& fname) {
  const auto& md = f.metadata();
  auto it = md.find("format");
  if (it != md.end() && it->second == "pt") return;
  const std::string found = !f.has_metadata() ? "has no __metadata__"
                            : it == md.end()  ? "has __metadata__ without a \"format\" key"
                                              : "has __metadata__ format \"" + it->second + "\"";
  c.error("safetensors-format-metadata", fname,
          found + "; transformers refuses files whose metadata format is not \"pt\" (\"does not contain the valid "
                  "metadata\"). Fix: awq repair MODEL -o OUT adds {\"format\": \"pt\"}");
}

// Stored tensors per file, for the index checks.
using Stored = std::map<std::string, std::vector<std::string>>;  // tensor -> files holding it

void check_index(const Ctx& c, const std::string& index_path, const std::map<std::string, std::unique_ptr<SafetensorsFile>>& files) {
  nlohmann::json idx;
  try {
    idx = read_json_file(index_path);
  } catch (const Error& e) {
    c.error("index-invalid", "model.safetensors.index.json", e.what());
    return;
  }
  if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object()) {
    c.error("index-invalid", "model.safetensors.index.json", "has no \"weight_map\" object; loaders cannot find any tensor");
    return;
  }
  for (const auto& [name, shards] : duplicate_index_keys(index_path))  // the same scan ModelDir refuses on
    c.error("index-duplicate-key", name,
            "listed " + std::to_string(shards.size()) + " times in model.safetensors.index.json's weight_map (for " + join(shards) +
                "); JSON loaders keep the last entry silently, and awq dequantize/convert refuse the checkpoint. "
                "Fix: remove the duplicate entry (awq repair MODEL -o OUT rewrites the index)");
  std::map<std::string, std::vector<std::string>> by_shard;  // listed shard -> tensors
  for (const auto& [name, shard] : idx["weight_map"].items()) {
    if (!shard.is_string()) {
      c.error("index-invalid", name, "weight_map value is " + shard.dump() + ", not a file name");
      continue;
    }
    by_shard[shard.get<std::string>()].push_back(name);
  }
  Stored stored;
  for (const auto& [fname, f] : files)
    if (by_shard.count(fname))
      for (const auto& t : f->tensors()) stored[t.name].push_back(fname);

  for (const auto& [shard, names] : by_shard) {
    auto fit = files.find(shard);
    if (fit == files.end()) {
      std::error_code ec;
      if (!fs::exists(fs::path(c.path) / shard, ec))
        c.error("index-missing-shard", shard,
                "named by model.safetensors.index.json for " + std::to_string(names.size()) + " tensor(s) (e.g. " + names[0] +
                    ") but the file does not exist; every loader fails. Fix: download the missing shard");
      continue;
    }
    std::vector<std::string> elsewhere, nowhere;
    for (const auto& n : names) {
      if (fit->second->find(n)) continue;
      (stored.count(n) ? elsewhere : nowhere).push_back(n);
    }
    if (!nowhere.empty())
      c.error("index-tensor-missing", nowhere[0],
              std::to_string(nowhere.size()) + " tensor(s) listed for " + shard + " are stored in no shard (" + join(nowhere) +
                  "); loaders fail with a missing key. Fix: re-export the checkpoint");
    if (!elsewhere.empty())
      c.error("index-wrong-shard", elsewhere[0],
              std::to_string(elsewhere.size()) + " tensor(s) listed for " + shard + " are stored in another shard (" + join(elsewhere) +
                  "). Fix: awq repair MODEL -o OUT rewrites the index");
  }
  std::vector<std::string> unlisted;
  uint64_t listed_bytes = 0;
  std::set<std::string> counted;
  for (const auto& [name, holders] : stored) {
    if (holders.size() > 1)
      c.error("tensor-duplicate", name, "stored in " + std::to_string(holders.size()) + " shards (" + join(holders) +
                                            "); safetensors loaders refuse or pick one arbitrarily. Fix: re-export the checkpoint");
    if (!idx["weight_map"].contains(name)) unlisted.push_back(name);
  }
  if (!unlisted.empty())
    c.error("index-tensor-unlisted", unlisted[0],
            std::to_string(unlisted.size()) + " stored tensor(s) are in no weight_map entry (" + join(unlisted) +
                "); loaders never see them. Fix: awq repair MODEL -o OUT rewrites the index");
  for (const auto& [name, shard] : idx["weight_map"].items()) {
    if (!shard.is_string()) continue;
    auto fit = files.find(shard.get<std::string>());
    if (fit == files.end()) return;  // cannot total a shard that is missing or unreadable
    if (const TensorView* t = fit->second->find(name)) listed_bytes += t->nbytes;
  }
  const auto& md = idx.contains("metadata") ? idx["metadata"] : nlohmann::json();
  if (!md.is_object() || !md.contains("total_size")) return;
  const auto& ts = md["total_size"];
  if (!ts.is_number_integer() || ts.get<int64_t>() < 0 || uint64_t(ts.get<int64_t>()) != listed_bytes)
    c.error("index-total-size", "model.safetensors.index.json",
            "metadata.total_size is " + ts.dump() + " but the listed tensors hold " + std::to_string(listed_bytes) +
                " bytes; loaders that pre-allocate from it (and hub tooling) disagree. Fix: awq repair MODEL -o OUT rewrites the index");
}

// *.safetensors files beside the loaded ones are not checked; what vLLM's default loader does with
// them (vllm/model_executor/model_loader/default_loader.py, DefaultModelLoader._prepare_weights,
// and weight_utils.py filter_duplicate_safetensors_files; read in vLLM 0.20.0 and 0.34.0, the
// consolidated switch also present in 0.23.0, 0.24.0, 0.25.0, 0.27.0, 0.31.0): with
// --load-format auto, any consolidated*.safetensors switches it to Mistral's format, which loads
// only those files; otherwise it globs every *.safetensors and drops those an index does not name
// (without an index it loads them all). So a stray file is a warning where vLLM would load it, a
// note where every loader ignores it.
void report_ignored(const Ctx& c, const std::vector<std::string>& present, const std::vector<std::string>& loaded, bool has_index) {
  std::vector<std::string> mistral, other;
  for (const auto& n : present)
    if (std::find(loaded.begin(), loaded.end(), n) == loaded.end()) (starts_with(n, "consolidated") ? mistral : other).push_back(n);
  const std::string what = has_index ? "the shards model.safetensors.index.json names" : "model.safetensors";
  if (!mistral.empty())
    c.warn("tensor-file-vllm-loads", mistral[0],
           std::to_string(mistral.size()) + " consolidated*.safetensors file(s) (" + join(mistral) + ") beside " + what +
               ": transformers and awq ignore them (not checked here), but vLLM 0.20 to 0.34 (--load-format auto) "
               "then takes the directory for Mistral's own format and loads only these files instead of " + what +
               ". Fix: move them out of the model directory, or run vLLM with --load-format safetensors");
  if (!other.empty() && !has_index)
    c.warn("tensor-file-vllm-loads", other[0],
           std::to_string(other.size()) + " *.safetensors file(s) (" + join(other) + ") beside model.safetensors: transformers "
               "and awq load only model.safetensors (these were not checked), but vLLM without an index loads every *.safetensors "
               "in the directory, these too. Fix: move them out of the model directory if they are not part of this model");
  else if (!other.empty())
    c.note("tensor-file-ignored", other[0],
           std::to_string(other.size()) + " *.safetensors file(s) (" + join(other) + ") are not named by "
               "model.safetensors.index.json: transformers, vLLM and awq load only the indexed shards, so they were not checked");
}

// The tensor files loaders read, as ModelDir chooses them: the index's shards when there is an
// index, else model.safetensors, else every *.safetensors. Other *.safetensors beside them (e.g.
// Mistral's consolidated.safetensors) are ignored by transformers and by us; see
// report_ignored for vLLM.
std::vector<std::string> loaded_files(const std::vector<std::string>& present, bool has_index, const fs::path& index) {
  if (has_index) {
    std::set<std::string> listed;
    try {
      const nlohmann::json idx = read_json_file(index.string());
      if (idx.is_object() && idx.contains("weight_map") && idx["weight_map"].is_object())
        for (const auto& [_, shard] : idx["weight_map"].items())
          if (shard.is_string()) listed.insert(shard.get<std::string>());
    } catch (const Error&) {
      return present;  // check_index reports the unreadable index; check every file meanwhile
    }
    std::vector<std::string> out;
    for (const auto& n : present)
      if (listed.count(n)) out.push_back(n);
    return out;
  }
  if (std::find(present.begin(), present.end(), "model.safetensors") != present.end()) return {"model.safetensors"};
  return present;
}

}  // namespace

void check_files(const Ctx& c) {
  std::error_code ec;
  std::vector<std::string> names;
  bool npz = false;
  const bool single_file = fs::is_regular_file(c.path, ec);
  if (single_file) {
    names.push_back(fs::path(c.path).filename().string());
  } else {
    for (const auto& e : fs::directory_iterator(c.path, ec)) {
      const std::string n = e.path().filename().string();
      if (!e.is_regular_file() || n.empty() || n[0] == '.') continue;
      if (ends_with(n, ".safetensors")) names.push_back(n);
      if (ends_with(n, ".npz")) npz = true;
    }
  }
  const fs::path index = fs::path(c.path) / "model.safetensors.index.json";
  const bool has_index = !single_file && fs::exists(index, ec);
  if (names.empty() && !npz && !has_index)
    throw Error(c.path + ": no *.safetensors, model.safetensors.index.json or *.npz here; nothing to check");
  std::sort(names.begin(), names.end());
  const std::vector<std::string> loaded = single_file ? names : loaded_files(names, has_index, index);
  report_ignored(c, names, loaded, has_index);
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;
  for (const auto& n : loaded) {
    const std::string full = single_file ? c.path : (fs::path(c.path) / n).string();
    try {
      files[n] = std::make_unique<SafetensorsFile>(full);
    } catch (const Error& e) {
      c.error("safetensors-invalid", n, std::string(e.what()) + "; no loader can read this file. Fix: download it again");
      continue;
    }
    check_metadata(c, *files[n], n);
  }
  if (has_index) {
    check_index(c, index.string(), files);
    return;
  }
  if (files.count("model.safetensors") || files.size() < 2) return;
  Stored stored;  // unindexed multi-file checkpoint: every tensor once
  for (const auto& [fname, f] : files)
    for (const auto& t : f->tensors()) stored[t.name].push_back(fname);
  for (const auto& [name, holders] : stored)
    if (holders.size() > 1)
      c.error("tensor-duplicate", name, "stored in " + std::to_string(holders.size()) + " files (" + join(holders) + ")");
}

}  // namespace awq::check_detail
