// tokenizer.json normalizers: Sequence, Prepend, Replace (string or regex), NFC, NFD, NFKC, NFKD,
// Lowercase, Strip. Applied to each piece of text between added tokens.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/json_fields.h"

namespace awq::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `s` (valid UTF-8). `at_start` is cleared when the piece no longer begins at the
  // original text's first character (Strip removed it).
  virtual void normalize(std::string& s, bool& at_start) const = 0;
};

// The normalizer a tokenizer.json "normalizer" value describes; null for JSON null.
// Throws awq::Error naming the file and key for an unknown type or a bad field.
std::unique_ptr<Normalizer> parse_normalizer(const json& j, const JsonPath& at);

}  // namespace awq::tok
