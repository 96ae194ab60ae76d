// `awq tokenize` as a user runs it: ids as JSON (the post-processor's BOS included), text from a
// file or stdin, --decode from either id form, and one-line errors with exit status 1.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

namespace awq {
namespace {

const std::string kLlama3 = test::data_path("tokenizers/llama3");

const nlohmann::json& golden() {
  static const nlohmann::json g = nlohmann::json::parse(test::read_bytes(test::data_path("tokenizers/golden.json")));
  return g;
}

std::string ids_line(const std::vector<int32_t>& ids) {
  std::string s = "{\"ids\": [";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]}\n";
}

// Runs awq with `input` on its stdin.
test::RunResult run_with_stdin(const std::vector<std::string>& args, const std::string& input) {
  test::TempDir t;
  test::write_bytes(t / "in", input);
  std::string cmd = std::string("'") + AWQ_BINARY + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " <'" + (t / "in") + "' >'" + (t / "out") + "' 2>'" + (t / "err") + "'";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, test::read_bytes(t / "out"), test::read_bytes(t / "err")};
}

void expect_one_line_error(const test::RunResult& r, const std::string& want) {
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(r.err.rfind("awq: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(want), std::string::npos) << "want \"" << want << "\" in: " << r.err;
}

TEST(TokenizeCli, PrintsTheLibrarysIdsForEveryStyle) {
  test::TempDir t;
  const auto& texts = golden()["texts"];
  for (const std::string style : {"gpt2", "llama3", "qwen2", "llama2", "mistral", "metaspace", "sp"}) {
    for (size_t i : {3u, 13u, 25u}) {  // contractions; special tokens in the text; the long multilingual text
      test::write_bytes(t / "text", texts[i].get<std::string>());
      const auto r = test::run_awq({"tokenize", test::data_path("tokenizers/" + style), "--text", t / "text"});
      ASSERT_EQ(r.status, 0) << r.err;
      EXPECT_EQ(r.out, ids_line(golden()["styles"][style]["cases"][i]["ids"].get<std::vector<int32_t>>())) << style << " text " << i;
    }
  }
}

TEST(TokenizeCli, ReadsStdinAndKeepsEveryByte) {
  const std::string text = golden()["texts"][10];  // runs of spaces, tabs, newlines, a trailing run
  const auto r = run_with_stdin({"tokenize", kLlama3}, text);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, ids_line(golden()["styles"]["llama3"]["cases"][10]["ids"].get<std::vector<int32_t>>()));
  const auto empty = run_with_stdin({"tokenize", kLlama3}, "");
  ASSERT_EQ(empty.status, 0) << empty.err;
  EXPECT_EQ(empty.out, ids_line(golden()["styles"]["llama3"]["cases"][1]["ids"].get<std::vector<int32_t>>()));  // just BOS
}

TEST(TokenizeCli, DecodeTakesBothIdFormsAndPrintsTheExactText) {
  const auto& c = golden()["styles"]["llama3"]["cases"][8];  // emoji with ZWJ sequences
  const auto ids = c["ids"].get<std::vector<int32_t>>();
  const auto r = run_with_stdin({"tokenize", kLlama3, "--decode"}, ids_line(ids));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, c["decoded"].get<std::string>());
  std::string plain;
  for (int32_t id : ids) plain += std::to_string(id) + "\n";
  test::TempDir t;
  test::write_bytes(t / "ids", plain);
  const auto p = test::run_awq({"tokenize", kLlama3, "--decode", "--skip-special", "--text", t / "ids"});
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(p.out, c["decoded_skip"].get<std::string>());
  nlohmann::json list = ids;
  EXPECT_EQ(run_with_stdin({"tokenize", kLlama3, "--decode"}, list.dump()).out, c["decoded"].get<std::string>());
}

TEST(TokenizeCli, NeedsOnlyTheTokenizerFiles) {
  test::TempDir t;
  std::filesystem::create_directories(t / "m");
  test::write_bytes(t / "m/tokenizer.json", test::read_bytes(test::data_path("tokenizers/llama2/tokenizer.json")));
  test::write_bytes(t / "text", "Hello world");
  auto r = test::run_awq({"tokenize", t / "m", "--text", t / "text"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, ids_line(golden()["styles"]["llama2"]["cases"][0]["ids"].get<std::vector<int32_t>>()));
  test::write_bytes(t / "m/config.json", "{}");
  r = test::run_awq({"tokenize", t / "m", "--text", t / "text"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, ids_line(golden()["styles"]["llama2"]["cases"][0]["ids"].get<std::vector<int32_t>>()));
}

TEST(TokenizeCli, ErrorsAreOneLineAndExitOne) {
  test::TempDir t;
  expect_one_line_error(test::run_awq({"tokenize", t / "nope"}), "no such model directory");
  expect_one_line_error(test::run_awq({"tokenize", t.path().string()}), "no tokenizer.json or tokenizer.model");
  expect_one_line_error(test::run_awq({"tokenize", kLlama3, "--text", t / "missing.txt"}), "missing.txt: cannot open");
  expect_one_line_error(run_with_stdin({"tokenize", kLlama3}, "ok \xFF bad"), "not valid UTF-8 (byte 3)");
  expect_one_line_error(run_with_stdin({"tokenize", kLlama3, "--decode"}, "1 2 x"), "stdin: \"x\" is not a token id");
  expect_one_line_error(run_with_stdin({"tokenize", kLlama3, "--decode"}, "{\"ids\": [1, -2]}"), "stdin: -2 is not a token id");
  expect_one_line_error(run_with_stdin({"tokenize", kLlama3, "--decode"}, "{\"tokens\": [1]}"), "expected {\"ids\": [...]}");
  expect_one_line_error(run_with_stdin({"tokenize", kLlama3, "--decode"}, "[1, 999999]"), "id 999999 is not in the vocabulary");
  std::filesystem::create_directories(t / "bad");
  test::write_bytes(t / "bad/tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  expect_one_line_error(test::run_awq({"tokenize", t / "bad"}), "tokenizer.json: model.type: unsupported model \"WordPiece\"");
}

}  // namespace
}  // namespace awq
