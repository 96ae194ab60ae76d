// Issue 15: running out of memory anyway (past the check_resources refusal, here bypassed with its
// test hook) ends in a message naming the run, exit status 1 and nothing written, not a bare
// "std::bad_alloc".
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;

// An AutoAWQ GEMM checkpoint of one 65536 x 65536 module stored as a sparse file (no disk used):
// 2 GiB of packed codes that unpack to 4 GiB.
void write_sparse_huge_module(const std::string& dir) {
  fs::create_directories(dir);
  test::write_bytes(dir + "/config.json",
                    R"({"quantization_config": {"bits": 4, "group_size": 128, "modules_to_not_convert": null, "quant_method": "awq", "version": "gemm", "zero_point": true}})");
  const uint64_t k = 65536, n = 65536, g = 128;
  const std::string m = "model.layers.0.mlp.down_proj";
  nlohmann::ordered_json h;
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  auto add = [&](const std::string& name, const char* dt, uint64_t rows, uint64_t cols, uint64_t esize) {
    h[name] = {{"dtype", dt}, {"shape", {rows, cols}}, {"data_offsets", {off, off + rows * cols * esize}}};
    off += rows * cols * esize;
  };
  add(m + ".qweight", "I32", k, n / 8, 4);
  add(m + ".qzeros", "I32", k / g, n / 8, 4);
  add(m + ".scales", "F16", k / g, n, 2);
  std::string hj = h.dump();
  hj.append((8 - hj.size() % 8) % 8, ' ');
  std::string head(8, '\0');
  for (int i = 0; i < 8; ++i) head[size_t(i)] = char((uint64_t(hj.size()) >> (8 * i)) & 0xff);
  test::write_bytes(dir + "/model.safetensors", head + hj);
  fs::resize_file(dir + "/model.safetensors", 8 + hj.size() + off);
}

TEST(OutOfMemoryCli, BadAllocNamesTheRunAndLeavesNothing) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: an address-space limit cannot run it";
#endif
  test::TempDir t;
  write_sparse_huge_module(t / "in");
  // 5 GiB of address space: the 2 GiB mapping and the program fit, the 4 GiB of codes do not.
  const std::string cmd = "ulimit -v 5242880; AWQ_TEST_MEM_AVAILABLE=1000000000000 '" + std::string(AWQ_BINARY) + "' dequantize '" +
                          (t / "in") + "' -o '" + (t / "out") + "' -q 2>'" + (t / "err") + "'";
  const int rc = std::system(("bash -c \"" + cmd + "\"").c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  const std::string err = test::read_bytes(t / "err");
  EXPECT_EQ(WEXITSTATUS(rc), 1) << err;
  EXPECT_NE(err.find("out of memory (std::bad_alloc) while running `awq dequantize"), std::string::npos) << err;
  EXPECT_EQ(test::entry_names(t.path()), (std::vector<std::string>{"err", "in"}));
}

}  // namespace
}  // namespace awq
