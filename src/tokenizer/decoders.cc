#include "tokenizer/decoders.h"

#include <algorithm>
#include <cctype>

#include "tokenizer/byte_level.h"
#include "tokenizer/pattern.h"
#include "tokenizer/unicode.h"

namespace awq::tok {
namespace {

// Characters back to bytes; a token with a character outside the byte table keeps its UTF-8.
class ByteLevelDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      std::string mapped;
      bool ok = true;
      for (size_t i = 0; i < t.size() && ok;) {
        const int b = char_to_byte(next_code_point(t, i));
        if (b < 0) ok = false;
        else mapped += char(b);
      }
      bytes += ok ? mapped : t;
    }
    return {utf8_lossy(bytes)};
  }
};

// The replacement character becomes a space, except in the first token (dropped there) unless
// prepend_scheme is "never".
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t rep, bool prepends) : rep_(rep), prepends_(prepends) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string out;
      const std::string& t = tokens[k];
      for (size_t i = 0; i < t.size();) {
        const size_t b = i;
        const char32_t c = next_code_point(t, i);
        if (c != rep_) out.append(t, b, i - b);
        else if (!(k == 0 && prepends_)) out += ' ';
      }
      tokens[k] = std::move(out);
    }
    return tokens;
  }

 private:
  char32_t rep_;
  bool prepends_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      std::string out;
      size_t last = 0;
      for (const auto& [b, e] : re_->find_all(t)) {
        out.append(t, last, b - last);
        out += content_;
        last = e;
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
    return tokens;
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

// Runs of <0xXX> tokens become their bytes as text; a run that is not valid UTF-8 becomes one
// U+FFFD per byte.
class ByteFallbackDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_len = 0;
    auto flush = [&] {
      if (run_len == 0) return;
      if (invalid_utf8_at(run) == std::string::npos) out.push_back(run);
      else
        for (size_t i = 0; i < run_len; ++i) out.push_back("\xEF\xBF\xBD");
      run.clear();
      run_len = 0;
    };
    for (auto& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4])))
        byte = std::stoi(t.substr(3, 2), nullptr, 16);
      if (byte >= 0) {
        run += char(byte);
        ++run_len;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    return out;
  }
};

class FuseDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    return {all};
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters of each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      std::vector<size_t> starts;  // byte offset of each character
      for (size_t i = 0; i < t.size(); next_code_point(t, i)) starts.push_back(i);
      const size_t n = starts.size();
      size_t cut_begin = 0, cut_end = n;
      for (size_t i = 0; i < std::min(start_, n); ++i) {
        size_t j = starts[i];
        if (next_code_point(t, j) != content_) break;
        cut_begin = i + 1;
      }
      for (size_t i = 0; i < std::min(stop_, n); ++i) {
        size_t j = starts[n - 1 - i];
        if (next_code_point(t, j) != content_) break;
        cut_end = n - 1 - i;
      }
      if (cut_end <= cut_begin) t.clear();
      else t = t.substr(starts[cut_begin], (cut_end == n ? t.size() : starts[cut_end]) - starts[cut_begin]);
    }
    return tokens;
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& d : parts_) tokens = d->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> parse_decoder(const json& j, const JsonPath& at) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, at);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    bool prepends = true;
    if (auto s = get_opt_string(j, "prepend_scheme", at)) prepends = *s != "never";
    if (j.contains("add_prefix_space") && !get_bool(j, "add_prefix_space", true, at)) prepends = false;
    return std::make_unique<MetaspaceDecoder>(get_char(j, "replacement", at), prepends);
  }
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(parse_pattern(field(j, "pattern", at), at / "pattern"), get_string(j, "content", at));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(get_char(j, "content", at), get_uint(j, "start", 0, at), get_uint(j, "stop", 0, at));
  if (type == "Sequence") {
    const json& list = field(j, "decoders", at);
    if (!list.is_array()) (at / "decoders").fail("expected a list");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list.size(); ++i)
      if (auto d = parse_decoder(list[i], (at / "decoders")[i])) parts.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  (at / "type").fail("unsupported decoder \"" + type + "\" (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)");
}

}  // namespace awq::tok
