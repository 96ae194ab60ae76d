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

// One AutoAWQ GEMM module large enough (K = N = 8192) that converting it takes a while.
void write_big_gemm(const std::string& dir) {
  fs::create_directories(dir);
  test::write_bytes(dir + "/config.json",
                    R"({"quantization_config": {"bits": 4, "group_size": 128, "modules_to_not_convert": null, "quant_method": "awq", "version": "gemm", "zero_point": true}})");
  const int64_t k = 8192, n = 8192, g = 128;
  const std::string m = "model.layers.0.mlp.down_proj";
  SafetensorsWriter w(dir + "/model.safetensors", {{m + ".qweight", DType::I32, {k, n / 8}}, {m + ".qzeros", DType::I32, {k / g, n / 8}},
                                                   {m + ".scales", DType::F16, {k / g, n}}});
  std::mt19937 rng(7);
  std::vector<uint32_t> words(size_t(k * n / 8));
  for (auto& x : words) x = rng();
  w.append(words.data(), words.size() * 4);
  std::vector<uint32_t> zeros(size_t(k / g * n / 8), 0x88888888u);
  w.append(zeros.data(), zeros.size() * 4);
  std::vector<uint16_t> scales(size_t(k / g * n), f32_to_f16(0.01f));
  w.append(scales.data(), scales.size() * 2);
  w.commit();
}

TEST(ConvertKill, PreviousOutputSurvivesKillDashNine) {
  test::TempDir t;
  write_big_gemm(t / "in");
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
