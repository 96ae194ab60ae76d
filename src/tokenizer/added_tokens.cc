#include "tokenizer/added_tokens.h"

#include "tokenizer/unicode.h"

namespace awq::tok {
namespace {

// Rust regex \w$ on text[0, end): the last character is a word character.
bool ends_with_word(std::string_view s, size_t end) {
  if (end == 0) return false;
  size_t start = 0;
  return is_word_char(prev_code_point(s, end, start));
}
bool starts_with_word(std::string_view s, size_t begin) {
  if (begin >= s.size()) return false;
  return is_word_char(next_code_point(s, begin));
}
// Where the whitespace run that ends at `end` starts.
size_t space_run_start(std::string_view s, size_t end) {
  while (end > 0) {
    size_t start = 0;
    if (!is_whitespace(prev_code_point(s, end, start))) break;
    end = start;
  }
  return end;
}
// Where the whitespace run that starts at `begin` ends.
size_t space_run_end(std::string_view s, size_t begin) {
  while (begin < s.size()) {
    size_t i = begin;
    if (!is_whitespace(next_code_point(s, i))) break;
    begin = i;
  }
  return begin;
}

}  // namespace

void TokenTrie::add(std::string_view pattern, size_t token_index) {
  if (pattern.empty()) return;
  uint32_t n = 0;
  for (unsigned char c : pattern) {
    auto it = nodes_[n].next.find(c);
    if (it == nodes_[n].next.end()) {
      nodes_.push_back({});
      it = nodes_[n].next.emplace(c, uint32_t(nodes_.size() - 1)).first;
    }
    n = it->second;
  }
  if (nodes_[n].token == SIZE_MAX) nodes_[n].token = token_index;  // the first token with this text wins
}

std::pair<size_t, size_t> TokenTrie::longest_at(std::string_view text, size_t pos) const {
  std::pair<size_t, size_t> best{0, SIZE_MAX};
  uint32_t n = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = nodes_[n].next.find(static_cast<unsigned char>(text[i]));
    if (it == nodes_[n].next.end()) break;
    n = it->second;
    if (nodes_[n].token != SIZE_MAX) best = {i + 1 - pos, nodes_[n].token};
  }
  return best;
}

AddedTokens::AddedTokens(std::vector<AddedToken> tokens, const Normalizer* normalizer) : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    by_id_.emplace(t.id, i);
    if (!t.normalized) {
      raw_.add(t.content, i);
      continue;
    }
    std::string normed = t.content;
    bool at_start = true;
    if (normalizer) normalizer->normalize(normed, at_start);
    normalized_.add(normed, i);
  }
}

const AddedToken* AddedTokens::find_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::find_content(std::string_view content) const {
  for (const auto& t : tokens_)
    if (t.content == content) return &t;
  return nullptr;
}

// The library's AddedVocabulary::find_matches on one piece.
void AddedTokens::split(const Piece& piece, const TokenTrie& trie, std::vector<Piece>& out) const {
  const std::string_view s = piece.text;
  if (trie.empty()) {
    out.push_back(piece);
    return;
  }
  size_t emitted = 0;  // end of what is already in `out`
  for (size_t pos = 0; pos < s.size();) {
    const auto [len, index] = trie.longest_at(s, pos);
    if (len == 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;  // the matcher moves past every match, even one discarded below
    const AddedToken& t = tokens_[index];
    if (t.single_word) {
      const bool space_before = start == 0 || !ends_with_word(s, start);
      const bool space_after = stop == s.size() || !starts_with_word(s, stop);
      if (!space_before || !space_after) continue;
    }
    if (t.lstrip) start = std::max(space_run_start(s, start), emitted);
    if (t.rstrip) stop = space_run_end(s, stop);
    if (emitted < start) out.push_back({std::string(s.substr(emitted, start - emitted)), piece.at_start && emitted == 0, -1});
    out.push_back({std::string(s.substr(start, stop - start)), false, t.id});
    emitted = stop;
  }
  if (emitted < s.size()) out.push_back({std::string(s.substr(emitted)), piece.at_start && emitted == 0, -1});
}

std::vector<Piece> AddedTokens::extract_and_normalize(std::string_view text, const Normalizer* normalizer) const {
  std::vector<Piece> pieces;
  if (text.empty()) return pieces;
  split({std::string(text), true, -1}, raw_, pieces);
  split_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
    if (normalizer) normalizer->normalize(p.text, p.at_start);
    if (p.text.empty()) return;
    split(p, normalized_, out);
  });
  return pieces;
}

}  // namespace awq::tok
