// The tokenizer stored in a GGUF file's tokenizer.ggml.* metadata (see gguf_tokenizer.cc).
#pragma once
#include <memory>

#include "awq/tokenizer.h"

namespace awq {
class GgufFile;
}

namespace awq::tok {

// The tokenizer llama.cpp builds from f's tokenizer.ggml.* keys, with BOS/EOS from the same keys.
// Throws awq::Error naming the file and key for a missing or unsupported tokenizer.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& f);

}  // namespace awq::tok
