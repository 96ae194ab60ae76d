// The last review's small leftovers (session 5's closing note), each a test that failed before:
// `--html ""` silently ignored, `--seed -1` accepted, an empty .gguf called "not a .safetensors or
// .npz file", quantize's --grid / --samples unbounded, bare `awq` saying only "A subcommand is
// required".
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "test_util.h"

namespace awq {
namespace {

struct EnvVar {
  EnvVar(const char* n, const std::string& v) : name(n) { ::setenv(n, v.c_str(), 1); }
  ~EnvVar() { ::unsetenv(name); }
  const char* name;
};

TEST(LeftoversCli, EmptyHtmlFileNameIsAUsageError) {
  const std::string model = test::data_path("tiny-llama-awq");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"compare", model, model, "--html", ""}, {"eval", model, "--html", ""}}) {
    const auto r = test::run_awq(args);
    EXPECT_EQ(r.status, 2) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("--html: an empty file name"), std::string::npos) << r.err;
  }
  const auto r = test::run_awq({"run", model, "--prompt", "a", "--logits-out", ""});
  EXPECT_EQ(r.status, 2) << r.err;
}

TEST(LeftoversCli, SeedIsAnUnsigned64BitInteger) {
  const std::string model = test::data_path("tiny-llama-awq");
  for (const char* bad : {"-1", "18446744073709551616", "1.5", "0x10", ""}) {
    const auto r = test::run_awq({"run", model, "--prompt", "a", "-n", "1", "--temperature", "0.8", "--seed", bad});
    EXPECT_EQ(r.status, 2) << bad << ": " << r.err;
    EXPECT_NE(r.err.find("--seed"), std::string::npos) << r.err;
  }
  const auto ok = test::run_awq({"run", model, "--prompt", "a", "-n", "1", "--temperature", "0.8", "--seed", "18446744073709551615"});
  EXPECT_EQ(ok.status, 0) << ok.err;
}

TEST(LeftoversCli, EmptyGgufIsNamedAsAnEmptyOrTruncatedGguf) {
  test::TempDir t;
  const std::string empty = t / "model.gguf", junk = t / "junk.gguf";
  test::write_bytes(empty, "");
  test::write_bytes(junk, "not a gguf at all");
  for (const std::vector<std::string>& args : {std::vector<std::string>{"inspect", empty}, {"dequantize", empty, "-o", t / "o"},
                                               {"run", empty, "--prompt", "a"}, {"eval", empty}, {"check", empty},
                                               {"eval", test::data_path("tiny-llama-awq"), "--ref", empty}}) {
    const auto r = test::run_awq(args);
    EXPECT_NE(r.status, 0) << args[0];
    EXPECT_NE(r.err.find("model.gguf: an empty or truncated GGUF file (0 bytes"), std::string::npos) << args[0] << ": " << r.err;
    EXPECT_EQ(r.err.find(".safetensors"), std::string::npos) << r.err;
  }
  const auto r = test::run_awq({"inspect", junk});
  EXPECT_NE(r.err.find("named .gguf but not a GGUF file"), std::string::npos) << r.err;
}

TEST(LeftoversCli, QuantizeGridAndSamplesAreBounded) {
  test::TempDir t;
  const std::string model = test::data_path("models/llama2");
  std::string ids;
  std::mt19937 rng(1);
  for (int i = 0; i < 200; ++i) ids += std::to_string(rng() % 200) + " ";
  test::write_bytes(t / "calib.txt", ids);
  auto quantize = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"quantize", model, "-o", t / "q", "--group-size", "32", "--calib-tokens", t / "calib.txt", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_awq(args);
  };
  for (const char* g : {"0", "-3", "1001"}) {
    const auto r = quantize({"--grid", g});
    EXPECT_EQ(r.status, 2) << g << ": " << r.err;
    EXPECT_NE(r.err.find("must be 1 to 1000"), std::string::npos) << r.err;
  }
  const auto huge = quantize({"--samples", "100000000", "--seqlen", "64"});
  EXPECT_EQ(huge.status, 2) << huge.err;
  EXPECT_NE(huge.err.find("2^31 calibration tokens"), std::string::npos) << huge.err;
  {
    EnvVar mem("AWQ_TEST_MEM_AVAILABLE", "100000");  // 2 x 4 x 64 tokens x hidden 64 x 4 bytes = 131072 > 100000
    const auto r = quantize({"--samples", "4", "--seqlen", "64"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("--samples 4 x --seqlen 64"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("131072 bytes"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(t / "q"));
  const auto ok = quantize({"--samples", "3", "--seqlen", "64", "--grid", "1000"});
  EXPECT_EQ(ok.status, 0) << ok.err;
}

TEST(LeftoversCli, BareAwqPrintsTheSubcommands) {
  const auto r = test::run_awq({});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err.find("A subcommand is required"), std::string::npos) << r.err;
  for (const char* sub : {"inspect", "compare", "quantize", "eval", "run"}) EXPECT_NE(r.err.find(sub), std::string::npos) << sub;
}

}  // namespace
}  // namespace awq
