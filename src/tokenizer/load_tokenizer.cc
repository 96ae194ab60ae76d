// load_tokenizer: finds the tokenizer files of a model directory and its BOS / EOS ids.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/tokenizer.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sp_tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace awq {
namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail(p.string(), "", "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(p.string(), "", "read error");
  return ss.str();
}

json parse_json(const std::string& text, const std::string& file) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(file, "", std::string("invalid JSON: ") + e.what());
  }
}

// An optional JSON config beside the tokenizer: {} when absent.
json read_optional_config(const fs::path& dir, const char* name) {
  const fs::path p = dir / name;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return json::object();
  json j = parse_json(read_all(p), p.string());
  if (!j.is_object()) fail(p.string(), "", "expected a JSON object");
  return j;
}

// tokenizer_config.json names tokens as "text" or {"content": "text", ...}.
std::optional<std::string> token_name(const json& cfg, const char* key, const std::string& file) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  fail(file, "", std::string(key) + ": expected a token string or {\"content\": ...}");
}

// An id or list of ids (generation_config / config *_token_id); each must be in the vocabulary.
void add_ids(const json& cfg, const char* key, const std::string& file, size_t vocab, std::vector<int32_t>& out) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return;
  std::vector<json> vals = it->is_array() ? std::vector<json>(it->begin(), it->end()) : std::vector<json>{*it};
  for (const json& v : vals) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= int64_t(vocab))
      fail(file, "", std::string(key) + ": " + v.dump() + " is not an id in the vocabulary (" + std::to_string(vocab) + " ids)");
    const auto id = int32_t(v.get<int64_t>());
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
}

bool config_flag(const json& cfg, const char* key, bool fallback, const std::string& file) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(file, "", std::string(key) + ": expected true or false");
  return it->get<bool>();
}

struct Configs {
  json tok, gen, model;
  std::string tok_file, gen_file, model_file;
};

Configs read_configs(const fs::path& dir) {
  Configs c;
  c.tok_file = (dir / "tokenizer_config.json").string();
  c.gen_file = (dir / "generation_config.json").string();
  c.model_file = (dir / "config.json").string();
  c.tok = read_optional_config(dir, "tokenizer_config.json");
  c.gen = read_optional_config(dir, "generation_config.json");
  c.model = read_optional_config(dir, "config.json");
  return c;
}

// BOS: tokenizer_config's bos_token, else what the tokenizer itself adds (`fallback`), else
// config.json's bos_token_id. EOS: generation_config, tokenizer_config and config.json together.
template <typename T>
void resolve_special_ids(T& tok, const Configs& c, std::optional<int32_t> fallback_bos, std::vector<int32_t> fallback_eos) {
  std::optional<int32_t> bos;
  if (auto name = token_name(c.tok, "bos_token", c.tok_file)) bos = tok.token_to_id(*name);
  if (!bos) bos = fallback_bos;
  if (!bos) {
    std::vector<int32_t> ids;
    add_ids(c.model, "bos_token_id", c.model_file, tok.vocab_size(), ids);
    if (!ids.empty()) bos = ids.front();
  }
  std::vector<int32_t> eos;
  add_ids(c.gen, "eos_token_id", c.gen_file, tok.vocab_size(), eos);
  if (auto name = token_name(c.tok, "eos_token", c.tok_file))
    if (auto id = tok.token_to_id(*name); id && std::find(eos.begin(), eos.end(), *id) == eos.end()) eos.push_back(*id);
  add_ids(c.model, "eos_token_id", c.model_file, tok.vocab_size(), eos);
  for (int32_t id : fallback_eos)
    if (eos.empty()) eos.push_back(id);
  tok.set_special_ids(bos, std::move(eos));
}


