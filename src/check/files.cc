// File-level checks (FORMATS.md §8): each safetensors file parses and says format "pt"; the shard
// index names files that exist, lists every stored tensor exactly once, and has the right total_size.
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

}  // namespace

void check_files(const Ctx& c) {
  std::error_code ec;
  std::vector<std::string> names;
  bool npz = false;
  if (fs::is_regular_file(c.path, ec)) {
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
  const bool has_index = fs::exists(index, ec);
  if (names.empty() && !npz && !has_index)
    throw Error(c.path + ": no *.safetensors, model.safetensors.index.json or *.npz here; nothing to check");
  std::sort(names.begin(), names.end());
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;
  for (const auto& n : names) {
    const std::string full = fs::is_regular_file(c.path, ec) ? c.path : (fs::path(c.path) / n).string();
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
