// tokenizer.json -> tokenizer.ggml.* (see gguf_vocab.h). Sources: llama.cpp conversion/base.py
// (get_vocab_base, _set_vocab_gpt2, _set_vocab_llama_hf, does_token_look_special) and gguf-py
// vocab.py (SpecialVocab._try_load_from_tokenizer_json / _try_load_from_config_json, LlamaHfVocab).
#include "convert/gguf_vocab.h"

#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "awq/error.h"
#include "awq/model_dir.h"

namespace awq::convert_detail {
namespace {

using nlohmann::json;

enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

GgufValue str_value(const std::string& s) {
  GgufValue v;
  v.type = GgufType::STRING;
  v.s = s;
  return v;
}

GgufValue array_of(GgufType elem) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem = elem;
  return v;
}

// The byte-level pre-tokenizer's name: a Split with a known regex then ByteLevel(use_regex false),
// or ByteLevel alone with its built-in GPT-2 regex.
std::string pre_name(const json& tok, const std::string& file) {
  const json& pt = tok.value("pre_tokenizer", json());
  if (pt.is_object() && pt.value("type", "") == "ByteLevel" && pt.value("use_regex", true)) return "gpt-2";
  if (pt.is_object() && pt.value("type", "") == "Sequence" && pt.contains("pretokenizers")) {
    for (const auto& p : pt["pretokenizers"]) {
      if (p.value("type", "") != "Split" || !p.contains("pattern") || !p["pattern"].contains("Regex")) continue;
      const std::string re = p["pattern"]["Regex"].get<std::string>();
      for (const GgufPreTokenizer& k : gguf_pre_tokenizers())
        if (!k.regex.empty() && k.regex == re) return k.name;
      fail(file, "", "pre-tokenizer regex " + re + " is not one llama.cpp implements under a name we know (llama-bpe, qwen2, gpt-2)");
    }
  }
  fail(file, "", "pre-tokenizer " + pt.dump().substr(0, 200) + " is not one llama.cpp implements under a name we know");
}

bool looks_special(const std::string& t) {  // does_token_look_special
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  auto wrapped = [&](const std::string& a, const std::string& b) {
    return t.size() >= a.size() + b.size() && t.compare(0, a.size(), a) == 0 && t.compare(t.size() - b.size(), b.size(), b) == 0;
  };
  return wrapped("<|", "|>") || wrapped("<｜", "｜>") || wrapped("<unused", ">");
}

std::string merge_string(const json& m) {
  if (m.is_string()) return m.get<std::string>();
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    // gguf-py: spaces inside a part become U+0120 + ... (chr(ord(' ') + 256) = 'Ġ')
    auto enc = [](std::string s) {
      std::string o;
      for (char c : s) o += c == ' ' ? std::string("\xC4\xA0") : std::string(1, c);
      return o;
    };
    return enc(m[0].get<std::string>()) + " " + enc(m[1].get<std::string>());
  }
  throw Error("unknown merges format");
}

std::string token_content(const json& entry) {
  if (entry.is_string()) return entry.get<std::string>();
  if (entry.is_object() && entry.contains("content") && entry["content"].is_string()) return entry["content"].get<std::string>();
  return "";
}

