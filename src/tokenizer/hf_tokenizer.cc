#include "tokenizer/hf_tokenizer.h"

#include "awq/error.h"
#include "tokenizer/unicode.h"

namespace awq::tok {
namespace {

std::vector<AddedToken> parse_added(const json& list, const JsonPath& at) {
  std::vector<AddedToken> out;
  if (list.is_null()) return out;
  if (!list.is_array()) at.fail("expected a list");
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonPath a = at[i];
    const json& t = list[i];
    AddedToken tok;
    tok.id = as_id(field(t, "id", a), a / "id");
    tok.content = get_string(t, "content", a);
    if (tok.content.empty()) (a / "content").fail("empty token");
    if (invalid_utf8_at(tok.content) != std::string::npos) (a / "content").fail("not valid UTF-8");
    tok.special = get_bool(t, "special", false, a);
    tok.single_word = get_bool(t, "single_word", false, a);
    tok.lstrip = get_bool(t, "lstrip", false, a);
    tok.rstrip = get_bool(t, "rstrip", false, a);
    tok.normalized = get_bool(t, "normalized", !tok.special, a);
    out.push_back(std::move(tok));
  }
  return out;
}

const json& member_or_null(const json& doc, const char* key) {
  static const json null_value;
  auto it = doc.find(key);
  return it == doc.end() ? null_value : *it;
}

}  // namespace

HfTokenizer::HfTokenizer(const json& doc, const std::string& file) : file_(file) {
  const JsonPath root{file, ""};
  if (!doc.is_object()) root.fail("expected a JSON object (a tokenizer.json)");
  normalizer_ = parse_normalizer(member_or_null(doc, "normalizer"), root / "normalizer");
  pre_ = parse_pre_tokenizer(member_or_null(doc, "pre_tokenizer"), root / "pre_tokenizer");
  model_ = std::make_unique<BpeModel>(field(doc, "model", root), root / "model");
  post_ = parse_post_processor(member_or_null(doc, "post_processor"), root / "post_processor");
  decoder_ = parse_decoder(member_or_null(doc, "decoder"), root / "decoder");
  std::vector<AddedToken> added = parse_added(member_or_null(doc, "added_tokens"), root / "added_tokens");
  for (const auto& t : added)
    if (t.special) special_.insert(t.content);
  // Ids beyond the vocabulary would reach a model's embedding table: refuse them here.
  const size_t limit = 2 * (model_->size() + added.size()) + 1024;
  for (size_t i = 0; i < added.size(); ++i)
    if (size_t(added[i].id) >= limit) ((root / "added_tokens")[i] / "id").fail("id " + std::to_string(added[i].id) + " is far beyond the vocabulary");
  added_ = AddedTokens(std::move(added), normalizer_.get());
  if (post_)
    for (int32_t id : post_->process({}))
      if (size_t(id) >= vocab_size()) (root / "post_processor").fail("special token id " + std::to_string(id) + " is not in the vocabulary");
  bos_ = template_bos();
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const {
  if (size_t bad = invalid_utf8_at(text); bad != std::string_view::npos)
    throw Error("text is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  std::vector<Piece> pieces = added_.extract_and_normalize(text, normalizer_.get());
  if (pre_) pre_->pre_tokenize(pieces);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 2 + 4);
  for (const Piece& p : pieces) {
    if (p.token >= 0) ids.push_back(p.token);
    else model_->tokenize(p.text, ids);
  }
  return post_ ? post_->process(std::move(ids)) : ids;
}

const std::string* HfTokenizer::token_text(int32_t id) const {
  if (const AddedToken* t = added_.find_id(id)) return &t->content;
  return model_->id_to_token(id);
}

std::string HfTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* t = token_text(id);
    if (!t) throw Error(file_ + ": id " + std::to_string(id) + " is not in the vocabulary (" + std::to_string(vocab_size()) + " ids)");
    if (skip_special && special_.count(*t)) continue;
    tokens.push_back(*t);
  }
  std::string out;
  if (!decoder_) {  // the library joins with spaces when there is no decoder
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const auto& s : decoder_->decode_chain(std::move(tokens))) out += s;
  return out;
}

size_t HfTokenizer::vocab_size() const {
  size_t n = model_->size();
  for (const auto& t : added_.all()) n = std::max(n, size_t(t.id) + 1);
  return n;
}

std::string HfTokenizer::id_to_token(int32_t id) const {
  const std::string* t = token_text(id);
  if (!t) throw Error(file_ + ": id " + std::to_string(id) + " is not in the vocabulary");
  return *t;
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  if (const AddedToken* t = added_.find_content(token)) return t->id;
  return model_->token_to_id(token);
}

}  // namespace awq::tok
