// config.json -> ModelConfig. Defaults follow transformers 4.51's configuration classes
// (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config) for keys a config.json may omit.
#include "awq/model_config.h"

#include <cmath>
#include <numbers>

#include "awq/error.h"

namespace awq {
namespace {

struct ArchInfo {
  const char* name;
  Architecture arch;
};
constexpr ArchInfo kArchs[] = {{"LlamaForCausalLM", Architecture::kLlama},
                               {"MistralForCausalLM", Architecture::kMistral},
                               {"Qwen2ForCausalLM", Architecture::kQwen2},
                               {"Qwen3ForCausalLM", Architecture::kQwen3}};

// All four share Hugging Face's Llama naming; Qwen3 adds per-head q/k norms.
TensorNames names_for(Architecture a) {
  TensorNames n;
  n.embed = "model.embed_tokens.weight";
  n.final_norm = "model.norm.weight";
  n.lm_head = "lm_head.weight";
  n.attn_norm = "model.layers.{}.input_layernorm.weight";
  n.mlp_norm = "model.layers.{}.post_attention_layernorm.weight";
  if (a == Architecture::kQwen3) {
    n.q_norm = "model.layers.{}.self_attn.q_norm.weight";
    n.k_norm = "model.layers.{}.self_attn.k_norm.weight";
  }
  const char* mods[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                         "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  for (int i = 0; i < 7; ++i) n.linear[i] = std::string("model.layers.{}.") + mods[i];
  return n;
}

class Reader {
 public:
  Reader(const nlohmann::json& j, const std::string& file) : j_(j), file_(file) {}
  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    throw Error(file_ + ": " + key + ": " + what);
  }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  int64_t integer(const char* key, int64_t min_value) const {
    if (!has(key)) bad(key, "missing (an integer is required)");
    return checked_int(key, j_[key], min_value);
  }
  int64_t integer_or(const char* key, int64_t def, int64_t min_value) const {
    return has(key) ? checked_int(key, j_[key], min_value) : def;
  }
  double positive_or(const char* key, double def) const {
    if (!has(key)) return def;
    if (!j_[key].is_number()) bad(key, "expected a number, found " + j_[key].dump());
    const double v = j_[key].get<double>();
    if (!(v > 0) || !std::isfinite(v)) bad(key, "expected a positive finite number, found " + j_[key].dump());
    return v;
  }
  bool boolean_or(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!j_[key].is_boolean()) bad(key, "expected true or false, found " + j_[key].dump());
    return j_[key].get<bool>();
  }
  const nlohmann::json& at(const char* key) const { return j_[key]; }

 private:
  int64_t checked_int(const std::string& key, const nlohmann::json& v, int64_t min_value) const {
    if (!v.is_number_integer()) bad(key, "expected an integer, found " + v.dump());
    const int64_t i = v.get<int64_t>();
    if (i < min_value || i > (int64_t(1) << 40)) bad(key, "value " + v.dump() + " is out of range");
    return i;
  }
  const nlohmann::json& j_;
  const std::string& file_;
};

// head_dim when config.json omits it, as transformers' configuration classes default it: fixed
// for Qwen3 (Qwen3Config head_dim=128) and Gemma 1-3 (256); 0 for the others, whose default is
// hidden_size // num_attention_heads (LlamaConfig, MistralConfig, Qwen2's attention).
int64_t fixed_head_dim(const std::string& architecture) {
  if (architecture == "Qwen3ForCausalLM") return 128;
  if (architecture == "GemmaForCausalLM" || architecture == "Gemma2ForCausalLM" || architecture == "Gemma3ForCausalLM") return 256;
  return 0;
}

Architecture parse_architecture(const nlohmann::json& j, const std::string& file, std::string* name) {
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].size() != 1 ||
      !j["architectures"][0].is_string())
    throw Error(file + ": architectures: expected a list of one architecture name, found " +
                (j.contains("architectures") ? j["architectures"].dump() : std::string("nothing")));
  *name = j["architectures"][0].get<std::string>();
  for (const auto& a : kArchs)
    if (*name == a.name) return a.arch;
  std::string known;
  for (const auto& a : kArchs) known += (known.empty() ? "" : ", ") + std::string(a.name);
  throw Error(file + ": architecture " + *name + " is not supported (supported: " + known + ")");
}

