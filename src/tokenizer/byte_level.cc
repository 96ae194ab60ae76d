#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode.h"

namespace awq::tok {
namespace {

// code point of each byte
std::array<char32_t, 256> make_table() {
  std::array<char32_t, 256> t{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    t[size_t(b)] = printable ? char32_t(b) : next++;
  }
  return t;
}
const std::array<char32_t, 256>& table() {
  static const auto t = make_table();
  return t;
}

}  // namespace

const std::string& byte_to_char(uint8_t b) {
  static const std::array<std::string, 256> utf8 = [] {
    std::array<std::string, 256> s;
    for (int i = 0; i < 256; ++i) append_utf8(s[size_t(i)], table()[size_t(i)]);
    return s;
  }();
  return utf8[b];
}

int char_to_byte(char32_t c) {
  static const std::array<int16_t, 512> inverse = [] {
    std::array<int16_t, 512> inv;
    inv.fill(-1);
    for (int b = 0; b < 256; ++b) inv[table()[size_t(b)]] = int16_t(b);
    return inv;
  }();
  return c < 512 ? inverse[c] : -1;
}

}  // namespace awq::tok
