#include "convert/shard_writer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "awq/error.h"

namespace fs = std::filesystem;

namespace awq::convert_detail {

OutTensor copy_of(const TensorView& t, const std::string& out_name) {
  const TensorView* src = &t;
  return {{out_name, t.dtype, t.shape}, [src](SafetensorsWriter& w) { w.append(src->data, src->nbytes); }};
}

std::string shard_file_name(size_t i, size_t n) {
  char b[64];
  std::snprintf(b, sizeof b, "model-%05zu-of-%05zu.safetensors", i, n);
  return b;
}

void write_tensor_file(const std::string& path, const std::vector<OutTensor>& tensors,
                       const std::map<std::string, std::string>& metadata, Progress* bar) {
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back(t.spec);
  SafetensorsWriter w(path, specs, metadata);
  for (const auto& t : tensors) {
    t.write(w);
    if (bar) bar->advance(t.spec.nbytes());
  }
  w.commit();
}

ShardedResult write_sharded(const OutputDir& out, const std::vector<OutTensor>& tensors, uint64_t max_shard_bytes,
                            Progress* bar, const std::map<std::string, std::string>& metadata) {
  std::set<std::string> names;
  for (const auto& t : tensors)
    if (!names.insert(t.spec.name).second) fail(user_visible_path(out.tmp().string()), t.spec.name, "would be written twice");
  std::vector<std::vector<size_t>> shards(1);
  uint64_t cur = 0, total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t b = tensors[i].spec.nbytes();
    if (!shards.back().empty() && cur + b > max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += b;
    total += b;
  }
  std::vector<std::pair<std::string, std::string>> weight_map;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string fname = shards.size() == 1 ? "model.safetensors" : shard_file_name(s + 1, shards.size());
    std::vector<OutTensor> part;
    for (size_t i : shards[s]) {
      part.push_back(tensors[i]);
      weight_map.emplace_back(tensors[i].spec.name, fname);
    }
    write_tensor_file(out.file(fname), part, metadata, bar);
  }
  if (shards.size() > 1) write_index(out, weight_map, total);
  return {shards.size(), tensors.size(), total};
}

ShardedResult write_plan(const OutputDir& out, const std::vector<OutTensor>& plan, ResourceNeeds needs, const std::string& verb,
                         uint64_t max_shard_bytes, bool progress) {
  needs.output_bytes = 0;
  for (const auto& o : plan) needs.output_bytes += o.spec.nbytes();
  check_resources(needs);
  Progress bar(verb, needs.output_bytes, progress);
  const ShardedResult sr = write_sharded(out, plan, max_shard_bytes, &bar);
  bar.finish();
  return sr;
}

void write_index(const OutputDir& out, const std::vector<std::pair<std::string, std::string>>& weight_map, uint64_t total_size) {
  nlohmann::ordered_json idx;
  idx["metadata"] = {{"total_size", total_size}};
  idx["weight_map"] = nlohmann::ordered_json::object();
  for (const auto& [name, file] : weight_map) idx["weight_map"][name] = file;
  write_file_atomic(out.file("model.safetensors.index.json"), idx.dump(2) + "\n");
}

void copy_auxiliary(const std::string& model_dir, const std::vector<std::string>& files, const OutputDir& out,
                    const std::vector<std::string>& skip) {
  for (const auto& f : files)
    if (std::find(skip.begin(), skip.end(), f) == skip.end()) copy_file_atomic((fs::path(model_dir) / f).string(), out.file(f));
}

}  // namespace awq::convert_detail
