// Hostile option values for `awq quantize` (review6), each a test that failed before: empty
// --calib / --log / --skip / -o silently meant the default text, no log, "skip every module" (a
// checkpoint with 0 quantized modules, exit 0) or a garbled "contains the input" message; --format
// and --budget with a bad value were errors (exit 1) instead of usage errors (exit 2); --calib
// with --calib-tokens silently used the ids; a --log that is a directory failed only after the
// progress folder beside OUT_DIR was made, leaving it behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;

struct QuantizeRun {
  test::TempDir t;
  QuantizeRun() {
    std::string ids;
    std::mt19937 rng(1);
    for (int i = 0; i < 200; ++i) ids += std::to_string(rng() % 200) + " ";
    test::write_bytes(t / "ids.txt", ids);
  }
  test::RunResult operator()(std::vector<std::string> extra, bool ids = true) {
    std::vector<std::string> args = {"quantize", test::data_path("models/llama2"), "--group-size", "32", "--samples", "2",
                                     "--seqlen", "32", "-q"};
    if (ids) args.insert(args.end(), {"--calib-tokens", t / "ids.txt"});
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_awq(args);
  }
  // Nothing but the ids file is left in the temporary folder.
  void expect_nothing_written() {
    for (const auto& e : fs::directory_iterator(t.path())) EXPECT_EQ(e.path().filename(), "ids.txt") << e.path();
  }
};

TEST(QuantizeOptionsCli, EmptyValuesAreUsageErrors) {
  QuantizeRun q;
  const std::string out = q.t / "q";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-o", out, "--log", ""}, "--log: an empty file name"},
      {{"-o", out, "--skip", ""}, "--skip: an empty value"},
      {{"-o", ""}, "--output: an empty value"},
  };
  for (const auto& [args, msg] : cases) {
    const auto r = q(args);
    EXPECT_EQ(r.status, 2) << msg << ": " << r.err;
    EXPECT_NE(r.err.find(msg), std::string::npos) << r.err;
  }
  const auto calib = q({"-o", out, "--calib", ""}, false);
  EXPECT_EQ(calib.status, 2) << calib.err;
  EXPECT_NE(calib.err.find("--calib: an empty value"), std::string::npos) << calib.err;
  q.expect_nothing_written();
}

TEST(QuantizeOptionsCli, BadFormatBudgetAndTwoCalibrationSourcesAreUsageErrors) {
  QuantizeRun q;
  const std::string out = q.t / "q";
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--format", "nope"}, {"--budget", "nan"},
                                               {"--budget", "-3"}, {"--budget", "inf"},
                                               {"--calib", q.t / "ids.txt"}}) {
    std::vector<std::string> a = {"-o", out};
    a.insert(a.end(), args.begin(), args.end());
    const auto r = q(a);
    EXPECT_EQ(r.status, 2) << args[0] << " " << args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(args[0]), std::string::npos) << r.err;
  }
  q.expect_nothing_written();
}

TEST(QuantizeOptionsCli, LogThatIsADirectoryLeavesNothingBeside) {
  QuantizeRun q;
  fs::create_directory(q.t / "logdir");
  const auto r = q({"-o", q.t / "q", "--log", q.t / "logdir"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("logdir: is a directory"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(q.t / "q.awq-progress"));
  EXPECT_FALSE(fs::exists(q.t / "q"));
}

// RTN runs no scale search: its progress lines carry no loss/RTN figure (they printed 0.000).
TEST(QuantizeOptionsCli, RtnProgressPrintsNoLossRatio) {
  QuantizeRun q;
  const auto rtn = test::run_awq({"quantize", test::data_path("models/llama2"), "--group-size", "32", "--method", "rtn", "-o", q.t / "r"});
  ASSERT_EQ(rtn.status, 0) << rtn.err;
  EXPECT_NE(rtn.err.find("layer 2/2"), std::string::npos) << rtn.err;
  EXPECT_EQ(rtn.err.find("loss/RTN"), std::string::npos) << rtn.err;
  const auto awq = q({"-o", q.t / "a"});
  ASSERT_EQ(awq.status, 0) << awq.err;
  EXPECT_EQ(awq.err, "");  // -q
  std::vector<std::string> args = {"quantize", test::data_path("models/llama2"), "--group-size", "32", "--samples", "2", "--seqlen",
                                   "32", "--calib-tokens", q.t / "ids.txt", "-o", q.t / "b"};
  const auto shown = test::run_awq(args);
  ASSERT_EQ(shown.status, 0) << shown.err;
  EXPECT_NE(shown.err.find("loss/RTN "), std::string::npos) << shown.err;
  EXPECT_EQ(shown.err.find("loss/RTN 0.000"), std::string::npos) << shown.err;
}

// A --log inside OUT_DIR would be appended to the tree the run then replaces (lost with --force):
// refused before anything is written, the old OUT_DIR untouched.
TEST(QuantizeOptionsCli, LogInsideOutDirIsRefused) {
  QuantizeRun q;
  const std::string out = q.t / "q";
  fs::create_directory(out);
  test::write_bytes(out + "/keep.txt", "old");
  for (const std::string& log : {out + "/log.jsonl", out + "/sub/../log.jsonl"}) {
    const auto r = q({"-o", out, "--force", "--log", log});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("lies inside OUT_DIR"), std::string::npos) << r.err;
  }
  EXPECT_EQ(test::read_bytes(out + "/keep.txt"), "old");
  EXPECT_FALSE(fs::exists(out + "/log.jsonl"));
  EXPECT_FALSE(fs::exists(q.t / "q.awq-progress"));
  const auto ok = q({"-o", q.t / "q2", "--log", q.t / "q2.jsonl"});  // beside it: fine
  EXPECT_EQ(ok.status, 0) << ok.err;
}

// A GGUF model is named as one (it was "not a .safetensors or .npz file").
TEST(QuantizeOptionsCli, GgufModelIsNamedAsOne) {
  QuantizeRun q;
  const auto r = test::run_awq({"quantize", test::data_path("gguf/model-llama.gguf"), "-o", q.t / "q", "-q"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("model-llama.gguf: is a GGUF file"), std::string::npos) << r.err;
  q.expect_nothing_written();
}

}  // namespace
}  // namespace awq
