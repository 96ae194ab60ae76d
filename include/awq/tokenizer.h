// Tokenizers: text <-> token ids exactly as Hugging Face's `tokenizers` library (tokenizer.json)
// or sentencepiece (tokenizer.model) produce them. No Python, no network.
//
// Supported tokenizer.json pieces: BPE models (byte-level, or Metaspace/sentencepiece style with
// byte fallback), merges as "a b" strings or [a, b] pairs, ignore_merges, unk; normalizers
// (Sequence, Prepend, Replace, NFC, Lowercase, Strip); pre-tokenizers (Sequence, Split with a
// regex, ByteLevel, Metaspace, Digits, Whitespace); post-processors (TemplateProcessing,
// ByteLevel, Sequence); decoders (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip,
// Sequence); added tokens with lstrip/rstrip/normalized/single_word/special.
// Anything else in the file is rejected with an awq::Error naming the file and the key.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace awq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // The ids Hugging Face's tokenizer(text)["input_ids"] gives: post-processor special tokens
  // (e.g. BOS) included.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The text of ids; skip_special drops special/added-special tokens (as HF
  // decode(skip_special_tokens=True)). Throws awq::Error for an id outside the vocabulary.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = false) const = 0;
  // The number of ids (model vocabulary plus added tokens): every valid id is < vocab_size().
  virtual size_t vocab_size() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  // End-of-sequence ids, from generation_config.json, then tokenizer_config.json, then config.json
  // (all found, deduplicated, in that order). Empty when none names one.
  virtual std::vector<int32_t> eos_ids() const = 0;

  // The text of one id as stored in the vocabulary (no decoding); throws awq::Error when out of range.
  virtual std::string id_to_token(int32_t id) const = 0;
  // The id of a vocabulary or added token, if present.
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
};

// Loads MODEL_DIR/tokenizer.json, else MODEL_DIR/tokenizer.model (libsentencepiece), plus the
// optional tokenizer_config.json, generation_config.json and config.json for BOS/EOS. A GGUF file
// gives the tokenizer llama.cpp builds from its tokenizer.ggml.* keys: byte-level BPE ("gpt2", with
// a pre-tokenizer name llama.cpp and we both know) or sentencepiece-style ("llama": tokens, scores);
// others are refused naming the key.
// Throws awq::Error naming the file on anything missing, malformed or unsupported.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& model_dir);

// Parses a tokenizer.json document given as text (`name` is used in error messages).
// The model directory's other configs are not read: eos_ids() is empty.
std::unique_ptr<Tokenizer> parse_tokenizer_json(std::string_view json_text, const std::string& name);

}  // namespace awq
