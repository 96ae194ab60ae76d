// A compiled PCRE2 pattern (UTF-8, Unicode properties) for the tokenizer.json regexes, which the
// tokenizers library runs with Oniguruma: \s, \w, \p{L}, \p{N} and case-insensitive groups mean the
// Unicode classes in both.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace awq::tok {

class Regex {
 public:
  // Compiles `pattern`, or matches it literally when `literal`. Throws awq::Error with PCRE2's
  // message and the offset in the pattern.
  Regex(std::string_view pattern, bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match in `text` (valid UTF-8), left to right, as [start, end) byte
  // offsets. After an empty match the search resumes one character further on (as Oniguruma's
  // iteration does), and the empty match is reported.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Code;
  std::unique_ptr<Code> code_;
};

}  // namespace awq::tok
