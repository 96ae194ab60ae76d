// A sentencepiece tokenizer.model, through libsentencepiece: used when a model directory has no
// tokenizer.json. encode() = sentencepiece's Encode, with BOS / EOS added as tokenizer_config.json's
// add_bos_token (default true, as LlamaTokenizer) / add_eos_token (default false) say. Special tokens
// written in the text are not matched (sentencepiece encodes "<s>" as text).
#pragma once
#include <memory>
#include <string>

#include "awq/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace awq::tok {

class SpTokenizer final : public Tokenizer {
 public:
  // Loads the serialized model; `file` names it in errors.
  SpTokenizer(const std::string& serialized, const std::string& file, bool add_bos, bool add_eos);
  ~SpTokenizer() override;

  std::vector<int32_t> encode(std::string_view text) const override;
  // skip_special drops control tokens (<s>, </s>); otherwise each is written as its piece text.
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override;
  size_t vocab_size() const override;
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::vector<int32_t> eos_ids() const override { return eos_; }
  std::string id_to_token(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;

  std::optional<int32_t> model_bos() const;
  std::optional<int32_t> model_eos() const;
  void set_special_ids(std::optional<int32_t> bos, std::vector<int32_t> eos) {
    bos_ = bos;
    eos_ = std::move(eos);
  }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string file_;
  bool add_bos_, add_eos_;
  std::optional<int32_t> bos_;
  std::vector<int32_t> eos_;
};

}  // namespace awq::tok
