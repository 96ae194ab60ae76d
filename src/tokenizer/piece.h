// A piece of the text on its way through the tokenizer.json pipeline (added tokens, normalizer,
// pre-tokenizer, model), as the tokenizers library's PreTokenizedString splits.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace awq::tok {

struct Piece {
  std::string text;
  // The piece starts at offset 0 of the original text (Metaspace's prepend_scheme "first").
  bool at_start = false;
  // An added token's id when the piece is one: it passes through unchanged. -1 otherwise.
  int32_t token = -1;
};

// Replaces every piece that is not an added token by the pieces `split` makes of it (empty ones
// dropped, as the library drops them). `split` gets the piece and appends to the output.
inline void split_pieces(std::vector<Piece>& pieces, const std::function<void(Piece&, std::vector<Piece>&)>& split) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (Piece& p : pieces) {
    if (p.token >= 0) {
      out.push_back(std::move(p));
      continue;
    }
    const size_t before = out.size();
    split(p, out);
    size_t w = before;
    for (size_t r = before; r < out.size(); ++r) {
      if (out[r].text.empty() && out[r].token < 0) continue;
      if (w != r) out[w] = std::move(out[r]);
      ++w;
    }
    out.resize(w);
  }
  pieces = std::move(out);
}

}  // namespace awq::tok
