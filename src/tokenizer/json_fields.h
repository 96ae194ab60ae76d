// Typed access to tokenizer.json fields; every failure is an awq::Error that names the file and the
// JSON path ("tokenizer.json: model.vocab: expected an object").
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace awq::tok {

using nlohmann::json;

// Where in which file a JSON value lives, for error messages.
struct JsonPath {
  std::string file, path;
  JsonPath operator/(const std::string& key) const { return {file, path.empty() ? key : path + "." + key}; }
  JsonPath operator[](size_t i) const { return {file, path + "[" + std::to_string(i) + "]"}; }
  [[noreturn]] void fail(const std::string& what) const;
};

const json& field(const json& obj, const char* key, const JsonPath& at);  // required
std::string get_string(const json& obj, const char* key, const JsonPath& at);
std::optional<std::string> get_opt_string(const json& obj, const char* key, const JsonPath& at);  // absent/null: none
bool get_bool(const json& obj, const char* key, bool fallback, const JsonPath& at);
uint64_t get_uint(const json& obj, const char* key, uint64_t fallback, const JsonPath& at);
// A token id: an integer in [0, 2^31).
int32_t as_id(const json& v, const JsonPath& at);
// A one-character string (char in the Rust structs, e.g. Metaspace's replacement).
char32_t get_char(const json& obj, const char* key, const JsonPath& at);
// The "type" of a component object.
std::string type_of(const json& obj, const JsonPath& at);

}  // namespace awq::tok
