// awq_synth (tools/synth_checkpoint.cc), the measurement tool that writes 7B-shaped checkpoints:
// "--help" once became an output directory holding 3.7 GB. Usage is handled as awq's own is: help
// exits 0 and writes nothing, a bad flag or value exits 2, an existing output is refused without
// --force, and a small run writes a checkpoint awq reads.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

test::RunResult synth(const std::vector<std::string>& args, const std::string& cwd) {
  return test::run_program(AWQ_SYNTH, args, cwd);
}

const std::vector<std::string> kTiny = {"--layers", "1", "--hidden", "64", "--intermediate", "128", "--vocab", "32", "--group", "32"};

TEST(SynthCli, HelpPrintsUsageAndWritesNothing) {
  test::TempDir tmp;
  const auto r = synth({"--help"}, tmp.path().string());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("OUT_DIR"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--dense-bf16"), std::string::npos) << r.out;
  EXPECT_TRUE(test::entry_names(tmp.path().string()).empty());
}

TEST(SynthCli, UsageErrorsExit2AndWriteNothing) {
  test::TempDir tmp;
  const std::string out = tmp / "out";
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},                                   // no OUT_DIR
           {out, "--bogus", "1"},                // unknown flag
           {out, "--layers"},                    // missing value
           {out, "--layers", "x"},               // not a number
           {out, "--layers", "0"},               // not positive
           {out, "--hidden", "100"},             // not a multiple of the heads / group
           {out, "extra"}}) {                    // a second positional
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    SCOPED_TRACE(joined);
    const auto r = synth(args, tmp.path().string());
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_FALSE(r.err.empty());
    EXPECT_TRUE(test::entry_names(tmp.path().string()).empty());
  }
}

TEST(SynthCli, WritesACheckpointAndRefusesToOverwriteItWithoutForce) {
  test::TempDir tmp;
  const std::string out = tmp / "m";
  std::vector<std::string> args = {out};
  args.insert(args.end(), kTiny.begin(), kTiny.end());
  const auto r = synth(args, tmp.path().string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::run_awq({"inspect", out}).status, 0);
  const auto before = test::snapshot_tree(out);
  const auto again = synth(args, tmp.path().string());
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again.err;
  EXPECT_EQ(test::snapshot_tree(out), before);
  args.push_back("--force");
  EXPECT_EQ(synth(args, tmp.path().string()).status, 0);
  EXPECT_EQ(test::entry_names(tmp.path().string()), std::vector<std::string>{"m"});  // no temporaries left
}

}  // namespace
}  // namespace awq
