// The BPE model of tokenizer.json: vocabulary, ranked merges (as "a b" strings or [a, b] pairs),
// unk / fuse_unk, byte_fallback (<0xXX> tokens), ignore_merges, continuing_subword_prefix and
// end_of_word_suffix; merged the way the tokenizers library merges (lowest rank first, leftmost
// first among equal ranks, with a priority queue over a linked list of symbols).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_fields.h"

namespace awq::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // Parses tokenizer.json's "model" object; throws awq::Error naming the file and key for a
  // non-BPE model, a merge of tokens not in the vocabulary, a bad id, dropout > 0.
  BpeModel(const json& model, const JsonPath& at);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The vocabulary entry of `id`, or null when the vocabulary has none.
  const std::string* id_to_token(int32_t id) const;
  // One more than the largest id.
  size_t size() const { return tokens_.size(); }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;
  void apply_merges(std::vector<int32_t>& ids) const;

  struct Merge {
    int32_t rank, new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  Vocab vocab_;
  std::vector<std::string> tokens_;  // by id
  std::vector<bool> has_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::string prefix_, suffix_;  // continuing_subword_prefix, end_of_word_suffix
  int32_t byte_ids_[256];        // <0xXX> ids, -1 where absent

  // Words already merged (bounded; the library keeps such a cache too).
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace awq::tok
