// Fuzzes the tokenizer.json parser and, when a document parses, encode and decode on fixed texts.
#include <cstdint>
#include <string>
#include <string_view>

#include "awq/error.h"
#include "awq/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view doc(reinterpret_cast<const char*>(data), size);
  try {
    const auto tok = awq::parse_tokenizer_json(doc, "fuzz.json");
    static const char* const kTexts[] = {"", " ", "Hello world <s> </s> <|endoftext|>", "  a\t\n\n b  ", "Café 日本 😀‍🔥 123456",
                                         "\xE2\x96\x81<0x41>"};
    for (const char* text : kTexts) {
      const auto ids = tok->encode(text);
      for (int32_t id : ids)
        if (id < 0 || size_t(id) >= tok->vocab_size()) __builtin_trap();  // encode must stay inside the vocabulary
      (void)tok->decode(ids, false);
      (void)tok->decode(ids, true);
    }
    for (int32_t id = 0; id < 64 && size_t(id) < tok->vocab_size(); ++id) {
      try {
        (void)tok->decode(std::vector<int32_t>{id}, false);
      } catch (const awq::Error&) {  // a hole in the ids
      }
    }
  } catch (const awq::Error&) {
  }
  return 0;
}
