// A GGUF file's tokenizer (tokenizer.ggml.*) as the tokenizer.json document that gives the ids
// llama.cpp's own tokenizer gives (llama-vocab.cpp), then run by HfTokenizer:
//   "gpt2" (byte-level BPE): tokens, merges and the pre-tokenizer name (gguf_pre_tokenizers(): its
//          regex, and ignore_merges where llama.cpp sets it); control tokens are special added
//          tokens, user-defined ones plain added tokens.
//   "llama" (sentencepiece-style): tokens, scores and types. llama.cpp merges the adjacent pair
//          whose joined token scores highest, with byte fallback; that is BPE with merges ranked by
//          the joined token's score (transformers' SentencePieceExtractor builds them the same
//          way), " " escaped to U+2581 and, when add_space_prefix (default true), one prepended.
// Anything else (other models, unknown pre-tokenizer names) is an awq::Error naming the file and key.
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "awq/error.h"
#include "awq/gguf.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/hf_tokenizer.h"

namespace awq::tok {
namespace {

using nlohmann::json;

enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  std::vector<double> scores;
};

GgufVocab read_vocab(const GgufFile& f) {
  GgufVocab v;
  const GgufValue* t = f.find("tokenizer.ggml.tokens");
  if (!t || t->type != GgufType::ARRAY || t->elem != GgufType::STRING || t->arr.empty())
    fail(f.path(), "tokenizer.ggml.tokens", "missing or not an array of strings (the file has no tokenizer)");
  for (const auto& e : t->arr) v.tokens.push_back(e.s);
  v.types.assign(v.tokens.size(), kNormal);
  if (const GgufValue* ty = f.find("tokenizer.ggml.token_type")) {
    if (ty->type != GgufType::ARRAY || ty->arr.size() != v.tokens.size())
      fail(f.path(), "tokenizer.ggml.token_type", "expected one integer per token");
    for (size_t i = 0; i < ty->arr.size(); ++i) {
      const auto x = ty->arr[i].as_int();
      if (!x) fail(f.path(), "tokenizer.ggml.token_type", "element " + std::to_string(i) + " is not an integer");
      v.types[i] = *x;
    }
  }
  v.scores.assign(v.tokens.size(), 0.0);
  if (const GgufValue* sc = f.find("tokenizer.ggml.scores")) {
    if (sc->type != GgufType::ARRAY || sc->arr.size() != v.tokens.size())
      fail(f.path(), "tokenizer.ggml.scores", "expected one number per token");
    for (size_t i = 0; i < sc->arr.size(); ++i) v.scores[i] = sc->arr[i].is_integer() ? double(*sc->arr[i].as_int()) : sc->arr[i].f;
  }
  return v;
}

std::optional<int64_t> id_key(const GgufFile& f, const std::string& key, size_t n) {
  const GgufValue* v = f.find(key);
  if (!v) return std::nullopt;
  const auto id = v->as_int();
  if (!id || *id < 0 || *id >= int64_t(n)) return std::nullopt;  // llama.cpp ignores out-of-range ids too
  return id;
}

bool flag(const GgufFile& f, const std::string& key, bool fallback) {
  const GgufValue* v = f.find(key);
  if (!v) return fallback;
  if (v->type != GgufType::BOOL) fail(f.path(), key, "expected a bool");
  return v->b;
}

// Every token in the model's vocabulary (its id is its position); control and user-defined tokens
// are also added tokens, matched in the raw text before anything else runs.
void add_tokens(const GgufVocab& v, json& doc) {
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (!vocab.contains(v.tokens[i])) vocab[v.tokens[i]] = i;
    if (v.types[i] == kControl || v.types[i] == kUserDefined)
      added.push_back(json{{"id", i}, {"content", v.tokens[i]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", v.types[i] == kControl}});
  }
  doc["model"]["vocab"] = std::move(vocab);
  doc["added_tokens"] = std::move(added);
}

json gpt2_doc(const GgufFile& f, const GgufVocab& v, bool* add_bos_default) {
  const std::string pre = f.find("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
  const GgufPreTokenizer* known = nullptr;
  for (const auto& k : gguf_pre_tokenizers())
    if (k.name == pre) known = &k;
  if (!known) {
    std::string names;
    for (const auto& k : gguf_pre_tokenizers()) names += (names.empty() ? "" : ", ") + k.name;
    fail(f.path(), "tokenizer.ggml.pre", "pre-tokenizer \"" + pre + "\" is not one we reproduce (" + names + ")");
  }
  *add_bos_default = known->ignore_merges;  // llama.cpp: the Llama-3 names also default add_bos to true
  json doc;
  doc["model"] = {{"type", "BPE"}, {"byte_fallback", false}, {"ignore_merges", known->ignore_merges}};
  add_tokens(v, doc);
  json merges = json::array();
  if (const GgufValue* m = f.find("tokenizer.ggml.merges")) {
    if (m->type != GgufType::ARRAY || m->elem != GgufType::STRING) fail(f.path(), "tokenizer.ggml.merges", "expected an array of strings");
    for (const auto& e : m->arr) merges.push_back(e.s);
  }
  doc["model"]["merges"] = std::move(merges);
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", known->regex.empty()}};
  if (known->regex.empty()) {
    doc["pre_tokenizer"] = byte_level;
  } else {
    const json split = {{"type", "Split"}, {"pattern", {{"Regex", known->regex}}}, {"behavior", "Isolated"}, {"invert", false}};
    doc["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({split, byte_level})}};
  }
  doc["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  return doc;
}

// Index of each UTF-8 character start in s (and s.size()).
std::vector<size_t> char_starts(const std::string& s) {
  std::vector<size_t> out;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  out.push_back(s.size());
  return out;
}

json llama_doc(const GgufFile& f, const GgufVocab& v) {
  json doc;
  doc["model"] = {{"type", "BPE"}, {"byte_fallback", true}, {"fuse_unk", true}, {"ignore_merges", false}};
  add_tokens(v, doc);
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.types[i] == kUnknown) {
      doc["model"]["unk_token"] = v.tokens[i];
      break;
    }
  // Merges: every split of a normal token into two normal tokens, best joined score first (ties: by
  // the ids of the left and right parts, as SentencePieceExtractor orders them).
  std::map<std::string, int64_t> normal;
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.types[i] == kNormal && !normal.count(v.tokens[i])) normal[v.tokens[i]] = int64_t(i);
  struct Merge {
    double score;
    int64_t left, right;
  };
  std::vector<Merge> merges;
  for (const auto& [tok, id] : normal) {
    const auto starts = char_starts(tok);
    for (size_t c = 1; c + 1 < starts.size(); ++c) {
      auto l = normal.find(tok.substr(0, starts[c])), r = normal.find(tok.substr(starts[c]));
      if (l != normal.end() && r != normal.end()) merges.push_back({v.scores[size_t(id)], l->second, r->second});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    return std::make_pair(a.left, a.right) < std::make_pair(b.left, b.right);
  });
  json mj = json::array();
  for (const Merge& m : merges) mj.push_back(json::array({v.tokens[size_t(m.left)], v.tokens[size_t(m.right)]}));
  doc["model"]["merges"] = std::move(mj);
  const std::string space = "\xE2\x96\x81";  // U+2581
  const bool prefix = flag(f, "tokenizer.ggml.add_space_prefix", true);
  json norm = json::array();
  if (prefix) norm.push_back(json{{"type", "Prepend"}, {"prepend", space}});
  norm.push_back(json{{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}});
  doc["normalizer"] = {{"type", "Sequence"}, {"normalizers", norm}};
  json dec = json::array();
  dec.push_back(json{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}});
  dec.push_back(json{{"type", "ByteFallback"}});
  dec.push_back(json{{"type", "Fuse"}});
  if (prefix) dec.push_back(json{{"type", "Strip"}, {"content", " "}, {"start", 1u}, {"stop", 0u}});
  doc["decoder"] = {{"type", "Sequence"}, {"decoders", dec}};
  return doc;
}

}  // namespace

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& f) {
  const GgufValue* mv = f.find("tokenizer.ggml.model");
  if (!mv) fail(f.path(), "tokenizer.ggml.model", "missing (the file has no tokenizer)");
  const std::string model = f.get_string("tokenizer.ggml.model");
  const GgufVocab v = read_vocab(f);
  json doc;
  bool add_bos = true;
  if (model == "gpt2") doc = gpt2_doc(f, v, &add_bos);
  else if (model == "llama") doc = llama_doc(f, v);
  else fail(f.path(), "tokenizer.ggml.model", "tokenizer model \"" + model + "\" is not supported (gpt2 byte-level BPE and llama sentencepiece-style are)");
  doc["version"] = "1.0";
  std::unique_ptr<HfTokenizer> tok;
  const std::string label = f.path() + " (tokenizer.ggml.*)";
  try {
    tok = std::make_unique<HfTokenizer>(doc, label);
  } catch (const json::exception& e) {
    fail(label, "", std::string("cannot be built: ") + e.what());
  }
  const auto bos = id_key(f, "tokenizer.ggml.bos_token_id", v.tokens.size());
  std::vector<int32_t> before, after, eos;
  if (flag(f, "tokenizer.ggml.add_bos_token", add_bos) && bos) before.push_back(int32_t(*bos));
  const auto eos_id = id_key(f, "tokenizer.ggml.eos_token_id", v.tokens.size());
  if (flag(f, "tokenizer.ggml.add_eos_token", false) && eos_id) after.push_back(int32_t(*eos_id));
  tok->set_affixes(std::move(before), std::move(after));
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (auto id = id_key(f, key, v.tokens.size()); id && std::find(eos.begin(), eos.end(), int32_t(*id)) == eos.end()) eos.push_back(int32_t(*id));
  tok->set_special_ids(bos ? std::optional<int32_t>(int32_t(*bos)) : std::nullopt, std::move(eos));
  return tok;
}

}  // namespace awq::tok