// SpecialVocab: special token ids, add_bos/add_eos.
void add_special(const json& tok, const json& tc, const json& config, int64_t n_vocab, GgufWriter& w, VocabSummary* sum) {
  std::map<std::string, int64_t> added;
  for (const auto& a : tok.value("added_tokens", json::array()))
    if (a.contains("content") && a.contains("id") && !added.count(a["content"].get<std::string>()))
      added[a["content"].get<std::string>()] = a["id"].get<int64_t>();
  std::string bos_content = token_content(tc.value("bos_token", json())), eos_content = token_content(tc.value("eos_token", json()));
  std::optional<bool> add_bos, add_eos;
  const json& pp = tok.value("post_processor", json());
  if (pp.is_object()) {
    const json procs = pp.contains("processors") ? pp["processors"] : json::array({pp});
    for (const auto& p : procs) {
      if (p.value("type", "") != "TemplateProcessing") continue;
      const json single = p.value("single", json::array());
      if (single.size() <= 1) continue;
      const std::string first = single[0].contains("SpecialToken") ? single[0]["SpecialToken"].value("id", "") : "";
      if (!first.empty()) {
        if (tc.empty()) bos_content = first;
        add_bos = first == bos_content;
      }
      const json& lastj = single[single.size() - 1];
      const std::string last = lastj.contains("SpecialToken") ? lastj["SpecialToken"].value("id", "") : "";
      if (!last.empty()) {
        if (tc.empty()) eos_content = last;
        add_eos = last == eos_content;
      }
    }
  }
  static const std::pair<const char*, const char*> kTypes[] = {
      {"bos", "bos_token_id"}, {"eos", "eos_token_id"}, {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"}, {"pad", "padding_token_id"},
      {"cls", "cls_token_id"}, {"mask", "mask_token_id"}};
  for (const auto& [typ, key] : kTypes) {
    std::string content = token_content(tc.value(std::string(typ) + "_token", json()));
    if (std::string(typ) == "bos") content = bos_content;
    if (std::string(typ) == "eos") content = eos_content;
    int64_t id = -1;
    if (!content.empty() && added.count(content)) id = added[content];
    if (id < 0 && config.contains(std::string(typ) + "_token_id") && config[std::string(typ) + "_token_id"].is_number_integer())
      id = config[std::string(typ) + "_token_id"].get<int64_t>();
    if (id < 0 || id >= n_vocab) continue;
    w.add_u32(std::string("tokenizer.ggml.") + key, uint32_t(id));
    if (std::string(typ) == "bos") sum->bos = id;
    if (std::string(typ) == "eos") sum->eos = id;
  }
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) add_bos = tc["add_bos_token"].get<bool>();
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) add_eos = tc["add_eos_token"].get<bool>();
  sum->add_bos = add_bos.value_or(false);
  w.add_bool("tokenizer.ggml.add_bos_token", sum->add_bos);  // always explicit: llama.cpp's default differs per model type
  if (add_eos) w.add_bool("tokenizer.ggml.add_eos_token", *add_eos);
  if (tc.contains("chat_template") && tc["chat_template"].is_string()) w.add_string("tokenizer.chat_template", tc["chat_template"].get<std::string>());
}

}  // namespace

