// Tokenizer pieces checked one rule at a time (small hand-written tokenizer.json documents; the
// expected ids of BpeMergesByRank, UnknownCharacters... and SplitBehaviours are what tokenizers 0.21.4
// gives for the same documents), the loader's BOS / EOS rules, and bad input: each gives an
// awq::Error naming the file and the key.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "awq/error.h"
#include "awq/tokenizer.h"
#include "test_util.h"
#include "tokenizer/unicode.h"

namespace awq {
namespace {

using nlohmann::json;

// A byte-level BPE over the letters of "hello": h e l o + merges "l l", "h e", "he ll", "hell o".
json tiny_bytelevel() {
  json vocab = json::object();
  int id = 0;
  for (const char* t : {"h", "e", "l", "o", "Ġ", "ll", "he", "hell", "hello", "Ġh"}) vocab[t] = id++;
  return {{"version", "1.0"},
          {"added_tokens", json::array({{{"id", 10}, {"content", "<eos>"}, {"special", true}, {"normalized", false},
                                         {"lstrip", false}, {"rstrip", false}, {"single_word", false}}})},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"l l", "h e", "he ll", "hell o"})}}}};
}

std::string error_of(const json& doc) {
  try {
    parse_tokenizer_json(doc.dump(), "tok.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Tokenizer, BpeMergesByRank) {
  auto tok = parse_tokenizer_json(tiny_bytelevel().dump(), "t");
  EXPECT_EQ(tok->encode("hello"), (std::vector<int32_t>{8}));
  EXPECT_EQ(tok->encode("hell"), (std::vector<int32_t>{7}));
  EXPECT_EQ(tok->encode("oleh"), (std::vector<int32_t>{3, 2, 1, 0}));
  // " hello" is one pre-token (GPT-2's regex): Ġ stays apart, no merge makes "Ġh" although it is a token.
  EXPECT_EQ(tok->encode("hello hello"), (std::vector<int32_t>{8, 4, 8}));
  EXPECT_EQ(tok->decode(tok->encode("hello hello")), "hello hello");
  EXPECT_EQ(tok->encode("hello<eos>"), (std::vector<int32_t>{8, 10}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{8, 10}, true), "hello");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{8, 10}, false), "hello<eos>");
  EXPECT_EQ(tok->vocab_size(), 11u);
  EXPECT_EQ(tok->token_to_id("<eos>"), 10);
  EXPECT_EQ(tok->id_to_token(6), "he");
  EXPECT_FALSE(tok->bos_id());
}

TEST(Tokenizer, UnknownCharactersWithoutUnkAreDropped) {
  // As the library does: no unk token, no byte fallback, a character outside the vocabulary vanishes.
  auto tok = parse_tokenizer_json(tiny_bytelevel().dump(), "t");
  EXPECT_EQ(tok->encode("hxe"), (std::vector<int32_t>{6}));  // h e, then merged
}

