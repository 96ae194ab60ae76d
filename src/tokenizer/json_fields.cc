#include "tokenizer/json_fields.h"

#include "awq/error.h"
#include "tokenizer/unicode.h"

namespace awq::tok {

void JsonPath::fail(const std::string& what) const { awq::fail(file, "", (path.empty() ? "" : path + ": ") + what); }

const json& field(const json& obj, const char* key, const JsonPath& at) {
  if (!obj.is_object()) at.fail("expected an object");
  auto it = obj.find(key);
  if (it == obj.end()) (at / key).fail("missing");
  return *it;
}

std::string get_string(const json& obj, const char* key, const JsonPath& at) {
  const json& v = field(obj, key, at);
  if (!v.is_string()) (at / key).fail("expected a string");
  return v.get<std::string>();
}

std::optional<std::string> get_opt_string(const json& obj, const char* key, const JsonPath& at) {
  if (!obj.is_object()) at.fail("expected an object");
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) (at / key).fail("expected a string or null");
  return it->get<std::string>();
}

bool get_bool(const json& obj, const char* key, bool fallback, const JsonPath& at) {
  if (!obj.is_object()) at.fail("expected an object");
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) (at / key).fail("expected true or false");
  return it->get<bool>();
}

uint64_t get_uint(const json& obj, const char* key, uint64_t fallback, const JsonPath& at) {
  if (!obj.is_object()) at.fail("expected an object");
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number_unsigned()) (at / key).fail("expected a non-negative integer");
  return it->get<uint64_t>();
}

int32_t as_id(const json& v, const JsonPath& at) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() > uint64_t(INT32_MAX)) at.fail("expected a token id (an integer in [0, 2^31))");
  return int32_t(v.get<uint64_t>());
}

char32_t get_char(const json& obj, const char* key, const JsonPath& at) {
  const std::string s = get_string(obj, key, at);
  if (s.empty() || invalid_utf8_at(s) != std::string::npos) (at / key).fail("expected one character");
  size_t i = 0;
  const char32_t c = next_code_point(s, i);
  if (i != s.size()) (at / key).fail("expected one character, got \"" + s + "\"");
  return c;
}

std::string type_of(const json& obj, const JsonPath& at) { return get_string(obj, "type", at); }

}  // namespace awq::tok
