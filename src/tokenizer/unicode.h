// UTF-8 and Unicode helpers for the tokenizers: validation, code point iteration, Rust's lossy
// UTF-8 decoding, character classes as the Rust `regex` crate and `char` define them, and ICU
// normalization forms / lowercasing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace awq::tok {

// The offset of the first byte that is not part of valid UTF-8 (RFC 3629: no surrogates, no
// overlong forms, <= U+10FFFF), or npos when `s` is valid.
size_t invalid_utf8_at(std::string_view s);

// The length of the UTF-8 sequence that starts with `lead` (1 for a stray byte).
inline size_t utf8_seq_len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 1;
}
// Decodes the code point at s[i] (s valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view s, size_t& i);
// The code point that ends at s[end) (s valid UTF-8, end > 0); `start` gets its first byte.
char32_t prev_code_point(std::string_view s, size_t end, size_t& start);
void append_utf8(std::string& out, char32_t c);

// As Rust's String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// char::is_whitespace / regex \s: the Unicode White_Space property.
bool is_whitespace(char32_t c);
// regex \w (Unicode): Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
bool is_word_char(char32_t c);
// char::is_numeric: general categories Nd, Nl, No.
bool is_numeric(char32_t c);
// char::is_ascii_punctuation or Unicode punctuation (general category P*).
bool is_punctuation(char32_t c);

enum class NormForm { NFC, NFD, NFKC, NFKD };
// `s` (valid UTF-8) in the given normalization form (ICU).
std::string normalize(std::string_view s, NormForm form);
// Full Unicode lowercase mapping (as Rust's str::to_lowercase, final sigma included; ICU root locale).
std::string lowercase(std::string_view s);

}  // namespace awq::tok