RopeScaling parse_rope_scaling(const Reader& r, const std::string& file) {
  RopeScaling s;
  if (!r.has("rope_scaling")) return s;
  const auto& rs = r.at("rope_scaling");
  if (!rs.is_object()) r.bad("rope_scaling", "expected an object or null, found " + rs.dump());
  std::string type;
  for (const char* k : {"rope_type", "type"})
    if (rs.contains(k) && rs[k].is_string()) {
      type = rs[k].get<std::string>();
      break;
    }
  if (type == "default") return s;
  if (type != "llama3")
    r.bad("rope_scaling", "rope type '" + type + "' is not supported (supported: default, llama3)");
  const Reader sr(rs, file + ": rope_scaling");
  s.type = RopeScaling::Type::kLlama3;
  s.factor = sr.positive_or("factor", 8);
  s.low_freq_factor = sr.positive_or("low_freq_factor", 1);
  s.high_freq_factor = sr.positive_or("high_freq_factor", 4);
  s.original_max_positions = sr.integer_or("original_max_position_embeddings", 8192, 1);
  if (!(s.high_freq_factor > s.low_freq_factor))
    r.bad("rope_scaling", "high_freq_factor must exceed low_freq_factor");
  return s;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> out;
  for (const auto& a : kArchs) out.push_back(a.name);
  return out;
}

std::optional<TensorNames> architecture_tensor_names(const std::string& architecture) {
  for (const auto& a : kArchs)
    if (architecture == a.name) return names_for(a.arch);
  return std::nullopt;
}

ModelConfig parse_model_config(const nlohmann::json& j, const std::string& file) {
  if (!j.is_object()) throw Error(file + ": expected a JSON object");
  ModelConfig c;
  c.arch = parse_architecture(j, file, &c.architecture);
  const Reader r(j, file);
  if (r.has("hidden_act") && j["hidden_act"] != "silu")
    r.bad("hidden_act", "only silu is supported, found " + j["hidden_act"].dump());
  c.hidden = r.integer("hidden_size", 1);
  c.intermediate = r.integer("intermediate_size", 1);
  c.layers = r.integer("num_hidden_layers", 1);
  c.heads = r.integer("num_attention_heads", 1);
  c.kv_heads = r.integer_or("num_key_value_heads", c.heads, 1);
  c.vocab = r.integer("vocab_size", 1);
  c.max_positions = r.integer_or("max_position_embeddings", 2048, 1);
  if (c.heads % c.kv_heads != 0)
    r.bad("num_key_value_heads", std::to_string(c.kv_heads) + " does not divide num_attention_heads " +
                                     std::to_string(c.heads));
  if (r.has("head_dim")) {
    c.head_dim = r.integer("head_dim", 2);
  } else if (const int64_t fixed = fixed_head_dim(c.architecture)) {
    c.head_dim = fixed;
  } else {
    if (c.hidden % c.heads != 0)
      r.bad("hidden_size", std::to_string(c.hidden) + " is not a multiple of num_attention_heads and no head_dim is given");
    c.head_dim = c.hidden / c.heads;
  }
  if (c.head_dim % 2 != 0) r.bad("head_dim", "must be even for rotary embeddings, found " + std::to_string(c.head_dim));
  c.rms_eps = r.positive_or("rms_norm_eps", 1e-6);
  c.rope_theta = r.positive_or("rope_theta", 10000);
  c.rope_scaling = parse_rope_scaling(r, file);
  c.tied_embeddings = r.boolean_or("tie_word_embeddings", false);
  switch (c.arch) {
    case Architecture::kLlama:
      c.qkv_bias = c.o_bias = r.boolean_or("attention_bias", false);
      c.mlp_bias = r.boolean_or("mlp_bias", false);
      break;
    case Architecture::kMistral:
      c.sliding_window = r.integer_or("sliding_window", 0, 0);
      break;
    case Architecture::kQwen2:
    case Architecture::kQwen3:
      if (r.boolean_or("use_sliding_window", false))
        r.bad("use_sliding_window", "sliding-window attention is not supported for " + c.architecture);
      if (c.arch == Architecture::kQwen2) {
        c.qkv_bias = true;
      } else {
        c.qkv_bias = c.o_bias = r.boolean_or("attention_bias", false);
        c.qk_norm = true;
      }
      break;
  }
  c.names = names_for(c.arch);
  return c;
}

