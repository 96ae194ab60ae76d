// GGUF names and metadata for the supported architectures, following llama.cpp's converter
// (conversion/llama.py, qwen.py; gguf-py constants.py MODEL_TENSOR names).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/gguf_arch.h"

namespace awq {

std::string gguf_arch_name(const ModelConfig& c) {
  switch (c.arch) {
    case Architecture::kLlama:
    case Architecture::kMistral: return "llama";
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kQwen3: return "qwen3";
  }
  return "llama";
}

std::vector<GgufTensorName> gguf_tensor_names(const ModelConfig& c) {
  const bool permute = gguf_arch_name(c) == "llama";  // LlamaModel.undo_permute; Qwen uses NEOX rope
  std::vector<GgufTensorName> out;
  out.push_back({c.names.embed, "token_embd.weight"});
  static const char* kLinear[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    out.push_back({ModelConfig::layer_name(c.names.attn_norm, l), b + "attn_norm.weight", l});
    for (LayerLinear w : kAllLayerLinears) {
      const std::string hf = c.linear_name(l, w), g = b + kLinear[int(w)];
      int64_t heads = 0;
      if (permute && w == LayerLinear::kQ) heads = c.heads;
      if (permute && w == LayerLinear::kK) heads = c.kv_heads;
      out.push_back({hf + ".weight", g + ".weight", l, heads});
      if (c.linear_has_bias(w)) out.push_back({hf + ".bias", g + ".bias", l, heads});
    }
    if (c.qk_norm) {
      out.push_back({ModelConfig::layer_name(c.names.q_norm, l), b + "attn_q_norm.weight", l});
      out.push_back({ModelConfig::layer_name(c.names.k_norm, l), b + "attn_k_norm.weight", l});
    }
    out.push_back({ModelConfig::layer_name(c.names.mlp_norm, l), b + "ffn_norm.weight", l});
  }
  out.push_back({c.names.final_norm, "output_norm.weight"});
  if (!c.tied_embeddings) out.push_back({c.names.lm_head, "output.weight"});
  return out;
}

int64_t gguf_permuted_source_row(int64_t r, int64_t rows, int64_t heads) {
  const int64_t hd = rows / heads, h = r / hd, rem = r % hd;
  return h * hd + (rem % 2) * (hd / 2) + rem / 2;
}

namespace {
nlohmann::json config_keys(const GgufFile& f, bool refuse_rope_freqs);
}

nlohmann::json hf_config_from_gguf(const GgufFile& f) { return config_keys(f, true); }

ModelConfig model_config_from_gguf(const GgufFile& f) {
  ModelConfig c = parse_model_config(config_keys(f, false), f.path() + " (GGUF metadata)");
  if (const GgufTensorInfo* rf = f.tensor("rope_freqs.weight")) {
    if (rf->type != GgmlType::F32 || rf->ne != std::vector<int64_t>{c.head_dim / 2})
      fail(f.path(), rf->name, "expected F32 [" + std::to_string(c.head_dim / 2) + "], found " + ggml_type_name(rf->type) + " " + rf->shape_str());
    c.rope_scaling = RopeScaling{};
    c.rope_scaling.type = RopeScaling::Type::kFactors;
    c.rope_scaling.factors.resize(size_t(c.head_dim / 2));
    std::memcpy(c.rope_scaling.factors.data(), rf->data, c.rope_scaling.factors.size() * 4);
    for (float x : c.rope_scaling.factors)
      if (!std::isfinite(x) || x <= 0) fail(f.path(), rf->name, "holds a factor that is not a positive finite number");
  }
  return c;
}

namespace {
nlohmann::json config_keys(const GgufFile& f, bool refuse_rope_freqs) {
  const std::string arch = f.get_string("general.architecture");
  nlohmann::json j;
  if (arch == "llama") j["architectures"] = {"LlamaForCausalLM"};
  else if (arch == "qwen2") j["architectures"] = {"Qwen2ForCausalLM"};
  else if (arch == "qwen3") j["architectures"] = {"Qwen3ForCausalLM"};
  else fail(f.path(), "", "general.architecture '" + arch + "' is not supported (supported: llama, qwen2, qwen3)");
  j["model_type"] = arch;
  const auto k = [&](const char* key) { return arch + "." + key; };
  j["hidden_size"] = f.get_int(k("embedding_length"));
  j["intermediate_size"] = f.get_int(k("feed_forward_length"));
  j["num_hidden_layers"] = f.get_int(k("block_count"));
  j["num_attention_heads"] = f.get_int(k("attention.head_count"));
  j["num_key_value_heads"] = f.find(k("attention.head_count_kv")) ? f.get_int(k("attention.head_count_kv")) : j["num_attention_heads"].get<int64_t>();
  if (f.find(k("context_length"))) j["max_position_embeddings"] = f.get_int(k("context_length"));
  j["rms_norm_eps"] = f.get_float(k("attention.layer_norm_rms_epsilon"));
  j["rope_theta"] = f.find(k("rope.freq_base")) ? f.get_float(k("rope.freq_base")) : 10000.0;
  if (f.find(k("attention.key_length"))) j["head_dim"] = f.get_int(k("attention.key_length"));
  else if (arch == "qwen3")  // llama.cpp's default is n_embd / n_head; Qwen3Config's would be 128
    j["head_dim"] = j["hidden_size"].get<int64_t>() / std::max<int64_t>(1, j["num_attention_heads"].get<int64_t>());
  const GgufTensorInfo* emb = f.tensor("token_embd.weight");
  if (!emb || emb->ne.size() != 2) fail(f.path(), "token_embd.weight", "missing or not 2-D");
  j["vocab_size"] = f.find(k("vocab_size")) ? f.get_int(k("vocab_size")) : emb->ne[1];
  j["tie_word_embeddings"] = f.tensor("output.weight") == nullptr;
  j["hidden_act"] = "silu";
  if (arch == "llama") {
    j["attention_bias"] = f.tensor("blk.0.attn_q.bias") != nullptr;
    j["mlp_bias"] = f.tensor("blk.0.ffn_down.bias") != nullptr;
  }
  if (arch == "qwen3") j["attention_bias"] = f.tensor("blk.0.attn_q.bias") != nullptr;
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"})
    if (f.find(key) && f.find(key)->as_int()) j[std::string(key).substr(15, 3) + "_token_id"] = f.get_int(key);
  if (const GgufTensorInfo* rf = f.tensor("rope_freqs.weight"); rf && refuse_rope_freqs) {
    // llama3 rope scaling travels only as these factors; factor = the largest, the band edges are
    // not recoverable, so the per-frequency factors are the truth: refuse to guess.
    fail(f.path(), "rope_freqs.weight", "per-frequency rope factors (Llama 3.1 rope scaling) cannot be turned back into a config.json; "
                                        "not supported for read-back yet");
  }
  return j;
}
}  // namespace

}  // namespace awq
