// Issue 15, "Errors that do not help": usage errors exit 2 in every subcommand (README, "Exit
// statuses"), dtypes in any case, an overflowing size says so, and work larger than the memory or
// disk available is refused before writing, naming the module and the bytes.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "awq/model_dir.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;
const std::string kTiny = test::data_path("tiny-llama-awq");

TEST(UsageCli, UsageErrorsExitTwoInEverySubcommand) {
  test::TempDir t;
  const std::vector<std::vector<std::string>> bad = {
      {},                                                       // no subcommand
      {"frobnicate"},                                           // unknown subcommand
      {"inspect"},                                              // missing MODEL
      {"inspect", kTiny, "--no-such-flag"},
      {"check", kTiny, "--no-such-flag"},
      {"dequantize", kTiny},                                    // missing -o
      {"dequantize", kTiny, "-o", t / "o", "--dtype", "int4"},
      {"dequantize", kTiny, "-o", t / "o", "--max-shard-size", "lots"},
      {"dequantize", kTiny, "-o", t / "o", "--max-shard-size", "99999999999999999999GB"},
      {"convert", kTiny, "-o", t / "o", "--to", "onnx"},
      {"convert", kTiny, "-o", t / "o", "--gptq-format", "v3"},
      {"convert", kTiny, "-o", t / "o", "--max-shard-size", "-5GB"},
      {"repair", kTiny},                                        // missing -o
      {"repair", kTiny, "-o", t / "o", "--bogus"},
      {"compare", kTiny},                                       // missing QUANT
      {"compare", kTiny, kTiny, "--cosine-bar", "5"},
      {"bench", "gemv", "--shape", "4096"},
      {"bench", "gemm", "--m", "0"},
      {"bench", "gemv", "--threads", "0"},
      {"run", kTiny, "-p", "x", "--threads", "0"},             // MODEL/--threads: one adder for run and bench run
      {"run", kTiny, "-p", "x", "--threads", "1,2"},           // run takes one count
      {"bench", "run", kTiny, "--threads", "1,2000"},
      {"bench", "dequant", "--dtype", "int8"},
      {"bench", "gemv", "--target", "NOPE"},
  };
  for (const auto& args : bad) {
    const auto r = test::run_awq(args);
    std::string line;
    for (const auto& a : args) line += a + " ";
    EXPECT_EQ(r.status, 2) << "awq " << line << "\n" << r.err;
    EXPECT_FALSE(r.err.empty()) << line;
  }
  EXPECT_FALSE(fs::exists(t / "o"));
  EXPECT_EQ(test::run_awq({"--help"}).status, 0);
  EXPECT_EQ(test::run_awq({"dequantize", "--help"}).status, 0);
  EXPECT_EQ(test::run_awq({"--version"}).status, 0);
  // Not usage errors: a refusal or failure of a well-formed command is 1.
  EXPECT_EQ(test::run_awq({"inspect", "/nonexistent/model"}).status, 1);
}

TEST(UsageCli, OverflowingShardSizeSaysTooLarge) {
  test::TempDir t;
  for (const std::string s : {"99999999999999999999GB", "1e400", "20000000000GB"}) {
    const auto r = test::run_awq({"dequantize", kTiny, "-o", t / "o", "--max-shard-size", s});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("too large"), std::string::npos) << s << ": " << r.err;
    EXPECT_EQ(r.err.find("must be positive"), std::string::npos) << s << ": " << r.err;
  }
  const auto r = test::run_awq({"dequantize", kTiny, "-o", t / "o", "--max-shard-size", "0GB"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("must be positive"), std::string::npos) << r.err;
}