namespace {

// An integer at `key`, else inside "text_config"; -1 when neither holds one.
int64_t lenient_int(const nlohmann::json& j, const char* key) {
  for (const nlohmann::json* c : {&j, j.is_object() && j.contains("text_config") ? &j["text_config"] : nullptr}) {
    if (!c || !c->is_object()) continue;
    const auto it = c->find(key);
    if (it != c->end() && it->is_number_integer()) return it->get<int64_t>();
  }
  return -1;
}

// The dimensions parse_model_config would give, for a config it refuses: same keys, same defaults.
void read_lenient(const nlohmann::json& j, DecoderDims& d) {
  std::string arch;
  if (j.is_object() && j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  d.hidden = lenient_int(j, "hidden_size");
  d.intermediate = lenient_int(j, "intermediate_size");
  d.layers = lenient_int(j, "num_hidden_layers");
  d.heads = lenient_int(j, "num_attention_heads");
  d.kv_heads = lenient_int(j, "num_key_value_heads");
  if (d.kv_heads < 0) d.kv_heads = d.heads;
  d.head_dim = lenient_int(j, "head_dim");
  if (d.head_dim < 0) d.head_dim = fixed_head_dim(arch);
  if (d.head_dim <= 0) d.head_dim = d.heads > 0 && d.hidden > 0 ? d.hidden / d.heads : -1;
  d.vocab = lenient_int(j, "vocab_size");
}

}  // namespace

DecoderDims decoder_dims(const nlohmann::json& config, const std::string& file) {
  DecoderDims d;
  try {
    d.model = parse_model_config(config, file);
  } catch (const std::exception& e) {  // awq::Error; anything else from an odd config is refused alike
    d.model_error = e.what();
  }
  if (const auto& m = d.model) {
    d.hidden = m->hidden, d.intermediate = m->intermediate, d.layers = m->layers;
    d.heads = m->heads, d.kv_heads = m->kv_heads, d.head_dim = m->head_dim, d.vocab = m->vocab;
  } else {
    read_lenient(config, d);
  }
  d.moe_intermediate = lenient_int(config, "moe_intermediate_size");
  for (const char* k : {"num_local_experts", "num_experts", "n_routed_experts"})
    if (const int64_t n = lenient_int(config, k); n > 0) {
      d.experts_key = k;
      d.experts = n;
      break;
    }
  return d;
}

std::string ModelConfig::layer_name(const std::string& pattern, int64_t layer) {
  const size_t at = pattern.find("{}");
  if (at == std::string::npos) return pattern;
  return pattern.substr(0, at) + std::to_string(layer) + pattern.substr(at + 2);
}

std::string ModelConfig::linear_name(int64_t layer, LayerLinear which) const {
  return layer_name(names.linear[int(which)], layer);
}

std::pair<int64_t, int64_t> ModelConfig::linear_shape(LayerLinear which) const {
  const int64_t q = heads * head_dim, kv = kv_heads * head_dim;
  switch (which) {
    case LayerLinear::kQ: return {q, hidden};
    case LayerLinear::kK:
    case LayerLinear::kV: return {kv, hidden};
    case LayerLinear::kO: return {hidden, q};
    case LayerLinear::kGate:
    case LayerLinear::kUp: return {intermediate, hidden};
    case LayerLinear::kDown: return {hidden, intermediate};
  }
  return {0, 0};
}

bool ModelConfig::linear_has_bias(LayerLinear which) const {
  switch (which) {
    case LayerLinear::kQ:
    case LayerLinear::kK:
    case LayerLinear::kV: return qkv_bias;
    case LayerLinear::kO: return o_bias;
    default: return mlp_bias;
  }
}

std::vector<float> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& sc) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), in f32.
  for (int64_t i = 0; i < half; ++i) {
    const float e = float(2 * i) / float(head_dim);
    inv[size_t(i)] = 1.0f / std::pow(float(theta), e);
  }
  if (sc.type == RopeScaling::Type::kLlama3) {
    const double pi = std::numbers::pi;
    const double old_len = double(sc.original_max_positions);
    const double low_wavelen = old_len / sc.low_freq_factor, high_wavelen = old_len / sc.high_freq_factor;
    for (auto& f : inv) {
      const double wavelen = 2 * pi / f;
      double nf = wavelen > low_wavelen ? f / sc.factor : f;
      if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
        const double smooth = (old_len / wavelen - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor);
        nf = (1 - smooth) * nf / sc.factor + smooth * nf;
      }
      f = float(nf);
    }
  }
  if (sc.type == RopeScaling::Type::kFactors) {
    if (sc.factors.size() != inv.size())
      throw Error("rope_freqs: " + std::to_string(sc.factors.size()) + " factors for " + std::to_string(inv.size()) + " frequencies");
    for (size_t i = 0; i < inv.size(); ++i) inv[i] /= sc.factors[i];
  }
  return inv;
}

}  // namespace awq
