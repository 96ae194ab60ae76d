#include "tokenizer/pre_tokenizers.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include "tokenizer/byte_level.h"
#include "tokenizer/pattern.h"
#include "tokenizer/unicode.h"

namespace awq::tok {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Segment {
  size_t begin, end;
  bool match;
};

// Segments covering `text` from match offsets: the gaps (not matches) and the matches, in order.
std::vector<Segment> segments_of(size_t size, const std::vector<std::pair<size_t, size_t>>& matches) {
  std::vector<Segment> segs;
  if (size == 0) return {{0, 0, false}};
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev != b) segs.push_back({prev, b, false});
    segs.push_back({b, e, true});
    prev = e;
  }
  if (prev != size) segs.push_back({prev, size, false});
  return segs;
}

// Each character for which `pred` holds is a match of its own.
std::vector<std::pair<size_t, size_t>> char_matches(std::string_view text, const std::function<bool(char32_t)>& pred) {
  std::vector<std::pair<size_t, size_t>> m;
  for (size_t i = 0; i < text.size();) {
    const size_t b = i;
    if (pred(next_code_point(text, i))) m.emplace_back(b, i);
  }
  return m;
}

// Splits `p` at the segments per `behavior` (the library's NormalizedString::split).
void split_by(const Piece& p, std::vector<Segment> segs, Behavior behavior, bool invert, std::vector<Piece>& out) {
  if (invert)
    for (auto& s : segs) s.match = !s.match;
  std::vector<Segment> kept;  // .match now means "remove"
  switch (behavior) {
    case Behavior::Removed:
      kept = std::move(segs);
      break;
    case Behavior::Isolated:
      for (auto s : segs) kept.push_back({s.begin, s.end, false});
      break;
    case Behavior::Contiguous: {
      bool prev = false;
      for (const auto& s : segs) {
        if (s.match == prev && !kept.empty()) kept.back().end = s.end;
        else kept.push_back({s.begin, s.end, false});
        prev = s.match;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prev = false;
      for (const auto& s : segs) {
        if (s.match && !prev && !kept.empty()) kept.back().end = s.end;
        else kept.push_back({s.begin, s.end, false});
        prev = s.match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev = false;
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->match && !prev && !kept.empty()) kept.back().begin = it->begin;
        else kept.push_back({it->begin, it->end, false});
        prev = it->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (const auto& s : kept)
    if (!s.match) out.push_back({p.text.substr(s.begin, s.end - s.begin), p.at_start && s.begin == 0, -1});
}

Behavior parse_behavior(const std::string& s, const JsonPath& at) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  at.fail("unknown split behavior \"" + s + "\"");
}

class SequencePre final : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class SplitPre final : public PreTokenizer {
 public:
  SplitPre(std::unique_ptr<Regex> re, Behavior b, bool invert) : re_(std::move(re)), behavior_(b), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
      split_by(p, segments_of(p.text.size(), re_->find_all(p.text)), behavior_, invert_, out);
    });
  }

 private:
  std::unique_ptr<Regex> re_;
  Behavior behavior_;
  bool invert_;
};

// Splits with a character predicate (Digits, WhitespaceSplit, Punctuation).
class CharSplitPre final : public PreTokenizer {
 public:
  CharSplitPre(std::function<bool(char32_t)> pred, Behavior b) : pred_(std::move(pred)), behavior_(b) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
      split_by(p, segments_of(p.text.size(), char_matches(p.text, pred_)), behavior_, false, out);
    });
  }

 private:
  std::function<bool(char32_t)> pred_;
  Behavior behavior_;
};

class ByteLevelPre final : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), re_(use_regex ? std::make_unique<Regex>(kGpt2Pattern, false) : nullptr) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
      if (add_prefix_space_ && !p.text.empty() && p.text[0] != ' ') p.text.insert(0, " ");
      if (re_) split_by(p, segments_of(p.text.size(), re_->find_all(p.text)), Behavior::Isolated, false, out);
      else out.push_back(std::move(p));
    });
    for (Piece& p : pieces) {
      if (p.token >= 0) continue;
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char b : p.text) mapped += byte_to_char(b);
      p.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

enum class Prepend { Always, Never, First };

