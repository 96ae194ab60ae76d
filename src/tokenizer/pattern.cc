#include "tokenizer/pattern.h"

#include "awq/error.h"

namespace awq::tok {

std::unique_ptr<Regex> parse_pattern(const json& j, const JsonPath& at) {
  if (!j.is_object() || j.size() != 1) at.fail("expected {\"String\": ...} or {\"Regex\": ...}");
  const bool literal = j.contains("String");
  if (!literal && !j.contains("Regex")) at.fail("expected {\"String\": ...} or {\"Regex\": ...}");
  const char* key = literal ? "String" : "Regex";
  const std::string p = get_string(j, key, at);
  try {
    return std::make_unique<Regex>(p, literal);
  } catch (const Error& e) {
    (at / key).fail(e.what());
  }
}

}  // namespace awq::tok
