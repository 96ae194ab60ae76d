// Hostile-user review (session 4): nothing on disk lost or half-written. A file-size limit ends in an
// error that cleans up (not in SIGXFSZ's silent kill), and no side file of a command (quantize's
// --log and saved progress, run's --logits-out) may write over or remove what the command reads.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "awq/dtype.h"
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

// GGUF export: a NaN scale, or a scale whose Q4_1 min (m = −z·s, an f16 field) overflows, was
// written silently (NaN / Inf weights in llama.cpp). Now refused naming the module, nothing written.
TEST(GgufNumbers, NonfiniteOrOverflowingValuesAreRefused) {
  test::TempDir t;
  const struct {
    uint16_t scale_bits;
    std::string reason;
  } cases[] = {{0x7E00, "NaN/Inf in the source"}, {0x7BFF, "cannot hold it"}};  // f16 NaN; 65504, the largest f16
  for (const auto& c : cases) {
    const std::string model = t / "m", out = t / "m.gguf";
    fs::remove_all(model);
    test::copy_dir(test::data_path("tiny-llama-awq"), model);
    test::rewrite_safetensors(model + "/model.safetensors", [&](std::vector<test::EditTensor>& ts) {
      for (auto& e : ts)
        if (e.name == "model.layers.0.mlp.down_proj.scales") {
          ASSERT_EQ(e.dtype, DType::F16);
          const size_t at = 2 * (1 * size_t(e.shape[1]) + 5);  // row 1 (group 1), column 5
          e.bytes[at] = char(c.scale_bits & 0xFF), e.bytes[at + 1] = char(c.scale_bits >> 8);
        }
    });
    const auto r = test::run_awq({"convert", model, "-o", out, "--to", "gguf"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, "model.layers.0.mlp.down_proj")) << r.err;
    EXPECT_TRUE(has(r.err, c.reason)) << r.err;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_EQ(test::entry_names(t.path()), std::vector<std::string>{"m"});
  }
  // The unedited model still exports.
  EXPECT_EQ(test::run_awq({"convert", test::data_path("tiny-llama-awq"), "-o", t / "ok.gguf", "--to", "gguf"}).status, 0);
}

// A NaN scale made NaN logits that `run` sampled from and --logits-out wrote, exit 0. Refused now.
TEST(RunNonfinite, NanLogitsAreRefusedNotWritten) {
  test::TempDir t;
  const std::string model = t / "m", out = t / "logits.safetensors";
  test::copy_dir(test::data_path("tiny-llama-awq"), model);
  test::rewrite_safetensors(model + "/model.safetensors", [&](std::vector<test::EditTensor>& ts) {
    for (auto& e : ts)
      if (e.name == "model.layers.0.mlp.down_proj.scales")
        for (size_t i = 0; i < e.bytes.size(); i += 2) e.bytes[i] = char(0x00), e.bytes[i + 1] = char(0x7E);  // every scale NaN
  });
  const auto r = test::run_awq({"run", model, "-p", "hello there", "-n", "2", "--logits-out", out});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "NaN") && has(r.err, "awq check")) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// A missing MODEL or REF is named as missing (eval said "no tokenizer.json or tokenizer.model").
TEST(EvalMissingModel, NamedAsMissing) {
  test::TempDir t;
  for (const auto& args : {std::vector<std::string>{"eval", t / "nope"}, std::vector<std::string>{"eval", bundled(), "--ref", t / "nope"}}) {
    const auto r = test::run_awq(args);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, "nope: no such model directory or file")) << r.err;
  }
}

// SIGINT while `convert --to gguf` writes its one file (minutes on a 7B): the temporary
// `.<name>.tmp-<pid>` is removed (it was left behind, GBs, with a name no later run cleans) and the
// previous file is untouched.
TEST(SignalCleanup, GgufTemporaryFileRemovedOnSigint) {
  test::TempDir t;
  test::copy_dir(bundled(), t / "in");  // 4 M weights to q8_0: the file is open for a few ms
  test::write_bytes(t / "out.gguf", "old output");
  const int pid = test::spawn_awq({"convert", t / "in", "-o", t / "out.gguf", "--to", "gguf", "--dense-type", "q8_0", "--force"}, t / "log");
  const fs::path tmp = t.path() / (".out.gguf.tmp-" + std::to_string(pid));
  bool writing = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (fs::exists(tmp, ec)) {
      writing = true;
      break;
    }
    int st;
    if (::waitpid(pid, &st, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  ::kill(pid, SIGINT);
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (!writing) GTEST_SKIP() << "the run finished before it could be interrupted: " << test::read_bytes(t / "log");
  ASSERT_TRUE(WIFSIGNALED(st)) << "exit status " << (WIFEXITED(st) ? WEXITSTATUS(st) : -1) << ": " << test::read_bytes(t / "log");
  EXPECT_EQ(WTERMSIG(st), SIGINT);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(test::read_bytes(t / "out.gguf"), "old output");
  EXPECT_EQ(test::entry_names(t.path()), (std::vector<std::string>{"in", "log", "out.gguf"}));
}

}  // namespace
}  // namespace awq
