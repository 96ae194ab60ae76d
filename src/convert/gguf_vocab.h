// The tokenizer as GGUF metadata (tokenizer.ggml.*), from a model directory's tokenizer.json and
// tokenizer_config.json, as llama.cpp's convert_hf_to_gguf.py writes it (internal to convert).
#pragma once
#include <string>

#include "awq/gguf.h"
#include "awq/model_config.h"

namespace awq::convert_detail {

struct VocabSummary {
  bool written = false;   // false: the directory has no tokenizer.json (nothing written)
  std::string model, pre;  // "gpt2" / "llama"; "llama-bpe", "qwen2", "gpt-2", "default"
  size_t tokens = 0, merges = 0;
  int64_t bos = -1, eos = -1;
  bool add_bos = false;
};

// Adds tokenizer.ggml.{model,pre,tokens,token_type,[scores],[merges],*_token_id,add_bos_token,...}
// and tokenizer.chat_template. Byte-level BPE -> "gpt2" (get_vocab_base + SpecialVocab); BPE with
// byte_fallback -> "llama" (LlamaHfVocab, scores -1000). A pre-tokenizer regex llama.cpp does not
// know, or another tokenizer model, is an awq::Error naming the file. `vocab_size` pads the token
// list with "[PAD<i>]" (UNUSED) as the converter does.
VocabSummary add_gguf_vocab(const std::string& model_dir, const nlohmann::json& config, int64_t vocab_size, GgufWriter& w);

}  // namespace awq::convert_detail
