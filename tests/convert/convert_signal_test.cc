// Issue 15: SIGTERM or SIGINT during a long write removes the temporary output directory, then
// the signal takes its default action (the exit status names it); the previous OUT_DIR is intact.
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


void interrupt_mid_write(int sig, const std::vector<std::string>& command) {
  test::TempDir t;
  test::write_big_gemm(t / "in", 11);
  fs::create_directory(t / "out");
  test::write_bytes(t / "out/previous.txt", "old output");
  std::vector<std::string> args = command;
  args.insert(args.begin() + 1, t / "in");
  for (const std::string& a : std::vector<std::string>{"-o", t / "out", "--force", "-q"}) args.push_back(a);
  const int pid = test::spawn_awq(args, t / "log");
  const fs::path tmp = t.path() / (".out.awq-tmp-" + std::to_string(pid));
  bool writing = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (fs::exists(tmp / "model.safetensors", ec) || fs::exists(tmp / "model-00001-of-00002.safetensors", ec)) {
      writing = true;
      break;
    }
    int st;
    if (::waitpid(pid, &st, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(pid, sig);
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (!writing) GTEST_SKIP() << "the run finished before it could be interrupted: " << test::read_bytes(t / "log");
  ASSERT_TRUE(WIFSIGNALED(st)) << "exit status " << (WIFEXITED(st) ? WEXITSTATUS(st) : -1) << ": " << test::read_bytes(t / "log");
  EXPECT_EQ(WTERMSIG(st), sig);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(test::read_bytes(t / "out/previous.txt"), "old output");
  EXPECT_EQ(test::entry_names(t / "out"), std::vector<std::string>{"previous.txt"});
  EXPECT_EQ(test::entry_names(t.path()), (std::vector<std::string>{"in", "log", "out"}));  // nothing else beside
}

TEST(ConvertSignal, SigtermMidWriteCleansUpAndReportsTheSignal) { interrupt_mid_write(SIGTERM, {"convert", "--to", "gptq"}); }
TEST(ConvertSignal, SigintMidWriteCleansUpAndReportsTheSignal) { interrupt_mid_write(SIGINT, {"convert", "--to", "gptq"}); }
TEST(ConvertSignal, SigtermDuringDequantizeToo) { interrupt_mid_write(SIGTERM, {"dequantize", "--max-shard-size", "64MB"}); }

}  // namespace
}  // namespace awq