// Builds the tokenizer, turning a JSON access error that slipped past the checks into awq::Error.
std::unique_ptr<tok::HfTokenizer> make_hf(const json& doc, const std::string& file) {
  try {
    return std::make_unique<tok::HfTokenizer>(doc, file);
  } catch (const json::exception& e) {
    fail(file, "", std::string("malformed tokenizer.json: ") + e.what());
  }
}

// transformers' LlamaTokenizerFast, CodeLlamaTokenizerFast and GemmaTokenizerFast (what
// AutoTokenizer loads for these classes) replace tokenizer.json's post-processor by
// [bos if add_bos_token (default true)] $A [eos if add_eos_token (default false)].
void apply_class_template(tok::HfTokenizer& tok, const Configs& c) {
  auto it = c.tok.find("tokenizer_class");
  if (it == c.tok.end() || !it->is_string()) return;
  std::string cls = it->get<std::string>();
  if (cls.size() > 4 && cls.compare(cls.size() - 4, 4, "Fast") == 0) cls.resize(cls.size() - 4);
  if (cls != "LlamaTokenizer" && cls != "CodeLlamaTokenizer" && cls != "GemmaTokenizer") return;
  const bool gemma = cls == "GemmaTokenizer";
  auto id_of = [&](const char* key, const char* fallback) {
    const std::string name = token_name(c.tok, key, c.tok_file).value_or(fallback);
    auto id = tok.token_to_id(name);
    if (!id) fail(c.tok_file, "", std::string(key) + " \"" + name + "\" is not in the vocabulary");
    return *id;
  };
  std::vector<int32_t> before, after;
  if (config_flag(c.tok, "add_bos_token", true, c.tok_file)) before.push_back(id_of("bos_token", gemma ? "<bos>" : "<s>"));
  if (config_flag(c.tok, "add_eos_token", false, c.tok_file)) after.push_back(id_of("eos_token", gemma ? "<eos>" : "</s>"));
  tok.set_affixes(std::move(before), std::move(after));
}

std::unique_ptr<Tokenizer> load_json(const fs::path& file, const Configs& c) {
  auto tok = make_hf(parse_json(read_all(file), file.string()), file.string());
  apply_class_template(*tok, c);
  resolve_special_ids(*tok, c, tok->template_bos(), {});
  return tok;
}

std::unique_ptr<Tokenizer> load_sp(const fs::path& file, const Configs& c) {
  auto tok = std::make_unique<tok::SpTokenizer>(read_all(file), file.string(), config_flag(c.tok, "add_bos_token", true, c.tok_file),
                                                config_flag(c.tok, "add_eos_token", false, c.tok_file));
  std::vector<int32_t> eos;
  if (auto e = tok->model_eos()) eos.push_back(*e);
  resolve_special_ids(*tok, c, tok->model_bos(), eos);
  return tok;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  std::error_code ec;
  if (is_gguf_file(path.string())) return tok::load_gguf_tokenizer(GgufFile(path.string()));
  if (fs::is_regular_file(path, ec)) {  // a tokenizer file named directly
    const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    if (path.extension() == ".json") return load_json(path, read_configs(dir));
    if (path.extension() == ".model") return load_sp(path, read_configs(dir));
    fail(path.string(), "", "not a tokenizer file (expected a directory, a tokenizer.json, a tokenizer.model or a .gguf)");
  }
  if (!fs::is_directory(path, ec)) fail(path.string(), "", "no such model directory");
  if (fs::is_regular_file(path / "tokenizer.json", ec)) return load_json(path / "tokenizer.json", read_configs(path));
  if (fs::is_regular_file(path / "tokenizer.model", ec)) return load_sp(path / "tokenizer.model", read_configs(path));
  fail(path.string(), "", "no tokenizer.json or tokenizer.model in the model directory");
}

std::unique_ptr<Tokenizer> parse_tokenizer_json(std::string_view json_text, const std::string& name) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    fail(name, "", std::string("invalid JSON: ") + e.what());
  }
  return make_hf(doc, name);
}

}  // namespace awq