class MetaspacePre final : public PreTokenizer {
 public:
  MetaspacePre(char32_t replacement, Prepend scheme, bool split) : scheme_(scheme), split_(split), replacement_(replacement) {
    append_utf8(rep_, replacement);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
      std::string s;
      s.reserve(p.text.size() + rep_.size());
      for (char c : p.text) {
        if (c == ' ') s += rep_;
        else s += c;
      }
      const bool starts = s.compare(0, rep_.size(), rep_) == 0;
      if (!s.empty() && !starts && (scheme_ == Prepend::Always || (scheme_ == Prepend::First && p.at_start))) s.insert(0, rep_);
      p.text = std::move(s);
      if (!split_) {
        out.push_back(std::move(p));
        return;
      }
      const char32_t r = replacement_;
      split_by(p, segments_of(p.text.size(), char_matches(p.text, [r](char32_t c) { return c == r; })), Behavior::MergedWithNext,
               false, out);
    });
  }

 private:
  Prepend scheme_;
  bool split_;
  char32_t replacement_;
  std::string rep_;
};

// The regex \w+|[^\w\s]+ (Rust regex classes), matches kept and the rest (whitespace) dropped.
class WhitespacePre final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
      std::vector<std::pair<size_t, size_t>> m;
      int run = 0;  // 0 none, 1 word, 2 other non-space
      for (size_t i = 0; i < p.text.size();) {
        const size_t b = i;
        const char32_t c = next_code_point(p.text, i);
        const int cls = is_word_char(c) ? 1 : is_whitespace(c) ? 0 : 2;
        if (cls != 0 && cls == run) m.back().second = i;
        else if (cls != 0) m.emplace_back(b, i);
        run = cls;
      }
      split_by(p, segments_of(p.text.size(), m), Behavior::Removed, true, out);
    });
  }
};

std::unique_ptr<PreTokenizer> parse_metaspace(const json& j, const JsonPath& at) {
  const char32_t rep = get_char(j, "replacement", at);
  Prepend scheme = Prepend::Always;
  if (auto s = get_opt_string(j, "prepend_scheme", at)) {
    if (*s == "always") scheme = Prepend::Always;
    else if (*s == "never") scheme = Prepend::Never;
    else if (*s == "first") scheme = Prepend::First;
    else (at / "prepend_scheme").fail("expected \"always\", \"never\" or \"first\"");
  }
  if (j.contains("add_prefix_space") && !get_bool(j, "add_prefix_space", true, at)) scheme = Prepend::Never;
  return std::make_unique<MetaspacePre>(rep, scheme, get_bool(j, "split", true, at));
}

}  // namespace

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const JsonPath& at) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, at);
  if (type == "Sequence") {
    const json& list = field(j, "pretokenizers", at);
    if (!list.is_array()) (at / "pretokenizers").fail("expected a list");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list.size(); ++i)
      if (auto p = parse_pre_tokenizer(list[i], (at / "pretokenizers")[i])) parts.push_back(std::move(p));
    return std::make_unique<SequencePre>(std::move(parts));
  }
  if (type == "Split")
    return std::make_unique<SplitPre>(parse_pattern(field(j, "pattern", at), at / "pattern"),
                                      parse_behavior(get_string(j, "behavior", at), at / "behavior"), get_bool(j, "invert", false, at));
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPre>(get_bool(j, "add_prefix_space", true, at), get_bool(j, "use_regex", true, at));
  if (type == "Metaspace") return parse_metaspace(j, at);
  if (type == "Digits")
    return std::make_unique<CharSplitPre>(is_numeric, get_bool(j, "individual_digits", false, at) ? Behavior::Isolated : Behavior::Contiguous);
  if (type == "WhitespaceSplit") return std::make_unique<CharSplitPre>(is_whitespace, Behavior::Removed);
  if (type == "Whitespace") return std::make_unique<WhitespacePre>();
  if (type == "Punctuation") {
    const auto b = j.contains("behavior") ? parse_behavior(get_string(j, "behavior", at), at / "behavior") : Behavior::Isolated;
    return std::make_unique<CharSplitPre>([](char32_t c) { return (c < 0x80 && std::ispunct(int(c))) || is_punctuation(c); }, b);
  }
  (at / "type").fail("unsupported pre-tokenizer \"" + type +
                     "\" (supported: Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation)");
}

}  // namespace awq::tok