TEST(Tokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  auto tok = parse_tokenizer_json(tiny_bytelevel().dump(), "t.json");
  try {
    tok->decode(std::vector<int32_t>{1, 11});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("id 11 is not in the vocabulary"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tok->decode(std::vector<int32_t>{-1}), Error);
}

TEST(Tokenizer, EncodeRejectsInvalidUtf8) {
  auto tok = parse_tokenizer_json(tiny_bytelevel().dump(), "t");
  try {
    tok->encode("he\xC3(llo");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8 (byte 2)"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, BadDocumentsNameTheKey) {
  auto check = [](json doc, const std::string& want) {
    const std::string err = error_of(doc);
    EXPECT_NE(err.find(want), std::string::npos) << "want \"" << want << "\" in: " << err;
    EXPECT_EQ(err.rfind("tok.json: ", 0), 0u) << err;
  };
  json d = tiny_bytelevel();
  d["model"]["merges"].push_back("h x");
  check(d, "model.merges[4]: token \"x\" is not in the vocabulary");
  d = tiny_bytelevel();
  d["model"]["merges"].push_back("o h");
  check(d, "model.merges[4]: merged token \"oh\" is not in the vocabulary");
  d = tiny_bytelevel();
  d["model"]["merges"].push_back("a b c");
  check(d, "model.merges[4]: expected \"a b\"");
  d = tiny_bytelevel();
  d["model"]["type"] = "Unigram";
  check(d, "model.type: unsupported model \"Unigram\"");
  d = tiny_bytelevel();
  d["normalizer"] = {{"type", "BertNormalizer"}};
  check(d, "normalizer.type: unsupported normalizer \"BertNormalizer\"");
  d = tiny_bytelevel();
  d["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  check(d, "pre_tokenizer.pattern.Regex: regex \"(unclosed\" does not compile");
  d = tiny_bytelevel();
  d["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
  check(d, "pre_tokenizer.behavior: unknown split behavior \"Sideways\"");
  d = tiny_bytelevel();
  d["decoder"] = {{"type", "Sequence"}, {"decoders", json::array({{{"type", "WordPiece"}}})}};
  check(d, "decoder.decoders[0].type: unsupported decoder \"WordPiece\"");
  d = tiny_bytelevel();
  d["model"]["vocab"]["h"] = -3;
  check(d, "model.vocab.h: expected a token id");
  d = tiny_bytelevel();
  d["model"]["vocab"]["zz"] = 2000000000;
  check(d, "model.vocab: ids are sparse");
  d = tiny_bytelevel();
  d["model"]["vocab"]["zz"] = 1;
  check(d, "model.vocab: id 1 is given to two tokens");
  d = tiny_bytelevel();
  d["model"]["unk_token"] = "<unk>";
  check(d, "model.unk_token: \"<unk>\" is not in the vocabulary");
  d = tiny_bytelevel();
  d["model"]["dropout"] = 0.1;
  check(d, "model.dropout: BPE dropout is not supported");
  d = tiny_bytelevel();
  d["post_processor"] = {{"type", "TemplateProcessing"}, {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}})},
                         {"special_tokens", json::object()}};
  check(d, "post_processor.single[0]: special token \"<s>\" is not in special_tokens");
  d = tiny_bytelevel();
  d["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {50}}, {"tokens", {"<s>"}}}}}}};
  check(d, "post_processor: special token id 50 is not in the vocabulary");
  d = tiny_bytelevel();
  d["added_tokens"][0]["id"] = 100000;
  check(d, "added_tokens[0].id: id 100000 is far beyond the vocabulary");
  d = tiny_bytelevel();
  d["added_tokens"][0]["content"] = "";
  check(d, "added_tokens[0].content: empty token");
  d = tiny_bytelevel();
  d.erase("model");
  check(d, "model: missing");
  EXPECT_NE(error_of(json::array()).find("expected a JSON object"), std::string::npos);
  try {
    parse_tokenizer_json("{\"model\": ", "tok.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("tok.json: invalid JSON", 0), 0u) << e.what();
  }
}

// Split behaviours of the Split pre-tokenizer on "a-b--c" with pattern "-" (the library's results).
TEST(Tokenizer, SplitBehaviours) {
  json vocab = json::object();
  int id = 0;
  for (const char* t : {"a", "b", "c", "-", "a-", "-b", "--", "b-", "-c", "b--", "--c"}) vocab[t] = id++;
  auto ids_for = [&](const char* behavior, bool invert) {
    json d = {{"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}}},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"ignore_merges", true}, {"merges", json::array()}}}};
    return parse_tokenizer_json(d.dump(), "t")->encode("a-b--c");
  };
  using V = std::vector<int32_t>;
  EXPECT_EQ(ids_for("Removed", false), (V{0, 1, 2}));                 // a b c
  EXPECT_EQ(ids_for("Isolated", false), (V{0, 3, 1, 3, 3, 2}));       // a - b - - c
  EXPECT_EQ(ids_for("MergedWithPrevious", false), (V{4, 7, 3, 2}));   // a- b- - c
  EXPECT_EQ(ids_for("MergedWithNext", false), (V{0, 5, 3, 8}));       // a -b - -c
  EXPECT_EQ(ids_for("Contiguous", false), (V{0, 3, 1, 6, 2}));        // a - b -- c
  EXPECT_EQ(ids_for("Removed", true), (V{3, 3, 3}));                  // - - -  (the letters removed)
}

TEST(Tokenizer, Utf8LossyAsRust) {
  // String::from_utf8_lossy: one U+FFFD per maximal invalid subpart.
  EXPECT_EQ(tok::utf8_lossy("Hello \xF0\x90\x80World"), "Hello \xEF\xBF\xBDWorld");
  EXPECT_EQ(tok::utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");        // overlong: two
  EXPECT_EQ(tok::utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  EXPECT_EQ(tok::utf8_lossy("a\xE2\x82"), "a\xEF\xBF\xBD");                  // cut short: one
  EXPECT_EQ(tok::utf8_lossy("\xE2\x82\xAC"), "\xE2\x82\xAC");
  EXPECT_EQ(tok::invalid_utf8_at("ok\xF4\x90\x80\x80"), 2u);                 // > U+10FFFF
  EXPECT_EQ(tok::invalid_utf8_at("\xF0\x9F\x98\x80"), std::string::npos);
}

TEST(Tokenizer, ByteFallbackDecoderReplacesInvalidRunsPerByte) {
  json vocab = json::object();
  vocab["<unk>"] = 0;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = b + 1;
  }
  json d = {{"decoder", {{"type", "Sequence"}, {"decoders", json::array({{{"type", "ByteFallback"}}, {{"type", "Fuse"}}})}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}, {"byte_fallback", true}, {"unk_token", "<unk>"}}}};
  auto tok = parse_tokenizer_json(d.dump(), "t");
  EXPECT_EQ(tok->encode("é"), (std::vector<int32_t>{0xC3 + 1, 0xA9 + 1}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{0xC3 + 1, 0xA9 + 1}), "é");
  // An invalid run of two bytes: two U+FFFD (the library's per-byte replacement).
  EXPECT_EQ(tok->decode(std::vector<int32_t>{0xC3 + 1, 0x41 + 1}), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TokenizerLoad, BosAndEosFromTheConfigs) {
  auto l3 = load_tokenizer(test::data_path("tokenizers/llama3"));
  ASSERT_TRUE(l3->bos_id());
  EXPECT_EQ(l3->id_to_token(*l3->bos_id()), "<|begin_of_text|>");
  // generation_config.json lists <|end_of_text|> and <|eot_id|>; tokenizer_config's eos is the first.
  std::vector<std::string> eos;
  for (int32_t id : l3->eos_ids()) eos.push_back(l3->id_to_token(id));
  EXPECT_EQ(eos, (std::vector<std::string>{"<|end_of_text|>", "<|eot_id|>"}));

  auto qwen = load_tokenizer(test::data_path("tokenizers/qwen2"));
  EXPECT_FALSE(qwen->bos_id());
  ASSERT_EQ(qwen->eos_ids().size(), 1u);
  EXPECT_EQ(qwen->id_to_token(qwen->eos_ids()[0]), "<|im_end|>");

  auto mistral = load_tokenizer(test::data_path("tokenizers/mistral"));  // {"content": "<s>"} form
  EXPECT_EQ(mistral->id_to_token(*mistral->bos_id()), "<s>");

  auto sp = load_tokenizer(test::data_path("tokenizers/sp"));
  EXPECT_EQ(sp->id_to_token(*sp->bos_id()), "<s>");
  ASSERT_EQ(sp->eos_ids().size(), 1u);
  EXPECT_EQ(sp->id_to_token(sp->eos_ids()[0]), "</s>");
  EXPECT_EQ(sp->decode(sp->encode("Hello"), false), "<s>Hello");
}

TEST(TokenizerLoad, PrefersTokenizerJsonAndReadsNamedFiles) {
  test::TempDir t;
  const std::string json_text = test::read_bytes(test::data_path("tokenizers/gpt2/tokenizer.json"));
  test::write_bytes(t / "tokenizer.json", json_text);
  test::write_bytes(t / "tokenizer.model", test::read_bytes(test::data_path("tokenizers/sp/tokenizer.model")));
  auto ref = load_tokenizer(test::data_path("tokenizers/gpt2"));
  EXPECT_EQ(load_tokenizer(t.path())->encode("Hello there"), ref->encode("Hello there"));
  EXPECT_EQ(load_tokenizer(t / "tokenizer.model")->encode("Hello there"),
            load_tokenizer(test::data_path("tokenizers/sp"))->encode("Hello there"));
  // config.json with an eos id and nothing else is enough; an id outside the vocabulary is refused.
  test::write_bytes(t / "config.json", R"({"eos_token_id": 701})");
  EXPECT_EQ(load_tokenizer(t.path())->eos_ids(), (std::vector<int32_t>{701}));
  test::write_bytes(t / "config.json", R"({"eos_token_id": [701, 99999]})");
  try {
    load_tokenizer(t.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: eos_token_id: 99999 is not an id in the vocabulary"), std::string::npos) << e.what();
  }
}

TEST(TokenizerLoad, ErrorsNameTheFile) {
  test::TempDir t;
  auto message = [](const std::filesystem::path& p) {
    try {
      load_tokenizer(p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message(t.path()).find("no tokenizer.json or tokenizer.model"), std::string::npos);
  EXPECT_NE(message(t / "missing").find("no such model directory"), std::string::npos);
  test::write_bytes(t / "tokenizer.model", "this is not a protobuf");
  EXPECT_NE(message(t.path()).find("tokenizer.model: not a sentencepiece model"), std::string::npos) << message(t.path());
  test::write_bytes(t / "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, ");
  EXPECT_NE(message(t.path()).find("tokenizer.json: invalid JSON"), std::string::npos) << message(t.path());
  test::write_bytes(t / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  test::write_bytes(t / "tokenizer_config.json", "[1, 2]");
  EXPECT_NE(message(t.path()).find("tokenizer_config.json: expected a JSON object"), std::string::npos) << message(t.path());
}

}  // namespace
}  // namespace awq

namespace awq {
namespace {

// Split regexes are Oniguruma's in the library; \s \S \w \W \h \H \d must mean what they mean
// there. Vocabulary = every substring of the text, ignore_merges: each pre-token is one id, so the
// ids show the split. Expected ids: tokenizers 0.21.4 on the same documents.
TEST(Tokenizer, RegexClassesAsOniguruma) {
  const std::string text = "a\u0301b x\u2082 y\u180ez _\u203f_ 0xFF\u3000\u00a0q'S";
  std::vector<std::u32string> subs;
  std::u32string u;
  for (size_t i = 0; i < text.size();) u += tok::next_code_point(text, i);
  std::set<std::string> uniq;
  for (size_t i = 0; i < u.size(); ++i)
    for (size_t j = i + 1; j <= u.size(); ++j) {
      std::string s;
      for (size_t k = i; k < j; ++k) tok::append_utf8(s, u[k]);
      uniq.insert(s);
    }
  // Python sorts by code point, std::set<std::string> by UTF-8 bytes: the same order.
  json vocab = json::object();
  int id = 0;
  for (const auto& s : uniq) vocab[s] = id++;
  auto ids_for = [&](const char* pattern) {
    json d = {{"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}}},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"ignore_merges", true}, {"merges", json::array()}}}};
    return parse_tokenizer_json(d.dump(), "t")->encode(text);
  };
  using V = std::vector<int32_t>;
  EXPECT_EQ(ids_for(R"(\w+|\s+|.)"), (V{109, 0, 156, 270, 0, 183, 242, 200, 0, 96, 0, 65, 290, 153, 60, 83}));
  EXPECT_EQ(ids_for(R"(\S+|\s+)"), (V{109, 0, 164, 0, 185, 0, 96, 0, 65, 290, 155}));
  EXPECT_EQ(ids_for(R"(\h+|\H)"), (V{107, 219, 131, 0, 156, 270, 0, 183, 242, 200, 0, 84, 258, 84, 0, 62, 156, 72, 289, 215, 153, 60, 83}));
  EXPECT_EQ(ids_for(R"([\s_]+|[^\s_]+)"), (V{109, 0, 164, 0, 185, 10, 258, 85, 65, 290, 155}));
  EXPECT_EQ(ids_for(R"((?i:'s)|\W+|\w+)"), (V{109, 0, 156, 271, 183, 242, 200, 0, 96, 0, 65, 290, 153, 61}));
  EXPECT_EQ(ids_for(R"(\d+|\D+)"), (V{121, 62, 163}));
}

}  // namespace
}  // namespace awq
