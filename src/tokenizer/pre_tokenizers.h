// tokenizer.json pre-tokenizers: Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace,
// WhitespaceSplit, Punctuation. Each splits the pieces between added tokens into words for the model.
#pragma once
#include <memory>
#include <vector>

#include "tokenizer/json_fields.h"
#include "tokenizer/piece.h"

namespace awq::tok {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// The pre-tokenizer a tokenizer.json "pre_tokenizer" value describes; null for JSON null.
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const JsonPath& at);

// The regex of GPT-2's ByteLevel pre-tokenizer (use_regex: true).
extern const char* const kGpt2Pattern;

}  // namespace awq::tok
