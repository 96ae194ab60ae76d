// Resumable: `awq quantize` killed with -9 (a real process) after its first finished layer
// continues from <OUT_DIR>.awq-progress/ and writes the same bytes as an uninterrupted run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> args_for(const std::string& out, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> a = {"quantize", test::data_path("../../models/kjv-llama"), "-o", out, "--samples", "4", "--seqlen", "256", "--threads", "2", "-q"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Starts `args` and kills it with -9 once its first layer is saved; returns the saved layers.
size_t kill_after_first_layer(const test::TempDir& t, const std::vector<std::string>& args, const fs::path& progress) {
  const pid_t pid = test::spawn_awq(args, t / "killed.log");
  EXPECT_GT(pid, 0);
  bool layer_done = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (fs::exists(progress / "layer-00000.safetensors", ec)) {
      layer_done = true;
      break;
    }
    int st;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      ADD_FAILURE() << "quantize ended before its first layer: " << test::read_bytes(t / "killed.log");
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  EXPECT_TRUE(layer_done);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  size_t saved = 0;
  for (const auto& e : fs::directory_iterator(progress)) saved += e.path().filename().string().rfind("layer-", 0) == 0;
  EXPECT_LT(saved, 4u) << "the run was not interrupted before its last layer";
  return saved;
}

// A run killed with --rounding gptq resumes under the default (auto = gptq with AWQ), to the same
// bytes as an uninterrupted --rounding gptq run; its saved layers are not reused by a run with
// other rounding options (the progress fingerprint holds --rounding and --gptq-damp): that run
// starts over.
TEST(QuantizeKill, GptqRoundingResumesAndOtherRoundingStartsOver) {
  test::TempDir t;
  const std::vector<std::string> gptq = {"--rounding", "gptq"};
  const fs::path progress = t.path() / "q.awq-progress";
  const size_t saved = kill_after_first_layer(t, args_for(t / "q", gptq), progress);
  ASSERT_GE(saved, 1u);
  const auto resumed = test::run_awq(args_for(t / "q"));
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("(" + std::to_string(saved) + " resumed)"), std::string::npos) << resumed.out;
  const auto fresh = test::run_awq(args_for(t / "fresh", gptq));
  ASSERT_EQ(fresh.status, 0) << fresh.err;
  EXPECT_TRUE(test::read_bytes(t / "q/model.safetensors") == test::read_bytes(t / "fresh/model.safetensors"));

  for (const std::vector<std::string>& other :
       {std::vector<std::string>{"--rounding", "nearest"}, std::vector<std::string>{"--rounding", "gptq", "--gptq-damp", "0.1"}}) {
    fs::remove_all(t.path() / "r");
    const fs::path prog2 = t.path() / "r.awq-progress";
    ASSERT_GE(kill_after_first_layer(t, args_for(t / "r", gptq), prog2), 1u);
    const auto r = test::run_awq(args_for(t / "r", other));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("(0 resumed)"), std::string::npos) << r.out;  // every layer recomputed
    EXPECT_FALSE(fs::exists(prog2));
  }
}

TEST(QuantizeKill, ResumesAtTheLastFinishedLayerAfterKillDashNine) {
  test::TempDir t;
  const std::string out = t / "q";
  const fs::path progress = t.path() / "q.awq-progress";
  const size_t saved = kill_after_first_layer(t, args_for(out), progress);
  ASSERT_FALSE(testing::Test::HasFailure());
  ASSERT_GT(saved, 0u);
  ASSERT_FALSE(fs::exists(out + "/model.safetensors"));
  // What the killed run saved survives it (the progress directory is not a temporary).
  ASSERT_TRUE(fs::exists(progress / "layer-00000.safetensors"));
  ASSERT_TRUE(fs::exists(progress / "state.json"));

  const auto resumed = test::run_awq(args_for(out));
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("(" + std::to_string(saved) + " resumed)"), std::string::npos) << resumed.out;
  EXPECT_FALSE(fs::exists(progress));  // removed once OUT_DIR is committed

  const std::string fresh = t / "fresh";
  const auto whole = test::run_awq(args_for(fresh));
  ASSERT_EQ(whole.status, 0) << whole.err;
  EXPECT_NE(whole.out.find("(0 resumed)"), std::string::npos) << whole.out;
  EXPECT_TRUE(test::read_bytes(out + "/model.safetensors") == test::read_bytes(fresh + "/model.safetensors"));
  EXPECT_EQ(test::read_bytes(out + "/config.json"), test::read_bytes(fresh + "/config.json"));
}

}  // namespace
}  // namespace awq
