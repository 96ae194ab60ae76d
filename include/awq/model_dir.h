// A Hugging Face model directory (or a TensorRT-LLM <= 0.7 .npz checkpoint): configs and every
// tensor across shards, validated. Tensor data stays in the mmap'd files.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "awq/safetensors.h"

namespace awq {

class NpzFile;

class ModelDir {
 public:
  // Opens `path`: a directory with config.json and model.safetensors, a sharded
  // model.safetensors.index.json, other *.safetensors files, or *.npz (TRT-LLM <= 0.7);
  // or a path straight to a .safetensors / .npz file. Throws awq::Error on any inconsistency.
  explicit ModelDir(const std::string& path);
  ~ModelDir();

  const std::string& path() const { return dir_; }
  const nlohmann::json& config() const { return config_; }  // {} when there is no config.json
  bool has_config() const { return has_config_; }
  // The quantization config as loaders resolve it: config.json's quantization_config, else the
  // legacy quant_config.json / quantize_config.json. Null when there is none.
  const nlohmann::json& quant_config() const { return quant_config_; }
  const std::string& quant_config_source() const { return quant_config_source_; }
  // Legacy config files present (whether or not config.json also has quantization_config).
  const std::vector<std::string>& legacy_quant_files() const { return legacy_files_; }
  const nlohmann::json& hf_quant_config() const { return hf_quant_config_; }  // ModelOpt; null if absent

  bool sharded() const { return !index_path_.empty(); }
  const nlohmann::json& index() const { return index_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }
  bool is_npz() const { return !npz_.empty(); }
  const std::vector<std::unique_ptr<NpzFile>>& npz_files() const { return npz_; }

  const TensorView* find(const std::string& name) const;
  const TensorView& get(const std::string& name) const;  // throws naming the tensor
  const std::vector<const TensorView*>& tensors() const { return sorted_; }  // by name
  // Files in the directory that are neither tensors nor configs we rewrite (tokenizer, ...).
  std::vector<std::string> auxiliary_files() const;

 private:
  void load_configs();
  void load_index();
  void add_tensors(const std::vector<TensorView>& views, const std::string& file);
  std::string dir_, index_path_;
  nlohmann::json config_ = nlohmann::json::object(), quant_config_, hf_quant_config_, index_;
  bool has_config_ = false;
  std::string quant_config_source_;
  std::vector<std::string> legacy_files_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<std::unique_ptr<NpzFile>> npz_;
  std::map<std::string, const TensorView*> by_name_;
  std::vector<const TensorView*> sorted_;
};

// Tensor names listed more than once in an index file's "weight_map" (JSON parsers keep the last
// silently), each with every shard it was listed for, in file order. Empty when there is none.
// Throws awq::Error naming the file when it is not valid JSON.
std::vector<std::pair<std::string, std::vector<std::string>>> duplicate_index_keys(const std::string& index_file);

// Reads and parses a JSON file; awq::Error naming the file on failure.
nlohmann::json read_json_file(const std::string& path);

}  // namespace awq
