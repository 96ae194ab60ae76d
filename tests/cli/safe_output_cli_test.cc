// Issue 15, "Data loss": every command that writes refuses, even with --force, an OUT_DIR that is,
// contains or lies inside its input (resolved, symlinks included), and leaves the input byte for
// byte as it was; two runs writing the same OUT_DIR: exactly one wins, nothing left beside.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "awq/model_dir.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;
const std::string kTiny = test::data_path("tiny-llama-awq");

// The writing commands, each with what it needs to run on tiny-llama-awq.
const std::vector<std::vector<std::string>> kWriters = {{"dequantize"}, {"convert", "--to", "gptq"}, {"repair"}};

std::vector<std::string> cmd(const std::vector<std::string>& writer, const std::string& in, const std::string& out) {
  std::vector<std::string> a{writer[0], in, "-o", out, "--force"};
  if (writer[0] != "encrypt" && writer[0] != "decrypt") a.push_back("-q");
  a.insert(a.end(), writer.begin() + 1, writer.end());
  return a;
}

// Runs `writer` with --force on `in` -> `out`; expects a refusal naming both paths, containing
// `why`, with the input tree byte-identical and the parent's entries unchanged.
void expect_refused(const std::vector<std::string>& writer, const std::string& in, const std::string& out, const std::string& why,
                    const std::string& model_dir, const std::string& parent, const std::string& named_input = "") {
  const auto before = test::snapshot_tree(model_dir);
  const auto entries = test::entry_names(parent);
  const auto r = test::run_awq(cmd(writer, in, out));
  EXPECT_EQ(r.status, 1) << writer[0] << " -o " << out << "\n" << r.err;
  EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(out), std::string::npos) << "names OUT_DIR: " << r.err;
  EXPECT_NE(r.err.find(named_input.empty() ? in : named_input), std::string::npos) << "names the input: " << r.err;
  EXPECT_TRUE(test::snapshot_tree(model_dir) == before) << writer[0] << ": the input changed";
  EXPECT_EQ(test::entry_names(parent), entries) << writer[0] << ": something was left beside";
}

