// Streamed, sharded safetensors output shared by dequantize, repair and convert (internal).
// Each output tensor is a spec plus a producer that appends exactly spec.nbytes() bytes, so
// working memory stays O(one tensor) beyond the mmap'd input.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "awq/fsutil.h"
#include "awq/progress.h"
#include "awq/resources.h"
#include "awq/safetensors.h"

namespace awq::convert_detail {

struct OutTensor {
  TensorSpec spec;
  std::function<void(SafetensorsWriter&)> write;  // appends exactly spec.nbytes() bytes
};

// A producer that copies a stored tensor's bytes unchanged.
OutTensor copy_of(const TensorView& t, const std::string& out_name);

// "model-00001-of-00003.safetensors".
std::string shard_file_name(size_t i, size_t n);

// Writes `tensors` in order into one safetensors file at `path` (atomic: temp + fsync + rename).
void write_tensor_file(const std::string& path, const std::vector<OutTensor>& tensors,
                       const std::map<std::string, std::string>& metadata, Progress* bar);

struct ShardedResult {
  size_t shards = 0, tensors = 0;
  uint64_t bytes = 0;
};

// Greedy sharding in the given order (a tensor larger than the limit gets a shard of its own):
// one file is "model.safetensors"; several are model-i-of-n plus model.safetensors.index.json
// with total_size. Tensor names must be unique (checked).
ShardedResult write_sharded(const OutputDir& out, const std::vector<OutTensor>& tensors, uint64_t max_shard_bytes,
                            Progress* bar, const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// The tail every checkpoint writer shares: `needs` completed with the plan's total bytes and
// checked (check_resources: what memory or disk cannot hold is refused before anything is
// written), then `plan` written in its order by write_sharded under a progress bar named `verb`.
ShardedResult write_plan(const OutputDir& out, const std::vector<OutTensor>& plan, ResourceNeeds needs, const std::string& verb,
                         uint64_t max_shard_bytes, bool progress);

// Writes model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {...}}.
void write_index(const OutputDir& out, const std::vector<std::pair<std::string, std::string>>& weight_map, uint64_t total_size);

// Copies the model directory's auxiliary files (tokenizer, generation config, ...) into out.
// Files named in `skip` are left out (quantize leaves out the dense model's README.md model card).
void copy_auxiliary(const std::string& model_dir, const std::vector<std::string>& files, const OutputDir& out,
                    const std::vector<std::string>& skip = {});

}  // namespace awq::convert_detail
