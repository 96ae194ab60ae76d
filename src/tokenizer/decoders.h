// tokenizer.json decoders: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence.
// Each maps the list of token strings to a new list (the library's decode_chain); the text is the
// concatenation of the final list.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace awq::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// The decoder a tokenizer.json "decoder" value describes; null for JSON null.
std::unique_ptr<Decoder> parse_decoder(const json& j, const JsonPath& at);

}  // namespace awq::tok
