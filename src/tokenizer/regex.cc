#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "awq/error.h"
#include "tokenizer/unicode.h"

namespace awq::tok {

namespace {

// Oniguruma's Unicode classes, where PCRE2 (with UCP) differs: \s is White_Space (PCRE2 adds
// U+180E), \w is Alphabetic|Mark|Decimal_Number|Connector_Punctuation (PCRE2 10.42: letters, numbers, _),
// \h is a hex digit (PCRE2: horizontal space).
constexpr const char* kSpace = R"(\t-\r\x{85}\p{Z})";
constexpr const char* kWord = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc})";
constexpr const char* kHex = "0-9a-fA-F";

// Rewrites \s \S \w \W \h \H of an Oniguruma pattern into explicit classes for PCRE2 (inside a
// [...] class only the positive forms can be spelled out; the negated ones are kept).
std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      if (e == 'Q') {  // \Q...\E: copied as it is
        const size_t end = p.find("\\E", i + 1);
        const size_t stop = end == std::string_view::npos ? p.size() : end + 2;
        out += '\\';
        out.append(p.substr(i, stop - i));
        i = stop - 1;
        continue;
      }
      const char* cls = e == 's' || e == 'S' ? kSpace : e == 'w' || e == 'W' ? kWord : e == 'h' || e == 'H' ? kHex : nullptr;
      const bool negated = e == 'S' || e == 'W' || e == 'H';
      if (cls && !in_class) out += std::string(negated ? "[^" : "[") + cls + "]";
      else if (cls && !negated) out += cls;
      else {
        out += '\\';
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];  // a leading ] is a literal
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // [:alpha:]
      const size_t end = p.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(p.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

struct Regex::Code {
  pcre2_code* re = nullptr;
  ~Code() { pcre2_code_free(re); }
};

Regex::Regex(std::string_view pattern, bool literal) : code_(std::make_unique<Code>()) {
  if (invalid_utf8_at(pattern) != std::string_view::npos) throw Error("regex pattern is not valid UTF-8");
  int err = 0;
  PCRE2_SIZE at = 0;
  const uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  const std::string source = literal ? std::string(pattern) : onig_to_pcre2(pattern);
  code_->re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), opts, &err, &at, nullptr);
  if (!code_->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error("regex \"" + std::string(pattern) + "\" does not compile (as \"" + source + "\", offset " + std::to_string(at) + "): " +
                reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code_->re, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
}

Regex::~Regex() = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->re, nullptr);
  if (!md) throw Error("out of memory for regex match data");
  size_t pos = 0;
  while (pos <= text.size()) {
    const int rc = pcre2_match(code_->re, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                               PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw Error(std::string("regex match failed: ") + reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t s = ov[0], e = ov[1];
    if (s > e || e > text.size() || s < pos) {  // \K in a lookaround can report such a match
      pcre2_match_data_free(md);
      throw Error("regex reported a match that ends before it starts (\\K is not supported)");
    }
    out.emplace_back(s, e);
    if (e > s) {
      pos = e;
    } else {  // empty match: step over one character
      if (e >= text.size()) break;
      pos = e + utf8_seq_len(static_cast<unsigned char>(text[e]));
    }
  }
  pcre2_match_data_free(md);
  return out;
}

}  // namespace awq::tok
