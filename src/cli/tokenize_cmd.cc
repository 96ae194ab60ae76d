// awq tokenize: text -> {"ids": [...]} with the tokenizer of a model directory, or back (--decode).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "awq/error.h"
#include "awq/tokenizer.h"
#include "cli/args.h"
#include "cli/commands.h"

namespace awq::cli {
namespace {

std::string read_input(const std::string& file) {
  if (file.empty() || file == "-") {
    std::ios::sync_with_stdio(false);
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }
  return read_text_file(file, "a text file");
}

int32_t to_id(const nlohmann::json& v, const std::string& src) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
    throw Error(src + ": " + v.dump() + " is not a token id (a non-negative integer)");
  return int32_t(v.get<int64_t>());
}

// {"ids": [...]}, a JSON list, or integers separated by spaces / commas / newlines.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& src) {
  std::vector<int32_t> ids;
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    const nlohmann::json* list = &j;
    if (j.is_object()) {
      if (!j.contains("ids")) throw Error(src + ": expected {\"ids\": [...]} or a list of ids");
      list = &j["ids"];
    }
    if (!list->is_array()) throw Error(src + ": expected {\"ids\": [...]} or a list of ids");
    for (const auto& v : *list) ids.push_back(to_id(v, src));
    return ids;
  }
  std::string tok;
  auto flush = [&] {
    if (tok.empty()) return;
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size() || v < 0 || v > INT32_MAX) throw Error(src + ": \"" + tok + "\" is not a token id (a non-negative integer)");
    ids.push_back(int32_t(v));
    tok.clear();
  };
  for (char c : text) {
    if (c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t') flush();
    else tok += c;
  }
  flush();
  return ids;
}

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string s = "{\"ids\": [";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]}\n";
}

}  // namespace

Action add_tokenize(CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "Print the token ids of a text ({\"ids\": [...]}, BOS etc. included), or decode ids");
  struct Args {
    std::string model, text;
    bool decode = false, skip_special = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("MODEL", a->model, "model directory with tokenizer.json or tokenizer.model (or that file)")->required();
  sub->add_option("--text", a->text, "read the text (or, with --decode, the ids) from FILE instead of stdin");
  sub->add_flag("--decode", a->decode, "read ids ({\"ids\": [...]} or a list of integers) and print their text");
  sub->add_flag("--skip-special", a->skip_special, "with --decode: leave out special tokens (BOS, EOS, ...)");
  return [a]() {
    const auto tok = load_tokenizer(a->model);
    const std::string src = a->text.empty() ? "stdin" : a->text;
    const std::string input = read_input(a->text);
    std::string out;
    if (a->decode) out = tok->decode(parse_ids(input, src), a->skip_special);
    else out = ids_json(tok->encode(input));
    std::fwrite(out.data(), 1, out.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  };
}

}  // namespace awq::cli