TEST(UsageCli, DtypeInAnyCaseAsOurOutputPrintsIt) {
  test::TempDir t;
  const std::vector<std::pair<std::string, DType>> cases = {{"F16", DType::F16}, {"BF16", DType::BF16}, {"F32", DType::F32}, {"Bf16", DType::BF16}};
  for (const auto& [name, dt] : cases) {
    const std::string out = t / ("o-" + name);
    const auto r = test::run_awq({"dequantize", kTiny, "-o", out, "--dtype", name, "-q"});
    ASSERT_EQ(r.status, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find("dtype " + std::string(dtype_name(dt))), std::string::npos) << r.out;
    ModelDir d(out);
    EXPECT_EQ(d.get("model.layers.0.mlp.down_proj.weight").dtype, dt) << name;
  }
  // bench takes the same spellings: F32 passes parsing (the run then stops at the bad --shape,
  // which is checked after parsing, so nothing is timed).
  const auto r = test::run_awq({"bench", "dequant", "--dtype", "F32", "--shape", "0x0"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--shape"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("--dtype"), std::string::npos) << r.err;
}

// The AWQ_TEST_MEM_AVAILABLE / AWQ_TEST_DISK_FREE hooks stand in for a small machine.
struct EnvVar {
  EnvVar(const char* n, const std::string& v) : name(n) { ::setenv(n, v.c_str(), 1); }
  ~EnvVar() { ::unsetenv(name); }
  const char* name;
};

TEST(UsageCli, ModuleLargerThanMemoryIsRefusedBeforeWriting) {
  test::TempDir t;
  for (const std::vector<std::string> c : {std::vector<std::string>{"dequantize"}, {"convert", "--to", "gptq"}}) {
    std::vector<std::string> args{c[0], kTiny, "-o", t / "o", "-q"};
    args.insert(args.end(), c.begin() + 1, c.end());
    {
      EnvVar mem("AWQ_TEST_MEM_AVAILABLE", "1000");
      const auto r = test::run_awq(args);
      EXPECT_EQ(r.status, 1) << r.err;
      EXPECT_NE(r.err.find("model.layers."), std::string::npos) << "names the module: " << r.err;
      EXPECT_NE(r.err.find("bytes) of memory"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("1.00 KB is available"), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find("bad_alloc"), std::string::npos) << r.err;
      EXPECT_TRUE(test::entry_names(t.path()).empty()) << "nothing written";
    }
    {
      EnvVar mem("AWQ_TEST_MEM_AVAILABLE", "100000000000");  // enough: the same run succeeds
      const auto r = test::run_awq(args);
      EXPECT_EQ(r.status, 0) << r.err;
      fs::remove_all(t / "o");
    }
  }
}

TEST(UsageCli, OutputLargerThanFreeDiskIsRefusedBeforeWriting) {
  test::TempDir t;
  for (const std::vector<std::string> c : {std::vector<std::string>{"dequantize"}, {"convert", "--to", "gptq"}, {"repair"}}) {
    std::vector<std::string> args{c[0], kTiny, "-o", t / "o", "-q"};
    args.insert(args.end(), c.begin() + 1, c.end());
    fs::create_directory(t / "o");
    test::write_bytes(t / "o/previous", "kept");
    args.push_back("--force");
    {
      EnvVar disk("AWQ_TEST_DISK_FREE", "1000");
      const auto r = test::run_awq(args);
      EXPECT_EQ(r.status, 1) << r.err;
      EXPECT_NE(r.err.find("bytes) of disk"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(t / "o"), std::string::npos) << r.err;
      EXPECT_EQ(test::read_bytes(t / "o/previous"), "kept");
      EXPECT_EQ(test::entry_names(t.path()), std::vector<std::string>{"o"});
    }
    fs::remove_all(t / "o");
  }
}

// A GGUF file is dequantized through the same writer (write_dequantized): refused the same way.
TEST(UsageCli, GgufDequantizeChecksMemoryAndDiskBeforeWriting) {
  test::TempDir src, t;
  const std::string gguf = src / "m.gguf";
  const auto made = test::run_awq({"convert", kTiny, "-o", gguf, "--to", "gguf", "-q"});
  ASSERT_EQ(made.status, 0) << made.err;
  const std::vector<std::string> args{"dequantize", gguf, "-o", t / "o", "-q"};
  for (const auto& [var, what] : {std::pair<const char*, const char*>{"AWQ_TEST_MEM_AVAILABLE", "bytes) of memory"},
                                  {"AWQ_TEST_DISK_FREE", "bytes) of disk"}}) {
    EnvVar small(var, "1000");
    const auto r = test::run_awq(args);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_TRUE(test::entry_names(t.path()).empty()) << "nothing written";
  }
  const auto ok = test::run_awq(args);
  EXPECT_EQ(ok.status, 0) << ok.err;
}

}  // namespace
}  // namespace awq