TEST(SafeOutput, RefusesOutputThatIsContainsOrIsInsideTheInputEvenWithForce) {
  test::TempDir t;
  const std::string m = t / "models/m";
  fs::create_directories(t / "models");
  test::copy_dir(kTiny, m);
  test::write_bytes(t / "models/beside.txt", "the user's other file");
  fs::create_directory_symlink(m, t / "models/link");
  for (const auto& w : kWriters) {
    SCOPED_TRACE(w[0]);
    expect_refused(w, m, m, "is the input", m, t / "models");
    expect_refused(w, m, m + "/", "is the input", m, t / "models");
    expect_refused(w, m, t / "models", "contains the input", m, t / "models");
    expect_refused(w, m, m + "/..", "contains the input", m, t / "models");
    expect_refused(w, m, m + "/sub", "lies inside the input", m, t / "models");
    EXPECT_FALSE(fs::exists(m + "/sub"));
    // Symlinks: the output a link to the input, the input a link to the output.
    expect_refused(w, m, t / "models/link", "is the input", m, t / "models");
    expect_refused(w, t / "models/link", m, "is the input", m, t / "models");
    expect_refused(w, t / "models/link", t / "models/link/sub", "lies inside the input", m, t / "models");
  }
  EXPECT_EQ(test::read_bytes(t / "models/beside.txt"), "the user's other file");
  // compare's --html report (a single file) never overwrites or lands inside a model it reads.
  const auto before = test::snapshot_tree(m);
  for (const std::string html : {m + "/model.safetensors", m + "/report.html", t / "models/link/config.json"}) {
    const auto r = test::run_awq({"compare", m, m, "--html", html});
    EXPECT_EQ(r.status, 1) << html << ": " << r.err;
    EXPECT_NE(r.err.find("input"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(test::snapshot_tree(m) == before);
}

// encrypt / decrypt: the model and the key file are both inputs; replacing a directory holding the
// key would make the encrypted output unreadable forever.
TEST(SafeOutput, EncryptAndDecryptRefuseTheModelAndTheKey) {
  test::TempDir t;
  const std::string m = t / "work/m", key = t / "work/keys/k";
  fs::create_directories(t / "work/keys");
  test::copy_dir(kTiny, m);
  ASSERT_EQ(test::run_awq({"keygen", "-o", key}).status, 0);
  const std::string key_bytes = test::read_bytes(key);
  expect_refused({"encrypt", "--key-file", key}, m, m, "is the input", m, t / "work");
  expect_refused({"encrypt", "--key-file", key}, m, m + "/enc", "lies inside the input", m, t / "work");
  expect_refused({"encrypt", "--key-file", key}, m, t / "work/keys", "contains the input", m, t / "work", key);
  EXPECT_EQ(test::read_bytes(key), key_bytes);
  ASSERT_EQ(test::run_awq({"encrypt", m, "-o", t / "work/enc", "--key-file", key}).status, 0);
  const std::string enc = t / "work/enc";
  expect_refused({"decrypt", "--key-file", key}, enc, enc, "is the input", enc, t / "work");
  expect_refused({"decrypt", "--key-file", key}, enc, t / "work/keys", "contains the input", enc, t / "work", key);
  EXPECT_EQ(test::read_bytes(key), key_bytes);
}

// A Hugging Face cache snapshot: the model directory holds symlinks into blobs/. Replacing blobs/
// would delete the weights although it is not above the model directory.
TEST(SafeOutput, RefusesOutputHoldingTheFilesASymlinkedModelPointsTo) {
  test::TempDir t;
  test::copy_dir(kTiny, t / "blobs");
  fs::create_directory(t / "snapshot");
  for (const auto& e : fs::directory_iterator(t / "blobs")) fs::create_symlink(e.path(), t.path() / "snapshot" / e.path().filename());
  for (const auto& w : kWriters) {
    SCOPED_TRACE(w[0]);
    expect_refused(w, t / "snapshot", t / "blobs", "contains the input", t / "blobs", t.path());
  }
  // An unrelated OUT_DIR beside them is fine.
  const auto r = test::run_awq(cmd(kWriters[0], t / "snapshot", t / "dense"));
  EXPECT_EQ(r.status, 0) << r.err;
}

// Two processes pass the "OUT_DIR does not exist" check, then both commit (held at the rename by
// the AWQ_TEST_COMMIT_GATE hook and released together): exactly one wins.
void race(const std::vector<std::string>& extra_env, bool out_exists_empty) {
  test::TempDir t, gate_dir;
  const std::string out = t / "out", gate = gate_dir / "gate";
  if (out_exists_empty) fs::create_directory(out);
  std::vector<std::string> env{"AWQ_TEST_COMMIT_GATE=" + gate};
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  const int a = test::spawn_awq({"dequantize", kTiny, "-o", out, "-q"}, gate_dir / "a.log", env);
  const int b = test::spawn_awq({"dequantize", kTiny, "-o", out, "-q"}, gate_dir / "b.log", env);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!(fs::exists(gate + "." + std::to_string(a) + ".ready") && fs::exists(gate + "." + std::to_string(b) + ".ready")) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  test::write_bytes(gate, "go");
  int sa = 0, sb = 0;
  ::waitpid(a, &sa, 0);
  ::waitpid(b, &sb, 0);
  ASSERT_TRUE(WIFEXITED(sa) && WIFEXITED(sb));
  const int ea = WEXITSTATUS(sa), eb = WEXITSTATUS(sb);
  EXPECT_EQ(std::min(ea, eb), 0);
  EXPECT_EQ(std::max(ea, eb), 1);
  const std::string loser_log = test::read_bytes(ea == 1 ? gate_dir / "a.log" : gate_dir / "b.log");
  EXPECT_NE(loser_log.find("another run wrote this output directory first"), std::string::npos) << loser_log;
  EXPECT_EQ(test::entry_names(t.path()), std::vector<std::string>{"out"});  // no temporaries, no lock files
  ModelDir d(out);
  EXPECT_TRUE(d.config().is_object());
  EXPECT_FALSE(d.tensors().empty());
}

TEST(SafeOutput, TwoRunsToOneOutputDirExactlyOneWins) { race({}, false); }
TEST(SafeOutput, TwoRunsToOneEmptyOutputDirExactlyOneWins) { race({}, true); }
TEST(SafeOutput, TwoRunsExactlyOneWinsWithoutRenameat2Flags) { race({"AWQ_TEST_NO_RENAMEAT2=1"}, false); }

TEST(SafeOutput, ForceStillReplacesAnOutputThatIsNotTheInput) {
  test::TempDir t;
  for (const auto& w : kWriters) {
    SCOPED_TRACE(w[0]);
    fs::create_directories(t / "out");
    test::write_bytes(t / "out/old.txt", "old");
    const auto r = test::run_awq(cmd(w, kTiny, t / "out"));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(fs::exists(t / "out/old.txt"));
    EXPECT_TRUE(fs::exists(t / "out/config.json"));
    EXPECT_EQ(test::entry_names(t.path()), std::vector<std::string>{"out"});
  }
}

}  // namespace
}  // namespace awq
