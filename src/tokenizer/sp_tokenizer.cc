#include "tokenizer/sp_tokenizer.h"

#include <sentencepiece_processor.h>

#include "awq/error.h"
#include "tokenizer/unicode.h"

namespace awq::tok {

SpTokenizer::SpTokenizer(const std::string& serialized, const std::string& file, bool add_bos, bool add_eos)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), file_(file), add_bos_(add_bos), add_eos_(add_eos) {
  const auto status = sp_->LoadFromSerializedProto(serialized);
  if (!status.ok()) throw Error(file + ": not a sentencepiece model: " + status.ToString());
  if (sp_->GetPieceSize() <= 0) throw Error(file + ": sentencepiece model has no pieces");
  bos_ = model_bos();
  if (auto e = model_eos()) eos_ = {*e};
}

SpTokenizer::~SpTokenizer() = default;

std::optional<int32_t> SpTokenizer::model_bos() const {
  const int id = sp_->bos_id();
  return id >= 0 && id < sp_->GetPieceSize() ? std::optional<int32_t>(id) : std::nullopt;
}

std::optional<int32_t> SpTokenizer::model_eos() const {
  const int id = sp_->eos_id();
  return id >= 0 && id < sp_->GetPieceSize() ? std::optional<int32_t>(id) : std::nullopt;
}

std::vector<int32_t> SpTokenizer::encode(std::string_view text) const {
  if (size_t bad = invalid_utf8_at(text); bad != std::string_view::npos)
    throw Error("text is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw Error(file_ + ": sentencepiece could not encode the text: " + status.ToString());
  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  if (add_bos_ && model_bos()) out.push_back(*model_bos());
  out.insert(out.end(), ids.begin(), ids.end());
  if (add_eos_ && model_eos()) out.push_back(*model_eos());
  return out;
}

std::string SpTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const int n = sp_->GetPieceSize();
  std::string out;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    std::string text;
    const auto status = sp_->Decode(run, &text);
    if (!status.ok()) throw Error(file_ + ": sentencepiece could not decode: " + status.ToString());
    out += text;
    run.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= n) throw Error(file_ + ": id " + std::to_string(id) + " is not in the vocabulary (" + std::to_string(n) + " ids)");
    if (sp_->IsControl(id)) {
      if (skip_special) continue;
      flush();
      out += sp_->IdToPiece(id);
      continue;
    }
    run.push_back(id);
  }
  flush();
  return out;
}

size_t SpTokenizer::vocab_size() const { return size_t(sp_->GetPieceSize()); }

std::string SpTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= sp_->GetPieceSize()) throw Error(file_ + ": id " + std::to_string(id) + " is not in the vocabulary");
  return sp_->IdToPiece(id);
}

std::optional<int32_t> SpTokenizer::token_to_id(std::string_view token) const {
  const int id = sp_->PieceToId(token);
  if (id < 0 || id >= sp_->GetPieceSize()) return std::nullopt;
  if (id == sp_->unk_id() && sp_->IdToPiece(id) != token) return std::nullopt;  // PieceToId answers unk for unknown pieces
  return id;
}

}  // namespace awq::tok