VocabSummary add_gguf_vocab(const std::string& model_dir, const json& config, int64_t vocab_size, GgufWriter& w) {
  namespace fs = std::filesystem;
  VocabSummary sum;
  const fs::path dir = fs::is_directory(model_dir) ? fs::path(model_dir) : fs::path(model_dir).parent_path();
  const std::string tok_file = (dir / "tokenizer.json").string();
  if (!fs::exists(tok_file)) return sum;
  const json tok = read_json_file(tok_file);
  const json tc = fs::exists(dir / "tokenizer_config.json") ? read_json_file((dir / "tokenizer_config.json").string()) : json::object();
  const json& model = tok.value("model", json());
  if (!model.is_object() || model.value("type", "") != "BPE" || !model.contains("vocab") || !model["vocab"].is_object())
    fail(tok_file, "", "only BPE tokenizers are exported to GGUF (found model type " + (model.is_object() ? model.value("type", std::string("?")) : std::string("?")) + ")");
  const bool byte_fallback = model.value("byte_fallback", false);
  std::map<int64_t, std::string> by_id;
  for (const auto& [t, id] : model["vocab"].items()) by_id[id.get<int64_t>()] = t;
  std::map<int64_t, json> added;
  for (const auto& a : tok.value("added_tokens", json::array())) {
    by_id[a["id"].get<int64_t>()] = a["content"].get<std::string>();
    added[a["id"].get<int64_t>()] = a;
  }
  if (!by_id.empty() && by_id.rbegin()->first >= vocab_size)
    fail(tok_file, "", "token id " + std::to_string(by_id.rbegin()->first) + " is not below config vocab_size " + std::to_string(vocab_size));
  GgufValue tokens = array_of(GgufType::STRING), types = array_of(GgufType::I32), scores = array_of(GgufType::F32);
  auto push = [&](const std::string& t, int32_t type) {
    tokens.arr.push_back(str_value(t));
    GgufValue ty;
    ty.type = GgufType::I32;
    ty.i = type;
    types.arr.push_back(ty);
    GgufValue sc;
    sc.type = GgufType::F32;
    sc.f = -1000.0;
    scores.arr.push_back(sc);
  };
  static const std::regex kByteToken("<0x[0-9A-Fa-f]{2}>");
  if (!byte_fallback) {  // get_vocab_base: ids 0..vocab_size-1, holes as [PAD<i>]
    sum.model = "gpt2";
    sum.pre = pre_name(tok, tok_file);
    for (int64_t i = 0; i < vocab_size; ++i) {
      auto it = by_id.find(i);
      if (it == by_id.end()) {
        push("[PAD" + std::to_string(i) + "]", kUnused);
        continue;
      }
      int32_t type = kNormal;
      if (added.count(i)) type = (added[i].value("special", false) || looks_special(it->second)) ? kControl : kUserDefined;
      push(it->second, type);
    }
  } else {  // LlamaHfVocab: base tokens (BYTE / CONTROL / NORMAL), then added tokens past the base
    sum.model = "llama";
    sum.pre = "default";
    // Scores: LlamaHfVocab writes -1000 for every token, which leaves llama.cpp's SPM tokenizer (it
    // merges the pair whose result scores highest) without an order, and its ids then differ from
    // tokenizer.json's. We write −(rank of the merge that forms the token) instead, the order the
    // BPE merges encode (tools/verify_gguf_llamacpp.py: ids identical to llama-tokenize's).
    std::map<std::string, int64_t> merge_rank;
    int64_t rank = 0;
    for (const auto& m : model.value("merges", json::array())) {
      const std::string ms = merge_string(m);
      const size_t sp = ms.find(' ');
      if (sp != std::string::npos) merge_rank.emplace(ms.substr(0, sp) + ms.substr(sp + 1), rank);
      ++rank;
    }
    std::set<int64_t> special;
    for (const auto& [id, a] : added)
      if (a.value("special", false)) special.insert(id);
    for (const auto& [id, t] : by_id) {
      if (id != int64_t(tokens.arr.size())) fail(tok_file, "", "token ids are not contiguous at " + std::to_string(id));
      int32_t type = std::regex_match(t, kByteToken) ? kByte : special.count(id) ? kControl : kNormal;
      if (added.count(id) && !special.count(id) && id >= int64_t(model["vocab"].size())) type = kUserDefined;
      push(t, type);
      if (auto mr = merge_rank.find(t); mr != merge_rank.end()) scores.arr.back().f = -double(mr->second);
      else scores.arr.back().f = 0.0;
    }
  }
  sum.tokens = tokens.arr.size();
  w.add_string("tokenizer.ggml.model", sum.model);
  w.add_string("tokenizer.ggml.pre", sum.pre);
  w.add("tokenizer.ggml.tokens", tokens);
  if (byte_fallback) w.add("tokenizer.ggml.scores", scores);
  w.add("tokenizer.ggml.token_type", types);
  if (!byte_fallback) {
    GgufValue merges = array_of(GgufType::STRING);
    for (const auto& m : model.value("merges", json::array())) merges.arr.push_back(str_value(merge_string(m)));
    sum.merges = merges.arr.size();
    if (!merges.arr.empty()) w.add("tokenizer.ggml.merges", merges);
  }
  add_special(tok, tc, config, int64_t(tokens.arr.size()), w, &sum);
  sum.written = true;
  return sum;
}

}  // namespace awq::convert_detail
