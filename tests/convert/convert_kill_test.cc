// Reliability: `awq convert --force` killed with -9 mid-run leaves the previous output intact, and
// the next run removes the killed run's temporary directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "awq/dtype.h"
#include "awq/safetensors.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;


TEST(ConvertKill, PreviousOutputSurvivesKillDashNine) {
  test::TempDir t;
  test::write_big_gemm(t / "in", 7);
  fs::create_directory(t / "out");
  test::write_bytes(t / "out/previous.txt", "old output");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string in = t / "in", out = t / "out";
    ::execl(AWQ_BINARY, AWQ_BINARY, "convert", in.c_str(), "-o", out.c_str(), "--to", "gptq", "--force", "-q", (char*)nullptr);
    ::_exit(127);
  }
  const fs::path tmp = t.path() / (".out.awq-tmp-" + std::to_string(pid));
  bool seen = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (fs::exists(tmp, ec)) {
      seen = true;
      break;
    }
    int st;
    if (::waitpid(pid, &st, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // mid-write
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (!seen || !WIFSIGNALED(st)) GTEST_SKIP() << "the run finished before it could be killed";
  EXPECT_EQ(test::read_bytes(t / "out/previous.txt"), "old output");
  EXPECT_FALSE(fs::exists(t / "out/model.safetensors"));
  // The next run cleans up the dead run's temporary directory and replaces the output.
  const auto r = test::run_awq({"convert", t / "in", "-o", t / "out", "--to", "gptq", "--force", "-q"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_TRUE(fs::exists(t / "out/model.safetensors"));
  EXPECT_FALSE(fs::exists(t / "out/previous.txt"));
}

}  // namespace
}  // namespace awq
