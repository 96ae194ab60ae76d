// Config-level checks: the quantization config (present, where loaders look, agreeing with the
// tensors, with the keys vLLM requires) and the tied-embedding layout (docs/formats.md §12).
#include <algorithm>

#include "awq/model_dir.h"
#include "check/check_internal.h"

namespace awq::check_detail {
namespace {

std::string lower(std::string s) {
  for (auto& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string scheme_summary(const QuantScheme& s) {
  return s.format + " (bits " + std::to_string(s.bits) + ", group size " + std::to_string(s.group_size) +
         (s.zero_point ? ", zero point" : ", symmetric") + ")";
}

// vLLM's AWQConfig.from_config requires bits|w_bit, group_size|q_group_size and zero_point;
// AWQMarlinConfig is chosen automatically only with the exact names bits, group_size, zero_point.
void check_awq_keys(const Ctx& c, const nlohmann::json& qc, const std::string& src) {
  struct Key { const char* name; const char* alias; };
  std::vector<std::string> missing, aliased;
  for (Key k : {Key{"bits", "w_bit"}, Key{"group_size", "q_group_size"}, Key{"zero_point", nullptr}}) {
    if (qc.contains(k.name)) continue;
    if (k.alias && qc.contains(k.alias)) aliased.push_back(std::string(k.alias) + " (not " + k.name + ")");
    else missing.push_back(k.name);
  }
  if (!missing.empty()) {
    std::string m;
    for (const auto& k : missing) m += (m.empty() ? "" : ", ") + k;
    c.error("quant-config-incomplete", src,
            "quantization config lacks " + m + ", which vLLM's AWQConfig requires (ValueError at load). Fix: awq repair MODEL -o OUT");
  } else if (!aliased.empty()) {
    std::string m;
    for (const auto& k : aliased) m += (m.empty() ? "" : ", ") + k;
    c.warn("quant-config-legacy-keys", src,
           "quantization config uses the legacy key(s) " + m + "; vLLM loads it with the slow awq kernel because awq_marlin "
           "is chosen only with bits/group_size/zero_point. Fix: awq repair MODEL -o OUT");
  }
}

// Bits the quantization config declares: bits / w_bit / wbits, else the first weight group's
// num_bits (compressed-tensors); -1 when it names none.
int64_t configured_bits(const nlohmann::json& qc) {
  if (!qc.is_object()) return -1;
  for (const char* k : {"bits", "w_bit", "wbits"})
    if (qc.contains(k) && qc[k].is_number_integer()) return qc[k].get<int64_t>();
  if (qc.contains("config_groups") && qc["config_groups"].is_object())
    for (const auto& [_, g] : qc["config_groups"].items())
      if (g.is_object() && g.contains("weights") && g["weights"].is_object() && g["weights"].contains("num_bits") &&
          g["weights"]["num_bits"].is_number_integer())
        return g["weights"]["num_bits"].get<int64_t>();
  return -1;
}

}  // namespace

void check_quant_config(const Ctx& c, const std::string& open_error) {
  const ModelDir& d = *c.dir;
  const bool quantized = c.reader && !c.reader->modules().empty();
  const auto& cfg = d.config();
  const bool nested = cfg.contains("text_config") && cfg["text_config"].is_object() && cfg["text_config"].contains("quantization_config");
  if (!d.has_config() && !d.is_npz())
    c.error("config-missing", "config.json", "there is no config.json; transformers and vLLM cannot build the model. Fix: copy it from the base model");
  if (nested && !cfg.contains("quantization_config"))
    c.warn("quant-config-nested", "config.json",
           "quantization_config is nested in text_config; vLLM does not detect it (KeyError on *.qweight). Fix: awq repair "
           "MODEL -o OUT lifts it to the top level, or pass --quantization awq --dtype half");
  if (d.quant_config().is_null() && !d.hf_quant_config().is_object() && quantized && !d.is_npz() && !nested)
    c.error("quant-config-missing", "config.json",
            "no quantization_config in config.json (nor quant_config.json / quantize_config.json), but the tensors are " +
                scheme_summary(c.reader->scheme()) + "; transformers loads the packed tensors as a dense model and fails. Fix: "
                "awq repair MODEL -o OUT writes the config the tensors imply");
  if (!d.quant_config().is_null() && d.quant_config_source() != "config.json")
    c.warn("quant-config-legacy", d.quant_config_source(),
           "the quantization config is only in the legacy " + d.quant_config_source() +
               "; transformers reads config.json's quantization_config only and loads the model as dense. Fix: awq repair "
               "MODEL -o OUT moves it into config.json");
  if (!open_error.empty()) {
    const std::string src = d.quant_config_source().empty() ? "config.json" : d.quant_config_source();
    const int64_t cfg_bits = configured_bits(d.quant_config());
    if (c.reader && cfg_bits > 0 && cfg_bits != c.reader->scheme().bits)
      c.error("quant-config-mismatch", src,
              "the tensors hold " + std::to_string(c.reader->scheme().bits) + "-bit codes but the quantization config says bits " +
                  std::to_string(cfg_bits) + ": loaders unpack them at the wrong width and fail on the shapes (" + open_error +
                  "). The tensors alone fit " + scheme_summary(c.reader->scheme()) + ". Fix the config, not the weights: set bits " +
                  std::to_string(c.reader->scheme().bits) + " (awq repair MODEL -o OUT rewrites the config from the tensors); keep every tensor");
    else if (c.reader)
      c.error("quant-config-mismatch", src,
              open_error + ". The tensors alone fit " + scheme_summary(c.reader->scheme()) +
                  ". Fix the config, not the weights: awq repair MODEL -o OUT rewrites it from the tensors");
    else
      c.error("format-unreadable", "", open_error);
  }
  const auto& qc = d.quant_config();
  if (qc.is_object() && qc.contains("quant_method") && qc["quant_method"].is_string() && lower(qc["quant_method"].get<std::string>()) == "awq")
    check_awq_keys(c, qc, d.quant_config_source());
}

void check_tied_embeddings(const Ctx& c) {
  const ModelDir& d = *c.dir;
  const auto& cfg = d.config();
  if (!d.has_config()) return;
  const std::string mt = cfg.value("model_type", std::string());
  bool tie = mt.rfind("gemma", 0) == 0;  // PretrainedConfig default True; Gemma keeps it, Llama/Qwen default False
  if (cfg.contains("tie_word_embeddings") && cfg["tie_word_embeddings"].is_boolean()) tie = cfg["tie_word_embeddings"].get<bool>();
  const TensorView* emb = d.find("model.embed_tokens.weight");
  const TensorView* head = d.find("lm_head.weight");
  const bool head_quantized = c.reader && std::count(c.reader->modules().begin(), c.reader->modules().end(), "lm_head");
  const bool has_layers = std::any_of(d.tensors().begin(), d.tensors().end(),
                                      [](const TensorView* t) { return starts_with(t->name, "model.layers."); });
  if (!has_layers) return;  // not the HF decoder naming; nothing to say
  if (tie) {
    if (!emb && head) {
      c.error("tied-lm-head-only", "lm_head.weight",
              "tie_word_embeddings is true but only lm_head.weight is stored, not model.embed_tokens.weight (the AutoAWQ "
              "0.2.7-0.2.7.post2 save bug): vLLM skips lm_head for tied models and runs with garbage embeddings, llama.cpp "
              "fails with \"token_embd.weight not found\". Fix: awq repair MODEL -o OUT restores model.embed_tokens.weight");
    } else if (emb && head) {
      const bool same = emb->dtype == head->dtype && emb->shape == head->shape && std::equal(emb->data, emb->data + emb->nbytes, head->data);
      if (same)
        c.note("tied-duplicate", "lm_head.weight",
               "tie_word_embeddings is true and lm_head.weight is stored beside model.embed_tokens.weight; the two are equal. "
               "Harmless; awq repair MODEL -o OUT drops the copy and saves " + std::to_string(head->nbytes) + " bytes");
      else
        c.warn("tied-head-differs", "lm_head.weight",
               "tie_word_embeddings is true but the stored lm_head.weight differs from model.embed_tokens.weight: loaders use the "
               "embedding as the head and ignore it. If the head was trained separately, the tie flag is wrong: set "
               "tie_word_embeddings false. Keep the tensor either way (awq repair keeps it too)");
    } else if (!emb && !head) {
      c.error("tensor-missing", "model.embed_tokens.weight", "neither model.embed_tokens.weight nor lm_head.weight is stored; every loader fails");
    }
  } else {
    if (!emb)
      c.error("tensor-missing", "model.embed_tokens.weight",
              std::string("tie_word_embeddings is false but model.embed_tokens.weight is not stored") +
                  (head ? " (only lm_head.weight is; if the model is really tied, set tie_word_embeddings true and run awq repair)" : ""));
    if (!head && !head_quantized)
      c.error("tensor-missing", "lm_head.weight",
              "tie_word_embeddings is false but lm_head.weight is not stored; loaders leave the output projection uninitialised. "
              "If the model is tied, set tie_word_embeddings true in config.json");
  }
}

}  // namespace awq::check_detail
