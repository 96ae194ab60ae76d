#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "awq/error.h"
#include "tokenizer/unicode.h"

namespace awq::tok {

struct Regex::Code {
  pcre2_code* re = nullptr;
  ~Code() { pcre2_code_free(re); }
};

Regex::Regex(std::string_view pattern, bool literal) : code_(std::make_unique<Code>()) {
  if (invalid_utf8_at(pattern) != std::string_view::npos) throw Error("regex pattern is not valid UTF-8");
  int err = 0;
  PCRE2_SIZE at = 0;
  const uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  code_->re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err, &at, nullptr);
  if (!code_->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error("regex \"" + std::string(pattern) + "\" does not compile at offset " + std::to_string(at) + ": " +
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
