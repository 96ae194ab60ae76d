// `awq repair`: fixes what `awq check` can fix without changing any quantized value, into a new
// directory (the input is never edited):
//   - tied embeddings: restore model.embed_tokens.weight from a lone lm_head.weight (the AutoAWQ
//     0.2.7 bug), or drop an lm_head.weight byte-equal to the embedding when tie_word_embeddings
//     is true (a different one is kept: it may be a trained head under a wrong tie flag);
//   - {"format": "pt"} safetensors metadata on every file;
//   - quantization_config: moved into config.json (from legacy quant_config.json /
//     quantize_config.json or text_config), AWQ keys normalised (bits, group_size, zero_point,
//     lower-case version matching the tensors, quant_method), or written from the tensors when absent;
//   - model.safetensors.index.json rebuilt from what the shards really hold.
// Tensor bytes are copied unchanged; the shard layout is kept; files whose content needs no change
// (config.json, the index, legacy configs not moved) keep their bytes. Memory O(one tensor).
#pragma once
#include <string>
#include <vector>

namespace awq {

struct RepairOptions {
  std::string out_dir;
  bool force = false;     // replace a non-empty out_dir once the new one is complete
  bool progress = true;
};

struct RepairResult {
  // One sentence per change made: each names a file that the output holds with bytes different
  // from the input's (checked after writing). Empty when the copy is byte-identical.
  std::vector<std::string> changes;
  std::vector<std::string> remarks;  // what was looked at and deliberately left as it was
};

// Throws awq::Error when the input cannot be repaired (a shard missing, a tensor in two files,
// nothing readable) and leaves out_dir untouched.
RepairResult repair_model(const std::string& model, const RepairOptions& opt);

}  // namespace awq
