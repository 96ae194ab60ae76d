// How llama.cpp names and lays out each supported architecture in GGUF (its convert_hf_to_gguf.py
// and gguf-py's tensor map), derived from ModelConfig's Hugging Face names: the one place GGUF
// export and GGUF read-back ask. See docs/GGUF.md.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "awq/model_config.h"

namespace awq {

class GgufFile;

// One tensor of the model under both names. permute_heads > 0: rows are permuted as llama.cpp's
// converter does for Llama-family rope (LlamaModel.permute with that many heads).
struct GgufTensorName {
  std::string hf, gguf;
  int64_t layer = -1;  // -1 for model-level tensors
  int64_t permute_heads = 0;
};

// "llama" (Llama, and Mistral as llama.cpp writes it), "qwen2", "qwen3".
std::string gguf_arch_name(const ModelConfig& c);
// Every tensor a checkpoint of this config holds (biases and norms included; lm_head only when
// untied), in the order llama.cpp's converter writes them.
std::vector<GgufTensorName> gguf_tensor_names(const ModelConfig& c);

// Row r of a permuted tensor (GGUF order) comes from row gguf_permuted_source_row(r) of the HF
// tensor: LlamaModel.permute = reshape(heads, 2, rows/heads/2, ...).swapaxes(1, 2).
int64_t gguf_permuted_source_row(int64_t r, int64_t rows, int64_t heads);

// A config.json (transformers' keys) rebuilt from a GGUF file's metadata, for llama / qwen2 /
// qwen3 files; awq::Error naming the file and key when the metadata is incomplete or another
// architecture. rope_freqs.weight is read back into llama3 rope_scaling when present.
nlohmann::json hf_config_from_gguf(const GgufFile& f);

// The ModelConfig of a GGUF file, for the runtime: hf_config_from_gguf's keys through
// parse_model_config, and rope_freqs.weight (F32 [head_dim/2], positive finite factors) as
// RopeScaling::kFactors. awq::Error naming the file and key or tensor otherwise.
ModelConfig model_config_from_gguf(const GgufFile& f);

}  // namespace awq
