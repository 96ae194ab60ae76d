// GPT-2's byte-to-character table (the ByteLevel pre-tokenizer and decoder): printable bytes map to
// themselves, the other 68 to U+0100 upward, so every byte sequence is a printable string.
#pragma once
#include <cstdint>
#include <string>

namespace awq::tok {

// The UTF-8 of the character that stands for byte `b`.
const std::string& byte_to_char(uint8_t b);
// The byte a character stands for, or -1 when it stands for none.
int char_to_byte(char32_t c);

}  // namespace awq::tok
