// `awq run` through the binary: streaming output and speeds, greedy and seeded sampling are
// reproducible, --logits-out equals the library's prompt logits for exactly the tokenizer's ids,
// the bundled-model lookup under ./models/, and one-line errors with exit status 1.
// Fixture: the llama3 golden model (vocab 512) with a byte-level tokenizer of 256 byte tokens plus
// BOS (id 256), so every byte of the prompt is one token and multi-byte characters are split
// across tokens (the streaming must hold back incomplete UTF-8).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "awq/model.h"
#include "awq/safetensors.h"
#include "awq/tokenizer.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace awq {
namespace {

// GPT-2's byte-to-unicode table: printable bytes map to themselves, the others to U+0100 + n.
std::string byte_char(int b) {
  const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  static int next = 0;
  static int map[256];
  static bool init = false;
  if (!init) {
    for (int i = 0; i < 256; ++i) {
      const bool k = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255);
      map[i] = k ? i : 256 + next++;
    }
    init = true;
  }
  (void)keep;
  const int cp = map[b];
  std::string s;
  if (cp < 0x80) s += char(cp);
  else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
  return s;
}

void write_byte_tokenizer(const fs::path& dir) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const nlohmann::json bos = {{"id", 256}, {"content", "<s>"}, {"single_word", false}, {"lstrip", false},
                              {"rstrip", false}, {"normalized", false}, {"special", true}};
  const nlohmann::json tok = {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", {bos}}, {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {256}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  std::ofstream(dir / "tokenizer.json") << tok.dump();
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": null})";
}

fs::path make_model(const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path src = fs::path(AWQ_TEST_DATA) / "models" / "llama3";
  fs::copy_file(src / "config.json", dir / "config.json");
  fs::copy_file(src / "model.safetensors", dir / "model.safetensors");
  write_byte_tokenizer(dir);
  return dir;
}

// Runs the binary in `cwd`.
test::RunResult run_in(const fs::path& cwd, const std::vector<std::string>& args) {
  const fs::path out = cwd / "stdout.txt", err = cwd / "stderr.txt";
  std::string cmd = "cd '" + cwd.string() + "' && '" + AWQ_BINARY + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + out.string() + "' 2>'" + err.string() + "' </dev/null";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, test::read_bytes(out.string()), test::read_bytes(err.string())};
}

class RunCli : public ::testing::Test {
 protected:
  void SetUp() override { model_ = make_model(tmp_.path() / "m").string(); }
  test::TempDir tmp_;
  std::string model_;
};

