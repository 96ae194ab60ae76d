// Tensors against config.json for the Llama family (Llama, Mistral, Qwen2/3, Gemma, Mixtral,
// Qwen-MoE naming): dimensions, layer count, missing and unexpected tensors, quantized versus
// dense modules, quantized MoE router gates. The dimensions and, for the architectures the
// runtime knows, the tensor names come from src/arch (DecoderDims, TensorNames); architectures
// it refuses keep every check that needs only the dimensions.
#include <algorithm>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "awq/model_dir.h"
#include "check/check_internal.h"

namespace awq::check_detail {
namespace {

// A linear module as stored: dense "<m>.weight" [N, K] or a quantized module.
struct Linear {
  int64_t n = 0, k = 0;
  bool quantized = false;
};

// Leaf of a module inside a decoder layer: "model.layers.3.mlp.experts.7.down_proj" -> "down_proj".
std::string leaf(const std::string& m) {
  const size_t p = m.rfind('.');
  return p == std::string::npos ? m : m.substr(p + 1);
}

bool is_expert(const std::string& m) { return m.find(".experts.") != std::string::npos; }

bool is_router(const std::string& m) {
  return ends_with(m, ".mlp.gate") || ends_with(m, ".block_sparse_moe.gate") || ends_with(m, ".router") ||
         ends_with(m, ".mlp.router") || ends_with(m, ".shared_expert_gate");
}

// Expected [N, K] of a module from the config; {-1, -1} when the leaf is unknown or dims missing.
std::pair<int64_t, int64_t> expected_shape(const std::string& m, const DecoderDims& d) {
  const std::string l = leaf(m);
  const int64_t inter = is_expert(m) && d.moe_intermediate > 0 ? d.moe_intermediate : d.intermediate;
  if (m.find("shared_expert") != std::string::npos) return {-1, -1};
  if (l == "q_proj") return {d.heads * d.head_dim, d.hidden};
  if (l == "k_proj" || l == "v_proj") return {d.kv_heads * d.head_dim, d.hidden};
  if (l == "o_proj") return {d.hidden, d.heads * d.head_dim};
  if (l == "gate_proj" || l == "up_proj" || l == "w1" || l == "w3") return {inter, d.hidden};
  if (l == "down_proj" || l == "w2") return {d.hidden, inter};
  return {-1, -1};
}

// Quantization exclusion lists: AWQ modules_to_not_convert are substrings; compressed-tensors and
// ModelOpt ignore lists may hold "re:<regex>" entries.
bool excluded(const std::string& m, const std::vector<std::string>& list) {
  for (const auto& e : list) {
    if (starts_with(e, "re:")) {
      try {
        if (std::regex_search(m, std::regex(e.substr(3)))) return true;
      } catch (const std::regex_error&) {
      }
    } else if (!e.empty() && m.find(e) != std::string::npos) {
      return true;
    }
  }
  return false;
}

const std::set<std::string>& dense_arch_leaves() {
  static const std::set<std::string> k = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return k;
}

std::map<std::string, Linear> collect_linears(const Ctx& c, std::set<std::string>& consumed) {
  std::map<std::string, Linear> lin;
  if (c.reader)
    for (const auto& m : c.reader->modules()) {
      for (const auto& t : c.reader->module_tensors(m)) consumed.insert(t);
      try {
        const ModuleInfo i = c.reader->check(m);
        lin[m] = {i.n, i.k, true};
      } catch (const std::exception&) {
        lin[m] = {-1, -1, true};
      }
    }
  // Quantized modules no reader could read (a config that contradicts the tensors, an unknown
  // layout) are still the model's weights: they count as present, and their tensors are never
  // listed as foreign (advice to remove them would delete the weights).
  for (const TensorView* t : c.dir->tensors()) {
    std::string m;
    for (const char* anchor : {".qweight", ".weight_packed", ".weight_scale"})
      if (!consumed.count(t->name) && ends_with(t->name, anchor)) m = t->name.substr(0, t->name.size() - std::string(anchor).size());
    if (m.empty() || lin.count(m)) continue;
    lin[m] = {-1, -1, true};
    for (const TensorView* u : c.dir->tensors())
      if (starts_with(u->name, m + ".") && u->name.find('.', m.size() + 1) == std::string::npos) consumed.insert(u->name);
  }
  for (const TensorView* t : c.dir->tensors()) {
    if (consumed.count(t->name) || !ends_with(t->name, ".weight") || t->shape.size() != 2) continue;
    const std::string m = t->name.substr(0, t->name.size() - 7);
    if (layer_index(m) < 0) continue;
    lin.emplace(m, Linear{t->dim(0), t->dim(1), false});
  }
  return lin;
}

void check_shapes(const Ctx& c, const DecoderDims& d, const TensorNames& names, const std::map<std::string, Linear>& lin) {
  struct Bad { std::string first; int64_t n, k, en, ek; size_t count = 0; };
  std::map<std::string, Bad> by_leaf;
  for (const auto& [m, l] : lin) {
    if (l.n < 0) continue;
    const auto [en, ek] = expected_shape(m, d);
    if (en <= 0 || ek <= 0 || (en == l.n && ek == l.k)) continue;
    auto& b = by_leaf[leaf(m)];
    if (b.count++ == 0) b = {m, l.n, l.k, en, ek, 1};
  }
  for (const auto& [lf, b] : by_leaf)
    c.error("config-mismatch", b.first,
            "is [out " + std::to_string(b.n) + ", in " + std::to_string(b.k) + "] but config.json (hidden_size " + std::to_string(d.hidden) +
                ", intermediate_size " + std::to_string(d.intermediate) + ", heads " + std::to_string(d.heads) + ", kv heads " +
                std::to_string(d.kv_heads) +
                ", head_dim " + std::to_string(d.head_dim) + ") implies [" + std::to_string(b.en) + ", " + std::to_string(b.ek) + "]" +
                (b.count > 1 ? " (" + std::to_string(b.count) + " " + lf + " modules differ)" : "") +
                "; loaders fail with a size mismatch. Fix: use the config.json of the model these weights came from");
  auto check_vec = [&](const std::string& name, std::vector<int64_t> want, const char* what) {
    const TensorView* t = c.dir->find(name);
    if (!t || std::find(want.begin(), want.end(), -1) != want.end() || t->shape == want) return;
    TensorView w;
    w.shape = want;
    c.error("config-mismatch", name, "has shape " + t->shape_str() + " but config.json " + what + " implies " + w.shape_str());
  };
  check_vec(names.embed, {d.vocab, d.hidden}, "(vocab_size, hidden_size)");
  check_vec(names.lm_head, {d.vocab, d.hidden}, "(vocab_size, hidden_size)");
  check_vec(names.final_norm, {d.hidden}, "(hidden_size)");
}

// Per-layer names every decoder layer must store, as suffixes after "model.layers.N.": the norms
// (q_norm/k_norm where the architecture has them), and the linear modules (the MLP's only when
// `mlp`: MoE layers hold experts instead).
std::vector<std::string> layer_suffixes(const TensorNames& n, bool mlp) {
  std::vector<std::string> out;
  auto add = [&](const std::string& pattern) {
    if (const size_t at = pattern.find("{}."); !pattern.empty() && at != std::string::npos) out.push_back(pattern.substr(at + 3));
  };
  for (const std::string* p : {&n.attn_norm, &n.mlp_norm, &n.q_norm, &n.k_norm}) add(*p);
  for (LayerLinear l : kAllLayerLinears)
    if (mlp || l == LayerLinear::kQ || l == LayerLinear::kK || l == LayerLinear::kV || l == LayerLinear::kO) add(n.linear[int(l)]);
  return out;
}

// `names`: the architecture's tensor names when src/arch knows it (then missing tensors are
// looked for too); null for any other.
void check_layers(const Ctx& c, const DecoderDims& d, const std::map<std::string, Linear>& lin, const TensorNames* names) {
  std::map<int64_t, std::set<std::string>> present;  // layer -> leaves present (modules and norms)
  for (const TensorView* t : c.dir->tensors()) {
    const int64_t i = layer_index(t->name);
    if (i >= 0 && starts_with(t->name, "model.layers.")) present[i].insert(t->name);
  }
  if (present.empty()) return;
  if (d.layers > 0) {
    std::vector<int64_t> missing, extra;
    for (int64_t i = 0; i < d.layers; ++i)
      if (!present.count(i)) missing.push_back(i);
    for (const auto& [i, _] : present)
      if (i >= d.layers) extra.push_back(i);
    if (!missing.empty())
      c.error("config-mismatch", "model.layers." + std::to_string(missing[0]),
              "config.json num_hidden_layers is " + std::to_string(d.layers) + " but " + std::to_string(missing.size()) +
                  " of those layers have no tensors (first: " + std::to_string(missing[0]) + "); loaders fail with missing weights");
    if (!extra.empty())
      c.error("tensor-unexpected", "model.layers." + std::to_string(extra[0]),
              std::to_string(extra.size()) + " layer(s) at index >= num_hidden_layers " + std::to_string(d.layers) +
                  " are stored (first: " + std::to_string(extra[0]) + "); loaders reject unexpected keys or silently drop the layers. "
                  "Fix: if the model really has " + std::to_string(extra.back() + 1) + " layers, set num_hidden_layers to " +
                  std::to_string(extra.back() + 1) + " in config.json; do not delete layers");
  }
  if (!names) return;
  const std::vector<std::string> want = layer_suffixes(*names, d.experts == 0);
  std::map<std::string, std::pair<std::string, size_t>> missing;  // expected suffix -> (first tensor, count)
  for (const auto& [i, stored] : present) {
    if (d.layers > 0 && i >= d.layers) continue;
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (const auto& w : want) {
      const bool ok = ends_with(w, ".weight") ? stored.count(p + w) > 0 : lin.count(p + w) > 0;
      if (ok) continue;
      auto& e = missing[w];
      if (e.second++ == 0) e.first = p + w;
    }
  }
  for (const auto& [w, e] : missing)
    c.error("tensor-missing", e.first,
            "missing (the architecture has " + w + " in every layer; " + std::to_string(e.second) + " layer(s) lack it); loaders fail");
}

// Tensors whose names the Llama-family dense architectures do not have (known_arch only).
void check_unexpected(const Ctx& c, const std::set<std::string>& consumed, const std::string& arch) {
  static const std::regex kLayer(
      R"(model\.layers\.\d+\.(input_layernorm|post_attention_layernorm|pre_feedforward_layernorm|post_feedforward_layernorm)\.weight|)"
      R"(model\.layers\.\d+\.self_attn\.(q|k|v|o)_proj\.(weight|bias)|model\.layers\.\d+\.self_attn\.(q_norm|k_norm)\.weight|)"
      R"(model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq|model\.layers\.\d+\.mlp\.(gate|up|down)_proj\.(weight|bias))");
  std::vector<std::string> odd;
  for (const TensorView* t : c.dir->tensors()) {
    const std::string& n = t->name;
    if (consumed.count(n) || n == "model.embed_tokens.weight" || n == "model.norm.weight" || n == "lm_head.weight") continue;
    if (!std::regex_match(n, kLayer)) odd.push_back(n);
  }
  if (odd.empty()) return;
  std::string list;
  for (size_t i = 0; i < odd.size() && i < 5; ++i) list += (i ? ", " : "") + odd[i];
  c.error("tensor-unexpected", odd[0],
          std::to_string(odd.size()) + " tensor(s) " + arch + " does not have (" + list + (odd.size() > 5 ? ", ..." : "") +
              "); transformers drops them with a warning, vLLM fails with a KeyError. Fix: first make sure config.json "
              "(architectures, model_type) describes the model these weights came from; delete nothing until you know what "
              "the tensors are");
}

// Experts stored per MoE layer against the config's count (num_local_experts: Mixtral;
// num_experts: Qwen2-MoE, Qwen3-MoE; n_routed_experts: DeepSeek). Layers without numbered experts
// (dense layers of Qwen-MoE, fused expert tensors) are not counted.
void check_expert_count(const Ctx& c, const DecoderDims& d) {
  const std::string& key = d.experts_key;
  const int64_t want = d.experts;
  if (want <= 0) return;
  static const std::regex kExpert(R"(^(.*\.layers\.(\d+)\..*\.experts)\.(\d+)\.)");
  std::map<int64_t, std::set<int64_t>> experts;  // layer -> expert indices stored
  for (const TensorView* t : c.dir->tensors()) {
    std::smatch mt;
    if (std::regex_search(t->name, mt, kExpert)) experts[std::stoll(mt[2].str())].insert(std::stoll(mt[3].str()));
  }
  for (const auto& [layer, idx] : experts) {
    const int64_t stored = int64_t(idx.size()), top = *idx.rbegin() + 1;
    if (stored == want && top == want) continue;
    size_t differing = 0;
    for (const auto& [_, other] : experts) differing += int64_t(other.size()) != want || *other.rbegin() + 1 != want;
    c.error("config-mismatch", "model.layers." + std::to_string(layer),
            "config.json " + key + " is " + std::to_string(want) + " but layer " + std::to_string(layer) + " stores " +
                std::to_string(stored) + " expert(s) (indices " + std::to_string(*idx.begin()) + " to " + std::to_string(top - 1) + ")" +
                (differing > 1 ? "; " + std::to_string(differing) + " layers differ" : "") + ": loaders build " +
                std::to_string(want) + " experts per layer and fail on the missing or extra weights (or run with experts never "
                "loaded). Fix: use the config.json of the model these weights came from (" + key + " " + std::to_string(stored) +
                " if the stored experts are complete); delete nothing");
    return;
  }
}

// `moe`: the config declares experts; only then is a bare "mlp.gate" a router (in TensorRT-LLM
// naming "mlp.gate" is the up projection).
void check_quantized_vs_dense(const Ctx& c, const std::map<std::string, Linear>& lin, bool moe) {
  if (!c.reader || c.reader->modules().empty()) return;
  const auto& skip = c.reader->scheme().modules_to_not_convert;
  std::vector<std::string> dense, quant_excluded;
  for (const auto& [m, l] : lin) {
    if (is_router(m) && (moe || !ends_with(m, ".mlp.gate"))) {
      if (l.quantized)
        c.error("router-gate-quantized", m,
                "the MoE router gate is quantized; vLLM builds routers unquantized (ReplicatedLinear with quant_config=None) and "
                "fails to load its packed tensors. Fix: requantize with the gate in modules_to_not_convert");
      continue;
    }
    const bool skipped = excluded(m, skip);
    if (!l.quantized && !skipped && (dense_arch_leaves().count(leaf(m)) || is_expert(m))) dense.push_back(m);
    if (l.quantized && skipped) quant_excluded.push_back(m);
  }
  if (!dense.empty())
    c.error("layer-stored-dense", dense[0],
            std::to_string(dense.size()) + " linear layer(s) inside the decoder blocks are stored dense (" + dense[0] +
                (dense.size() > 1 ? ", ..." : "") + ") but the quantization config does not exclude them; loaders build a "
                "quantized layer and find no packed weights. Fix: add them to modules_to_not_convert (awq repair can't guess), or requantize");
  if (!quant_excluded.empty())
    c.error("layer-quantized-unexpectedly", quant_excluded[0],
            std::to_string(quant_excluded.size()) + " module(s) are stored quantized but matched by modules_to_not_convert / ignore (" +
                quant_excluded[0] + (quant_excluded.size() > 1 ? ", ..." : "") +
                "); loaders build a dense layer and reject the packed tensors. Fix: remove the entry from the config");
}

}  // namespace

void check_architecture(const Ctx& c) {
  const auto& cfg = c.dir->config();
  if (!c.dir->has_config() || c.dir->is_npz()) return;
  const DecoderDims& d = *c.dims;
  const bool moe = d.experts > 0;
  std::string arch;
  if (cfg.contains("architectures") && cfg["architectures"].is_array() && !cfg["architectures"].empty() && cfg["architectures"][0].is_string())
    arch = cfg["architectures"][0].get<std::string>();
  // Names of the dense architectures src/arch knows, by name alone: a config of theirs that the
  // runtime refuses (rope scaling, activation, ...) still gets the missing/unexpected checks.
  std::optional<TensorNames> known = moe ? std::nullopt : architecture_tensor_names(arch);
  // Any other architecture is checked under Hugging Face's Llama naming (Mixtral, Qwen-MoE and
  // Gemma share it; where the tensors are named otherwise, nothing is compared).
  static const TensorNames kHfNames = *architecture_tensor_names("LlamaForCausalLM");
  std::set<std::string> consumed;
  const auto lin = collect_linears(c, consumed);
  check_shapes(c, d, known ? *known : kHfNames, lin);
  check_layers(c, d, lin, known ? &*known : nullptr);
  if (known) check_unexpected(c, consumed, arch);
  if (moe) check_expert_count(c, d);
  check_quantized_vs_dense(c, lin, moe);
}

}  // namespace awq::check_detail
