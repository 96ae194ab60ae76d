// Hostile-user review (session 4): nothing on disk lost or half-written. A file-size limit ends in an
// error that cleans up (not in SIGXFSZ's silent kill), and no side file of a command (quantize's
// --log and saved progress, run's --logits-out) may write over or remove what the command reads.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>

#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

std::string bundled() { return test::data_path("../../models/kjv-llama"); }
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Runs awq under bash's `ulimit -f BLOCKS` (1024-byte blocks); stderr to `err`; returns the exit status.
int run_awq_file_limited(int blocks, const std::string& args, const std::string& err) {
  const std::string cmd = "ulimit -f " + std::to_string(blocks) + " && exec '" + std::string(AWQ_BINARY) + "' " + args +
                          " >/dev/null 2>'" + err + "' </dev/null";
  const int rc = std::system(("/bin/bash -c \"" + cmd + "\"").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Past the file-size limit a write fails (EFBIG) and the command exits 1 naming it, its temporary
// removed; before the fix SIGXFSZ killed it and left `.<out>.awq-tmp-<pid>` or a 0-byte key file.
TEST(FileSizeLimit, WriteFailsCleanlyAndLeavesNothing) {
  test::TempDir tmp;
  const std::string err = tmp / "err", model = test::data_path("tiny-llama-awq");
  fs::create_directory(tmp / "work");
  const std::string work = tmp / "work";
  // A previous output kept intact under --force.
  ASSERT_EQ(test::run_awq({"dequantize", model, "-o", work + "/keep"}).status, 0);
  const auto before = test::snapshot_tree(work + "/keep");
  struct Case {
    std::string args, left;  // arguments; the path that must not exist afterwards
  } cases[] = {
      {"dequantize '" + model + "' -o '" + work + "/out' --dtype f32", work + "/out"},
      {"dequantize '" + model + "' -o '" + work + "/keep' --dtype f32 --force", ""},
      {"convert '" + model + "' -o '" + work + "/out.gguf' --to gguf", work + "/out.gguf"},
      {"keygen -o '" + work + "/key'", work + "/key"},
  };
  for (const auto& c : cases) {
    // The key file is 76 bytes: only a limit of 0 stops it (and then stderr's file stays empty too).
    const bool key = c.args.find("keygen") != std::string::npos;
    const int status = run_awq_file_limited(key ? 0 : 100, c.args, err);
    const std::string e = test::read_bytes(err);
    EXPECT_EQ(status, 1) << c.args << ": " << e;
    if (!key) EXPECT_TRUE(has(e, "File too large")) << c.args << ": " << e;
    if (!c.left.empty()) EXPECT_FALSE(fs::exists(c.left)) << c.args;
    EXPECT_EQ(test::entry_names(work), std::vector<std::string>{"keep"}) << c.args << ": a temporary was left";
  }
  EXPECT_TRUE(test::snapshot_tree(work + "/keep") == before) << "changed: " << work + "/keep";
}

// quantize --log appends: into a file of the model or the calibration text it would corrupt them.
// A model directory named like OUT_DIR's saved progress would be removed as stale progress.
TEST(SideOutputs, QuantizeNeverWritesOrRemovesItsInputs) {
  test::TempDir tmp;
  const std::string model = tmp / "m", calib = tmp / "calib.txt";
  test::copy_dir(bundled(), model);
  fs::copy_file(bundled() + "/calib.txt", calib);
  const auto model_before = test::snapshot_tree(model);
  const std::string calib_before = test::read_bytes(calib);
  const struct {
    std::vector<std::string> args;
    std::string named;
  } cases[] = {
      {{"quantize", model, "-o", tmp / "q", "--method", "rtn", "--mixed", "auto", "--log", model + "/config.json", "-q"}, "config.json"},
      {{"quantize", model, "-o", tmp / "q", "--calib", calib, "--samples", "2", "--seqlen", "64", "--log", calib, "-q"}, "calib.txt"},
  };
  for (const auto& c : cases) {
    const auto r = test::run_awq(c.args);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, c.named) && has(r.err, "input")) << r.err;
    EXPECT_FALSE(fs::exists(tmp / "q"));
  }
  // The calibration text's directory as OUT_DIR (with --force) would delete it.
  fs::create_directory(tmp / "cdir");
  fs::copy_file(calib, tmp / "cdir/calib.txt");
  auto r = test::run_awq({"quantize", model, "-o", tmp / "cdir", "--calib", tmp / "cdir/calib.txt", "--samples", "2", "--seqlen", "64",
                          "--force", "-q"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "cdir/calib.txt"));
  // The model itself named "<OUT_DIR>.awq-progress".
  const std::string prog_model = tmp / "z.awq-progress";
  test::copy_dir(bundled(), prog_model);
  const auto prog_before = test::snapshot_tree(prog_model);
  r = test::run_awq({"quantize", prog_model, "-o", tmp / "z", "--method", "rtn", "-q"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "awq-progress")) << r.err;
  EXPECT_TRUE(test::snapshot_tree(prog_model) == prog_before) << "changed: " << prog_model;
  EXPECT_FALSE(fs::exists(tmp / "z"));

  EXPECT_TRUE(test::snapshot_tree(model) == model_before) << "changed: " << model;
  EXPECT_EQ(test::read_bytes(calib), calib_before);
  // The same options with a log outside every input still work, and write the log.
  r = test::run_awq({"quantize", model, "-o", tmp / "q", "--method", "rtn", "--mixed", "auto", "--calib", calib, "--samples", "2",
                     "--seqlen", "64", "--log", tmp / "q.log", "-q"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(test::read_bytes(tmp / "q.log").empty());
}

// run --logits-out replaces its file: never one of the model's (it wrote logits over the weights).
TEST(SideOutputs, RunLogitsOutNeverOverwritesTheModel) {
  test::TempDir tmp;
  const std::string model = tmp / "m";
  test::copy_dir(bundled(), model);
  const auto before = test::snapshot_tree(model);
  for (const std::string target : {model + "/model.safetensors", model, model + "/sub/x.safetensors"}) {
    const auto r = test::run_awq({"run", model, "-p", "In the beginning", "-n", "0", "--logits-out", target});
    EXPECT_EQ(r.status, 1) << target << ": " << r.err;
    EXPECT_TRUE(has(r.err, "input")) << r.err;
  }
  EXPECT_TRUE(test::snapshot_tree(model) == before) << "changed: " << model;
  const auto r = test::run_awq({"run", model, "-p", "In the beginning", "-n", "0", "--logits-out", tmp / "logits.safetensors"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "logits.safetensors"));
}

}  // namespace
}  // namespace awq
