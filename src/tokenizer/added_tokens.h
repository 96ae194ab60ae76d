// Added tokens of tokenizer.json ("added_tokens"): found in the text before anything else, as the
// tokenizers library's AddedVocabulary finds them: leftmost-longest, non-overlapping; tokens with
// normalized=false are looked for in the raw text, the others (by their normalized form) in each
// normalized piece; single_word, lstrip and rstrip as the library applies them.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/normalizers.h"
#include "tokenizer/piece.h"

namespace awq::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = true;
};

// A byte trie of patterns, matched leftmost-longest.
class TokenTrie {
 public:
  void add(std::string_view pattern, size_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // The longest pattern starting at text[pos]: its length and token index; {0, npos} when none.
  std::pair<size_t, size_t> longest_at(std::string_view text, size_t pos) const;

 private:
  struct Node {
    std::map<unsigned char, uint32_t> next;
    size_t token = SIZE_MAX;
  };
  std::vector<Node> nodes_{Node{}};
};

class AddedTokens {
 public:
  AddedTokens() = default;
  // Builds the tries; the normalized ones use each token's content passed through `normalizer`.
  AddedTokens(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits `text` into added-token pieces and normalized text pieces (empty ones dropped).
  std::vector<Piece> extract_and_normalize(std::string_view text, const Normalizer* normalizer) const;

  const AddedToken* find_id(int32_t id) const;
  const AddedToken* find_content(std::string_view content) const;
  const std::vector<AddedToken>& all() const { return tokens_; }

 private:
  void split(const Piece& piece, const TokenTrie& trie, std::vector<Piece>& out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  TokenTrie raw_, normalized_;
};

}  // namespace awq::tok
