// A tokenizer.json tokenizer: added tokens, normalizer, pre-tokenizer, BPE model, post-processor
// and decoder, run in the order and with the rules of the tokenizers library.
#pragma once
#include <memory>
#include <set>
#include <string>

#include "awq/tokenizer.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoders.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processors.h"
#include "tokenizer/pre_tokenizers.h"

namespace awq::tok {

class HfTokenizer final : public Tokenizer {
 public:
  // Parses a tokenizer.json document; `file` names it in errors.
  HfTokenizer(const json& doc, const std::string& file);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override;
  size_t vocab_size() const override;
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::vector<int32_t> eos_ids() const override { return eos_; }
  std::string id_to_token(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;

  // The first special id the post-processor puts before the text (a template's BOS), if any.
  std::optional<int32_t> template_bos() const { return post_ ? post_->leading_special() : std::nullopt; }
  // Replaces the post-processor by `before` $A `after` (transformers' Llama/Gemma fast tokenizers
  // rebuild it from add_bos_token / add_eos_token).
  void set_affixes(std::vector<int32_t> before, std::vector<int32_t> after) {
    post_ = make_affix_processor(std::move(before), std::move(after));
  }
  void set_special_ids(std::optional<int32_t> bos, std::vector<int32_t> eos) {
    bos_ = bos;
    eos_ = std::move(eos);
  }

 private:
  const std::string* token_text(int32_t id) const;

  std::string file_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PostProcessor> post_;
  std::unique_ptr<Decoder> decoder_;
  AddedTokens added_;
  std::set<std::string, std::less<>> special_;  // contents of the added tokens marked special
  std::optional<int32_t> bos_;
  std::vector<int32_t> eos_;
};

}  // namespace awq::tok
