#include "tokenizer/normalizers.h"

#include <vector>

#include "tokenizer/pattern.h"
#include "tokenizer/unicode.h"

namespace awq::tok {
namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& s, bool& at_start) const override {
    for (const auto& p : parts_) p->normalize(s, at_start);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// Prepends a string to a non-empty piece.
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& s, bool&) const override {
    if (!s.empty()) s.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& s, bool&) const override {
    std::string out;
    out.reserve(s.size());
    size_t last = 0;
    for (const auto& [b, e] : pattern_->find_all(s)) {
      out.append(s, last, b - last);
      out += content_;
      last = e;
    }
    out.append(s, last, std::string::npos);
    s = std::move(out);
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormForm form) : form_(form) {}
  void normalize(std::string& s, bool&) const override { s = tok::normalize(s, form_); }

 private:
  NormForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& s, bool&) const override { s = lowercase(s); }
};

// Strips Unicode whitespace from either end.
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s, bool& at_start) const override {
    if (right_) {
      size_t end = s.size();
      while (end > 0) {
        size_t start = 0;
        if (!is_whitespace(prev_code_point(s, end, start))) break;
        end = start;
      }
      s.resize(end);
    }
    if (left_) {
      size_t i = 0, begin = 0;
      while (i < s.size() && is_whitespace(next_code_point(s, i))) begin = i;
      if (begin > 0) {
        s.erase(0, begin);
        at_start = false;
      }
    }
  }

 private:
  bool left_, right_;
};

}  // namespace

std::unique_ptr<Normalizer> parse_normalizer(const json& j, const JsonPath& at) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, at);
  if (type == "Sequence") {
    const json& list = field(j, "normalizers", at);
    if (!list.is_array()) (at / "normalizers").fail("expected a list");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list.size(); ++i)
      if (auto n = parse_normalizer(list[i], (at / "normalizers")[i])) parts.push_back(std::move(n));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(get_string(j, "prepend", at));
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(parse_pattern(field(j, "pattern", at), at / "pattern"), get_string(j, "content", at));
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormForm::NFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(get_bool(j, "strip_left", true, at), get_bool(j, "strip_right", true, at));
  (at / "type").fail("unsupported normalizer \"" + type + "\" (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip)");
}

}  // namespace awq::tok