TEST_F(RunCli, StreamsPromptThenTextAndEndsWithSpeeds) {
  const auto r = test::run_awq({"run", model_, "-p", "In the beginning", "-n", "12", "--threads", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("In the beginning", 0), 0u) << r.out;
  EXPECT_GT(r.out.size(), std::string("In the beginning\n").size());
  EXPECT_NE(r.err.find("prompt: 17 tokens"), std::string::npos) << r.err;  // BOS + 16 bytes
  EXPECT_NE(r.err.find("generation: 12 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
}

TEST_F(RunCli, GreedyEqualsTheLibrarysArgmaxChainAndSamplingIsSeeded) {
  const auto a = test::run_awq({"run", model_, "-p", "abc", "-n", "6"});
  const auto b = test::run_awq({"run", model_, "-p", "abc", "-n", "6", "--threads", "2"});
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  // The same chain through the library: argmax, append, repeat.
  auto m = Model::load(model_, {.threads = 1});
  auto tok = load_tokenizer(model_);
  std::vector<int32_t> ids = tok->encode("abc");
  const size_t prompt = ids.size();
  for (int i = 0; i < 6; ++i) {
    const auto l = m->prompt_logits(ids);
    // awq run samples only ids the tokenizer knows (257 here, of the model's 512).
    ids.push_back(argmax({l.data() + (ids.size() - 1) * size_t(m->config().vocab), tok->vocab_size()}));
  }
  const std::string want = tok->decode(ids, true);
  EXPECT_EQ(a.out, want + "\n") << "generated ids from " << prompt;

  const auto s1 = test::run_awq({"run", model_, "-p", "abc", "-n", "16", "--temperature", "1", "--seed", "7"});
  const auto s2 = test::run_awq({"run", model_, "-p", "abc", "-n", "16", "--temperature", "1", "--seed", "7"});
  const auto s3 = test::run_awq({"run", model_, "-p", "abc", "-n", "16", "--temperature", "1", "--seed", "8"});
  const auto s4 = test::run_awq({"run", model_, "-p", "abc", "-n", "16", "--temperature", "1", "--seed", "7", "--top-k", "1"});
  ASSERT_EQ(s1.status, 0) << s1.err;
  EXPECT_EQ(s1.out, s2.out);
  EXPECT_NE(s1.out, s3.out);
  const auto g16 = test::run_awq({"run", model_, "-p", "abc", "-n", "16"});
  EXPECT_EQ(s4.out, g16.out);  // top-k 1 is greedy
}

TEST_F(RunCli, LogitsOutHoldsEveryPromptPosition) {
  const std::string file = (tmp_.path() / "logits.safetensors").string();
  const auto r = test::run_awq({"run", model_, "-p", "héllo", "-n", "0", "--logits-out", file});
  ASSERT_EQ(r.status, 0) << r.err;
  SafetensorsFile f(file);
  ASSERT_EQ(f.tensors().size(), 1u);
  const TensorView& t = f.tensors()[0];
  EXPECT_EQ(t.name, "logits");
  EXPECT_EQ(t.dtype, DType::F32);
  auto tok = load_tokenizer(model_);
  const auto ids = tok->encode("héllo");
  ASSERT_EQ(ids.size(), 7u);  // BOS + 6 bytes (é is two)
  ASSERT_EQ(t.shape, (std::vector<int64_t>{7, 512}));
  auto m = Model::load(model_, {.threads = 1});
  const auto want = m->prompt_logits(ids);
  std::vector<float> got(want.size());
  std::memcpy(got.data(), t.data, t.nbytes);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
}

TEST_F(RunCli, FindsTheBundledModelUnderTheCurrentDirectory) {
  const fs::path cwd = tmp_.path() / "work";
  make_model(cwd / "models" / "tiny");
  const auto r = run_in(cwd, {"run", "-p", "xyz", "-n", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, test::run_awq({"run", (cwd / "models" / "tiny").string(), "-p", "xyz", "-n", "3"}).out);
}

TEST_F(RunCli, ErrorsAreOneLineAndExitOne) {
  auto one_line_error = [](const test::RunResult& r, const std::string& what) {
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  };
  one_line_error(test::run_awq({"run", (tmp_.path() / "nope").string(), "-p", "x"}), "no such model directory");
  one_line_error(test::run_awq({"run", model_, "-p", std::string(300, 'a')}), "longer than the model's context of 256");
  one_line_error(test::run_awq({"run", model_, "-p", "x", "--temperature", "-1"}), "--temperature");
  one_line_error(test::run_awq({"run", model_, "-p", "x", "--top-p", "0"}), "--top-p");
  auto cfg = nlohmann::json::parse(test::read_bytes(model_ + "/config.json"));
  cfg["architectures"] = {"GPT2LMHeadModel"};
  test::write_bytes(model_ + "/config.json", cfg.dump());
  one_line_error(test::run_awq({"run", model_, "-p", "x"}), "architecture GPT2LMHeadModel is not supported");
}

}  // namespace
}  // namespace awq

namespace awq {
namespace {

// The bundled model (models/<name>/ in the source tree): `awq run` with no MODEL, run from a
// directory without models/, finds it through the compiled-in source path and generates text.
TEST(RunCliBundled, RunsWithNoModelArgument) {
  const fs::path models = fs::path(AWQ_TEST_DATA).parent_path().parent_path() / "models";
  bool present = false;
  if (fs::is_directory(models))
    for (const auto& e : fs::directory_iterator(models)) present = present || fs::exists(e.path() / "config.json");
  if (!present) GTEST_SKIP() << "no bundled model under " << models;
  test::TempDir cwd;
  const auto r = run_in(cwd.path(), {"run", "-p", "In the beginning", "-n", "8"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("In the beginning", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace awq
