#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace awq::tok {
namespace {

constexpr size_t kCacheEntries = 50000;
constexpr size_t kCacheMaxWordBytes = 256;

void parse_vocab(const json& v, const JsonPath& at, Vocab& vocab, std::vector<std::string>& tokens, std::vector<bool>& has) {
  if (!v.is_object()) at.fail("expected an object of token: id");
  int64_t max_id = -1;
  vocab.reserve(v.size());
  for (auto it = v.begin(); it != v.end(); ++it) {
    const int32_t id = as_id(it.value(), at / it.key());
    if (invalid_utf8_at(it.key()) != std::string::npos) at.fail("a token is not valid UTF-8");
    vocab.emplace(it.key(), id);
    max_id = std::max<int64_t>(max_id, id);
  }
  // Real vocabularies are dense; refuse ids that would make the id table absurdly large.
  if (max_id >= int64_t(2 * v.size() + 1024)) at.fail("ids are sparse (largest " + std::to_string(max_id) + " for " + std::to_string(v.size()) + " tokens)");
  tokens.assign(size_t(max_id + 1), {});
  has.assign(size_t(max_id + 1), false);
  for (const auto& [tok, id] : vocab) {
    if (has[size_t(id)]) at.fail("id " + std::to_string(id) + " is given to two tokens");
    tokens[size_t(id)] = tok;
    has[size_t(id)] = true;
  }
}

// One merge from either JSON form: "a b" or ["a", "b"].
std::pair<std::string, std::string> parse_merge(const json& m, const JsonPath& at) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) at.fail("expected \"a b\" (two tokens and one space)");
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) return {m[0].get<std::string>(), m[1].get<std::string>()};
  at.fail("expected \"a b\" or [\"a\", \"b\"]");
}

}  // namespace

BpeModel::BpeModel(const json& model, const JsonPath& at) {
  if (!model.is_object()) at.fail("expected an object");
  if (model.contains("type") && type_of(model, at) != "BPE")
    (at / "type").fail("unsupported model \"" + type_of(model, at) + "\" (only BPE is supported)");
  parse_vocab(field(model, "vocab", at), at / "vocab", vocab_, tokens_, has_token_);
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    if (!model["dropout"].is_number() || model["dropout"].get<double>() != 0.0) (at / "dropout").fail("BPE dropout is not supported");
  }
  prefix_ = get_opt_string(model, "continuing_subword_prefix", at).value_or("");
  suffix_ = get_opt_string(model, "end_of_word_suffix", at).value_or("");
  fuse_unk_ = get_bool(model, "fuse_unk", false, at);
  byte_fallback_ = get_bool(model, "byte_fallback", false, at);
  ignore_merges_ = get_bool(model, "ignore_merges", false, at);
  if (auto unk = get_opt_string(model, "unk_token", at)) {
    auto id = token_to_id(*unk);
    if (!id) (at / "unk_token").fail("\"" + *unk + "\" is not in the vocabulary");
    unk_id_ = *id;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_ids_[b] = token_to_id(name).value_or(-1);
  }
  const json& merges = field(model, "merges", at);
  if (!merges.is_array()) (at / "merges").fail("expected a list");
  merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const JsonPath mat = (at / "merges")[i];
    const auto [a, b] = parse_merge(merges[i], mat);
    const auto ia = token_to_id(a), ib = token_to_id(b);
    if (!ia || !ib) mat.fail("token \"" + (ia ? b : a) + "\" is not in the vocabulary");
    if (b.compare(0, prefix_.size(), prefix_) != 0) mat.fail("\"" + b + "\" lacks the continuing_subword_prefix");
    const auto merged = token_to_id(a + b.substr(prefix_.size()));
    if (!merged) mat.fail("merged token \"" + a + b.substr(prefix_.size()) + "\" is not in the vocabulary");
    merges_[pair_key(*ia, *ib)] = {int32_t(i), *merged};  // a repeated pair keeps its last rank
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= tokens_.size() || !has_token_[size_t(id)]) return nullptr;
  return &tokens_[size_t(id)];
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = token_to_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  apply_merges(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() < kCacheEntries) cache_.emplace(std::string(word), std::move(ids));
  }
}

// The initial symbols: one per character (with prefix / suffix), else its <0xXX> bytes, else unk.
void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& ids) const {
  int32_t pending_unk = -1;  // an unk not yet emitted (fused with the next ones); -1 none
  std::string s;
  for (size_t i = 0; i < w.size();) {
    const size_t begin = i;
    i += utf8_seq_len(static_cast<unsigned char>(w[i]));
    if (i > w.size()) i = w.size();
    s.clear();
    if (begin > 0) s += prefix_;
    s.append(w.substr(begin, i - begin));
    if (i == w.size()) s += suffix_;
    if (auto id = token_to_id(s)) {
      if (pending_unk >= 0) ids.push_back(pending_unk);
      pending_unk = -1;
      ids.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : s) all = all && byte_ids_[b] >= 0;
      if (all) {  // (an unk still pending is emitted after these bytes, as the library does)
        for (unsigned char b : s) ids.push_back(byte_ids_[b]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) ids.push_back(pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk >= 0) ids.push_back(pending_unk);
}

void BpeModel::apply_merges(std::vector<int32_t>& ids) const {
  const size_t n = ids.size();
  if (n < 2 || merges_.empty()) return;
  struct Sym {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Sym> sym(n);
  for (size_t i = 0; i < n; ++i) sym[i] = {ids[i], int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1, true};
  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
  auto push = [&](int32_t pos) {
    const int32_t next = sym[size_t(pos)].next;
    if (next < 0) return;
    auto it = merges_.find(pair_key(sym[size_t(pos)].id, sym[size_t(next)].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
  while (!queue.empty()) {
    const Cand top = queue.top();
    queue.pop();
    Sym& left = sym[size_t(top.pos)];
    if (!left.alive || left.next < 0) continue;
    const Sym right = sym[size_t(left.next)];
    // Stale entry: the pair at this position changed since it was queued.
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    sym[size_t(left.next)].alive = false;
    left.id = top.new_id;
    left.next = right.next;
    if (right.next >= 0) sym[size_t(right.next)].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  ids.clear();
  for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) ids.push_back(sym[size_t(i)].id);
}

}  // namespace awq::tok
