// Token ids against the reference libraries: tests/data/tokenizers/golden.json holds, for each
// tokenizer style trained by tools/make_golden_tokenizers.py, the ids that Hugging Face `tokenizers`
// 0.21.4 (sentencepiece 0.2.3 for "sp", transformers 4.51.3's AutoTokenizer for "llama2_eos") gives
// for each text, and the texts its decode gives back.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "awq/tokenizer.h"
#include "test_util.h"

namespace awq {
namespace {

const nlohmann::json& golden() {
  static const nlohmann::json g = [] {
    std::ifstream f(test::data_path("tokenizers/golden.json"));
    std::stringstream ss;
    ss << f.rdbuf();
    return nlohmann::json::parse(ss.str());
  }();
  return g;
}

const std::vector<std::string> kStyles = {"gpt2", "llama3", "qwen2", "llama2", "mistral", "metaspace", "llama2_eos", "sp"};

std::string show(const std::string& s) { return nlohmann::json(s).dump(); }

class TokenizerGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    tok_ = load_tokenizer(test::data_path("tokenizers/" + GetParam()));
    style_ = &golden()["styles"][GetParam()];
  }
  std::unique_ptr<Tokenizer> tok_;
  const nlohmann::json* style_ = nullptr;
};

TEST_P(TokenizerGolden, IdsEqualTheLibrarys) {
  const auto& texts = golden()["texts"];
  const auto& cases = (*style_)["cases"];
  ASSERT_EQ(texts.size(), cases.size());
  ASSERT_GE(texts.size(), 25u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i];
    const auto want = cases[i]["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok_->encode(text), want) << GetParam() << " text " << i << ": " << show(text);
  }
}

TEST_P(TokenizerGolden, DecodeEqualsTheLibrarys) {
  const auto& cases = (*style_)["cases"];
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto ids = cases[i]["ids"].get<std::vector<int32_t>>();
    if (cases[i].contains("decoded"))
      EXPECT_EQ(tok_->decode(ids, false), cases[i]["decoded"].get<std::string>()) << GetParam() << " text " << i;
    EXPECT_EQ(tok_->decode(ids, true), cases[i]["decoded_skip"].get<std::string>()) << GetParam() << " text " << i;
  }
}

TEST_P(TokenizerGolden, VocabSizeEqualsTheLibrarys) { EXPECT_EQ(tok_->vocab_size(), (*style_)["vocab_size"].get<size_t>()); }

// decode(encode(text)) gives the text back, the BOS the post-processor adds left out, except where
// the library itself does not (its own decode(encode(text, add_special_tokens=False)) != text,
// recorded as "roundtrip": false). Those exceptions, and why:
//   gpt2 14       <mask> has lstrip: it swallows the spaces before it
//   qwen2 17      <|tool|> has lstrip and rstrip: it swallows the spaces around it
//   qwen2 19      the NFC normalizer composes e + U+0301 into é (and A + U+030A into Å)
//   llama2 13     the Prepend(▁) normalizer runs on each piece between special tokens, so a space
//                 appears after <s> and </s>
//   llama2 16     the normalized added token "hello world" matches "▁hello▁world": its decoded
//                 text has no leading space
//   mistral 2 12 24   the Metaspace decoder drops the ▁ of the first token: a leading space is lost
//   metaspace     no byte fallback: characters outside the trained vocabulary become <unk>, so most
//                 texts do not come back; which ones depends on the training (count ties), so for
//                 this style the test follows golden.json's record of the library's round trip.
const std::map<std::string, std::set<size_t>> kNoRoundtrip = {
    {"gpt2", {14}},      {"llama3", {}},        {"qwen2", {17, 19}}, {"llama2", {13, 16}}, {"mistral", {2, 12, 24}},
    {"sp", {}},          {"llama2_eos", {13, 16}},  // as llama2
};

TEST_P(TokenizerGolden, DecodeOfEncodeIsTheText) {
  const auto& texts = golden()["texts"];
  const auto& cases = (*style_)["cases"];
  std::set<size_t> exceptions;
  if (GetParam() == "metaspace") {
    for (size_t i = 0; i < cases.size(); ++i)
      if (!cases[i]["roundtrip"].get<bool>()) exceptions.insert(i);
    EXPECT_GE(exceptions.size(), 10u);  // the unk cases
  } else {
    exceptions = kNoRoundtrip.at(GetParam());
  }
  const std::optional<int32_t> bos = tok_->bos_id();
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i];
    std::vector<int32_t> ids = tok_->encode(text);
    const std::string& s = GetParam();
    if (s == "llama3" || s == "llama2" || s == "mistral" || s == "sp" || s == "llama2_eos") {  // BOS first
      ASSERT_FALSE(ids.empty());
      ASSERT_EQ(ids.front(), bos) << s;
      ids.erase(ids.begin());
    }
    if (s == "llama2_eos") {  // and EOS last
      ASSERT_FALSE(ids.empty());
      ASSERT_EQ(ids.back(), tok_->eos_ids().at(0)) << s;
      ids.pop_back();
    }
    const std::string back = tok_->decode(ids, false);
    EXPECT_EQ(back == text, !exceptions.count(i)) << GetParam() << " text " << i << ": " << show(text) << " -> " << show(back);
    EXPECT_EQ(cases[i]["roundtrip"].get<bool>(), !exceptions.count(i)) << "the library's round trip, text " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Styles, TokenizerGolden, ::testing::ValuesIn(kStyles), [](const auto& info) { return info.param; });

TEST(TokenizerGoldenData, MergesInBothJsonForms) {
  // gpt2 and llama2 keep merges as "a b" strings, the others as [a, b] pairs: both forms are read.
  auto first_merge = [](const std::string& style) {
    std::ifstream f(test::data_path("tokenizers/" + style + "/tokenizer.json"));
    std::stringstream ss;
    ss << f.rdbuf();
    return nlohmann::json::parse(ss.str())["model"]["merges"][0];
  };
  EXPECT_TRUE(first_merge("gpt2").is_string());
  EXPECT_TRUE(first_merge("llama2").is_string());
  EXPECT_TRUE(first_merge("llama3").is_array());
  EXPECT_TRUE(first_merge("mistral").is_array());
}

}  // namespace
}  // namespace awq
