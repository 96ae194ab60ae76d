// config.json -> ModelConfig: the one place that knows each supported decoder architecture, its
// hyper-parameters and its tensor names (check, the runtime and exporters all ask it).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace awq {

enum class Architecture : uint8_t { kLlama, kMistral, kQwen2, kQwen3 };

// RoPE frequency scaling. kNone: inv_freq[i] = theta^(−2i/head_dim). kLlama3: Llama 3.1's
// piecewise rescaling of long wavelengths (transformers' _compute_llama3_parameters). kFactors:
// inv_freq[i] / factors[i], the per-frequency factors a GGUF file stores as rope_freqs.weight
// (llama.cpp divides each frequency by its factor; its converter computes them from the llama3
// parameters, which cannot be recovered from them).
struct RopeScaling {
  enum class Type : uint8_t { kNone, kLlama3, kFactors } type = Type::kNone;
  std::vector<float> factors;  // kFactors: head_dim / 2 values
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int64_t original_max_positions = 8192;
};

// The linear layers of one decoder layer, in the order the runtime fuses them (q, k, v; gate, up).
enum class LayerLinear : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr LayerLinear kAllLayerLinears[] = {LayerLinear::kQ,    LayerLinear::kK,  LayerLinear::kV,   LayerLinear::kO,
                                                   LayerLinear::kGate, LayerLinear::kUp, LayerLinear::kDown};

// Where each tensor lives in a Hugging Face checkpoint of this architecture. "{}" in a per-layer
// name is replaced by the layer index.
struct TensorNames {
  std::string embed, final_norm, lm_head;
  std::string attn_norm, mlp_norm, q_norm, k_norm;  // q_norm/k_norm empty unless the arch has them
  std::string linear[7];                            // module names, indexed by LayerLinear
};

struct ModelConfig {
  std::string architecture;  // as config.json names it, e.g. "LlamaForCausalLM"
  Architecture arch = Architecture::kLlama;
  int64_t hidden = 0, intermediate = 0, layers = 0;
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  int64_t vocab = 0, max_positions = 0;
  double rms_eps = 1e-6, rope_theta = 10000;
  RopeScaling rope_scaling;
  int64_t sliding_window = 0;  // 0: none (Mistral's when set)
  bool tied_embeddings = false;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  bool qk_norm = false;  // Qwen3: RMSNorm over head_dim on q and k before RoPE
  TensorNames names;

  // Module name of one linear of layer `layer`, e.g. "model.layers.3.self_attn.q_proj".
  std::string linear_name(int64_t layer, LayerLinear which) const;
  // Per-layer tensor name (a TensorNames member with "{}") for layer `layer`.
  static std::string layer_name(const std::string& pattern, int64_t layer);
  // (out, in) features of one linear.
  std::pair<int64_t, int64_t> linear_shape(LayerLinear which) const;
  bool linear_has_bias(LayerLinear which) const;
};

// Parses config.json (already read; `file` names it in errors). Unknown architectures, activations
// other than SiLU, unsupported rope scaling, missing or inconsistent keys: awq::Error naming the
// file and the key or architecture.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& file);

// RoPE inverse frequencies, head_dim/2 values, as transformers computes them in f32:
// 1/theta^(2i/head_dim), then, for llama3 scaling, _compute_llama3_parameters' rescaling.
std::vector<float> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling);

// Architectures parse_model_config accepts, as config.json names them.
std::vector<std::string> supported_architectures();

// Tensor names of a supported architecture (as config.json names it); nullopt for any other.
std::optional<TensorNames> architecture_tensor_names(const std::string& architecture);

// The decoder dimensions of any config.json, for the tools that describe or check checkpoints of
// every architecture, also those the runtime refuses (check, inspect). When parse_model_config
// accepts the config they are its values and `model` holds it. Otherwise (MoE, multimodal, an
// unsupported rope scaling or activation, a value of the wrong JSON type, no architectures key...)
// the same keys and defaults are read leniently, also inside "text_config" (multimodal configs):
// -1 where a value is absent or not an integer, head_dim floor(hidden / heads) as transformers
// derives it, and `model_error` says why parse_model_config refused. Never throws.
struct DecoderDims {
  int64_t hidden = -1, intermediate = -1, layers = -1, heads = -1, kv_heads = -1, head_dim = -1, vocab = -1;
  int64_t moe_intermediate = -1;  // moe_intermediate_size (experts' MLP width), else -1
  std::string experts_key;        // num_local_experts | num_experts | n_routed_experts, the first > 0
  int64_t experts = 0;            // its value; 0: not a mixture of experts
  std::optional<ModelConfig> model;
  std::string model_error;
};
DecoderDims decoder_dims(const nlohmann::json& config, const std::string& file);

}  // namespace awq
