#include "tokenizer/unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

#include "awq/error.h"

namespace awq::tok {
namespace {

// The valid range of the second byte after `lead`, and the sequence length; len 0 = invalid lead.
struct LeadInfo {
  size_t len;
  unsigned char lo, hi;
};
LeadInfo lead_info(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// The length of the valid sequence at s[i], or 0 with `prefix` = the bytes of its maximal valid
// prefix (at least 1) when it is invalid or cut short.
size_t valid_seq_at(std::string_view s, size_t i, size_t& prefix) {
  const auto b = static_cast<unsigned char>(s[i]);
  const LeadInfo li = lead_info(b);
  prefix = 1;
  if (li.len == 1) return 1;
  if (li.len == 0) return 0;
  for (size_t k = 1; k < li.len; ++k) {
    if (i + k >= s.size()) return 0;
    const auto c = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (c >= li.lo && c <= li.hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return 0;
    prefix = k + 1;
  }
  return li.len;
}

std::u16string to_utf16(std::string_view s) {
  std::u16string out(s.size() + 1, u'\0');
  int32_t n = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &n, s.data(), int32_t(s.size()), &err);
  if (U_FAILURE(err)) throw Error(std::string("UTF-8 to UTF-16 conversion failed: ") + u_errorName(err));
  out.resize(size_t(n));
  return out;
}

std::string to_utf8(const std::u16string& s) {
  std::string out(s.size() * 3 + 1, '\0');
  int32_t n = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strToUTF8(out.data(), int32_t(out.size()), &n, reinterpret_cast<const UChar*>(s.data()), int32_t(s.size()), &err);
  if (U_FAILURE(err)) throw Error(std::string("UTF-16 to UTF-8 conversion failed: ") + u_errorName(err));
  out.resize(size_t(n));
  return out;
}

}  // namespace

size_t invalid_utf8_at(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t prefix = 0;
    const size_t n = valid_seq_at(s, i, prefix);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

char32_t next_code_point(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  const size_t n = utf8_seq_len(b);
  char32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n && i + k < s.size(); ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return c;
}

char32_t prev_code_point(std::string_view s, size_t end, size_t& start) {
  start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return next_code_point(s, i);
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t prefix = 0;
    const size_t n = valid_seq_at(s, i, prefix);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      i += prefix;
    }
  }
  return out;
}

bool is_whitespace(char32_t c) { return u_hasBinaryProperty(UChar32(c), UCHAR_WHITE_SPACE); }

bool is_word_char(char32_t c) {
  const auto ch = UChar32(c);
  return u_hasBinaryProperty(ch, UCHAR_ALPHABETIC) || (U_GET_GC_MASK(ch) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) ||
         u_hasBinaryProperty(ch, UCHAR_JOIN_CONTROL);
}

bool is_numeric(char32_t c) { return (U_GET_GC_MASK(UChar32(c)) & U_GC_N_MASK) != 0; }

bool is_punctuation(char32_t c) { return (U_GET_GC_MASK(UChar32(c)) & U_GC_P_MASK) != 0; }

std::string normalize(std::string_view s, NormForm form) {
  if (s.empty()) return {};
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = form == NormForm::NFC    ? unorm2_getNFCInstance(&err)
                          : form == NormForm::NFD  ? unorm2_getNFDInstance(&err)
                          : form == NormForm::NFKC ? unorm2_getNFKCInstance(&err)
                                                   : unorm2_getNFKDInstance(&err);
  if (U_FAILURE(err)) throw Error(std::string("ICU normalizer unavailable: ") + u_errorName(err));
  const std::u16string in = to_utf16(s);
  // NFKD can expand one UTF-16 unit into up to 18; retry once with the size ICU asks for.
  std::u16string out(in.size() * 4 + 16, u'\0');
  int32_t n_out = unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()),
                                   reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    err = U_ZERO_ERROR;
    out.assign(size_t(n_out) + 1, u'\0');
    n_out = unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()),
                             reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &err);
  }
  if (U_FAILURE(err)) throw Error(std::string("Unicode normalization failed: ") + u_errorName(err));
  out.resize(size_t(n_out));
  return to_utf8(out);
}

std::string lowercase(std::string_view s) {
  if (s.empty()) return {};
  const std::u16string in = to_utf16(s);
  std::u16string out(in.size() * 3 + 16, u'\0');
  UErrorCode err = U_ZERO_ERROR;
  int32_t n = u_strToLower(reinterpret_cast<UChar*>(out.data()), int32_t(out.size()),
                           reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()), "", &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    err = U_ZERO_ERROR;
    out.assign(size_t(n) + 1, u'\0');
    n = u_strToLower(reinterpret_cast<UChar*>(out.data()), int32_t(out.size()),
                     reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()), "", &err);
  }
  if (U_FAILURE(err)) throw Error(std::string("lowercasing failed: ") + u_errorName(err));
  out.resize(size_t(n));
  return to_utf8(out);
}

}  // namespace awq::tok
