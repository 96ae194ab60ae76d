#include "tokenizer/post_processors.h"

namespace awq::tok {
namespace {

// ids before and after the sequence.
class AffixProcessor final : public PostProcessor {
 public:
  AffixProcessor(std::vector<int32_t> before, std::vector<int32_t> after) : before_(std::move(before)), after_(std::move(after)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    std::vector<int32_t> out = before_;
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), after_.begin(), after_.end());
    return out;
  }
  std::optional<int32_t> leading_special() const override {
    if (before_.empty()) return std::nullopt;
    return before_.front();
  }

 private:
  std::vector<int32_t> before_, after_;
};

// A template may repeat $A; kept general: a list of parts, -1 standing for the sequence.
class TemplateProcessor final : public PostProcessor {
 public:
  explicit TemplateProcessor(std::vector<std::vector<int32_t>> parts) : parts_(std::move(parts)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    std::vector<int32_t> out;
    for (const auto& p : parts_) {
      if (p.empty()) out.insert(out.end(), ids.begin(), ids.end());
      else out.insert(out.end(), p.begin(), p.end());
    }
    return out;
  }
  std::optional<int32_t> leading_special() const override {
    if (parts_.empty() || parts_.front().empty()) return std::nullopt;
    return parts_.front().front();
  }

 private:
  std::vector<std::vector<int32_t>> parts_;  // empty = the sequence
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    for (const auto& p : parts_) ids = p->process(std::move(ids));
    return ids;
  }
  std::optional<int32_t> leading_special() const override {
    for (const auto& p : parts_)
      if (auto id = p->leading_special()) return id;
    return std::nullopt;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

std::unique_ptr<PostProcessor> parse_template(const json& j, const JsonPath& at) {
  const json& single = field(j, "single", at);
  const json& specials = field(j, "special_tokens", at);
  if (!single.is_array()) (at / "single").fail("expected a list");
  if (!specials.is_object()) (at / "special_tokens").fail("expected an object");
  std::vector<std::vector<int32_t>> parts;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonPath pat = (at / "single")[i];
    const json& piece = single[i];
    if (piece.is_object() && piece.contains("Sequence")) {
      parts.emplace_back();
    } else if (piece.is_object() && piece.contains("SpecialToken")) {
      const std::string name = get_string(piece["SpecialToken"], "id", pat / "SpecialToken");
      if (!specials.contains(name)) pat.fail("special token \"" + name + "\" is not in special_tokens");
      const json& ids = field(specials[name], "ids", at / "special_tokens" / name);
      if (!ids.is_array() || ids.empty()) (at / "special_tokens" / name / "ids").fail("expected a non-empty list of ids");
      std::vector<int32_t> v;
      for (size_t k = 0; k < ids.size(); ++k) v.push_back(as_id(ids[k], (at / "special_tokens" / name / "ids")[k]));
      parts.push_back(std::move(v));
    } else {
      pat.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  return std::make_unique<TemplateProcessor>(std::move(parts));
}

// Roberta/Bert: "cls": [token, id], "sep": [token, id].
int32_t pair_id(const json& j, const char* key, const JsonPath& at) {
  const json& v = field(j, key, at);
  if (!v.is_array() || v.size() != 2) (at / key).fail("expected [token, id]");
  return as_id(v[1], (at / key)[1]);
}

}  // namespace

std::unique_ptr<PostProcessor> make_affix_processor(std::vector<int32_t> before, std::vector<int32_t> after) {
  return std::make_unique<AffixProcessor>(std::move(before), std::move(after));
}

std::unique_ptr<PostProcessor> parse_post_processor(const json& j, const JsonPath& at) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, at);
  if (type == "TemplateProcessing") return parse_template(j, at);
  if (type == "ByteLevel") return std::make_unique<AffixProcessor>(std::vector<int32_t>{}, std::vector<int32_t>{});
  if (type == "RobertaProcessing" || type == "BertProcessing")
    return std::make_unique<AffixProcessor>(std::vector<int32_t>{pair_id(j, "cls", at)}, std::vector<int32_t>{pair_id(j, "sep", at)});
  if (type == "Sequence") {
    const json& list = field(j, "processors", at);
    if (!list.is_array()) (at / "processors").fail("expected a list");
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (size_t i = 0; i < list.size(); ++i)
      if (auto p = parse_post_processor(list[i], (at / "processors")[i])) parts.push_back(std::move(p));
    return std::make_unique<SequenceProcessor>(std::move(parts));
  }
  (at / "type").fail("unsupported post-processor \"" + type +
                     "\" (supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)");
}

}  // namespace awq::tok
