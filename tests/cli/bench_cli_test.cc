// `awq bench` output contract (issue #11): the JSON keys and how they relate, the table, errors.
// Timings are not asserted (never a timed test); tiny shapes, cache-hot, a few milliseconds.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "test_util.h"

namespace awq {
namespace {

nlohmann::json bench_json(const std::vector<std::string>& args) {
  std::vector<std::string> a = {"bench"};
  a.insert(a.end(), args.begin(), args.end());
  for (const char* s : {"--hot", "--threads", "1", "--min-time", "0.01", "--json"}) a.push_back(s);
  const auto r = test::run_awq(a);
  EXPECT_EQ(r.status, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

// The keys the issue requires of every row, and the identities between them.
void expect_contract(const nlohmann::json& j, const std::string& shape, int64_t m) {
  for (const char* key : {"kernel", "path", "shape", "m", "threads", "regime", "median_s", "bytes", "gbps", "read_gbps",
                          "bw_fraction", "vs"})
    ASSERT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
  EXPECT_EQ(j["shape"], shape);
  EXPECT_EQ(j["m"], m);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["regime"], "hot");
  const double t = j["median_s"], bytes = j["bytes"], gbps = j["gbps"], read = j["read_gbps"];
  ASSERT_GT(t, 0.0);
  ASSERT_GT(read, 0.0);
  EXPECT_NEAR(gbps, bytes / t / 1e9, 1e-9 * gbps);
  EXPECT_NEAR(j["bw_fraction"].get<double>(), gbps / read, 1e-9 * gbps / read);
}

TEST(BenchCli, GemvJsonHasTheContractKeysAndRealBytes) {
  const auto rows = bench_json({"gemv", "--shape", "64x256"});
  ASSERT_EQ(rows.size(), 1u);
  const auto& j = rows[0];
  expect_contract(j, "64x256", 1);
  EXPECT_EQ(j["kernel"], "awq");
  EXPECT_TRUE(std::set<std::string>({"int8", "f32", "bf16"}).count(j["path"].get<std::string>())) << j["path"];
  // g128 compact layout: codes 64·256/2 + params 4 tiles · 2 groups · 48 B; x 256 f32; y 64 f32.
  EXPECT_EQ(j["bytes"].get<int64_t>(), 8192 + 4 * 2 * 48 + 256 * 4 + 64 * 4);
  for (const char* b : {"openblas_f32", "dense_bf16", "scalar"}) {
    ASSERT_TRUE(j["vs"].contains(b)) << b;
    EXPECT_GT(j["vs"][b].get<double>(), 0.0) << b;
  }
}

TEST(BenchCli, GemmPathOptionAndRows) {
  const auto rows = bench_json({"gemm", "--shape", "40x200", "--m", "3,5", "--path", "f32", "--no-scalar"});
  ASSERT_EQ(rows.size(), 2u);
  expect_contract(rows[0], "40x200", 3);
  expect_contract(rows[1], "40x200", 5);
  EXPECT_EQ(rows[0]["path"], "f32");
  EXPECT_TRUE(rows[0]["vs"]["scalar"].is_null());  // --no-scalar
}

TEST(BenchCli, DequantComparesWithCopy) {
  const auto rows = bench_json({"dequant", "--shape", "32x512", "--dtype", "f16"});
  ASSERT_EQ(rows.size(), 1u);
  const auto& j = rows[0];
  expect_contract(j, "32x512", 0);
  EXPECT_EQ(j["kernel"], "awq_dequant");
  EXPECT_EQ(j["path"], "f16");
  ASSERT_TRUE(j["vs"].contains("copy"));
  EXPECT_EQ(j["vs"].size(), 1u);
  // Packed weights (codes 32·512/2, params 2 tiles · 4 groups · 48 B) + the f16 output.
  EXPECT_EQ(j["bytes"].get<int64_t>(), 8192 + 2 * 4 * 48 + 32 * 512 * 2);
  EXPECT_NEAR(j["copy_bw_fraction"].get<double>(), j["gbps"].get<double>() / j["copy_gbps"].get<double>(), 1e-9);
}

TEST(BenchCli, TableByDefaultAndTargetOption) {
  const auto r = test::run_awq({"bench", "gemv", "--shape", "32x128", "--hot", "--threads", "1", "--min-time", "0.01",
                                "--target", "SCALAR", "--no-scalar"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("| kernel | path | target |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| awq | int8 | SCALAR | 32x128 |"), std::string::npos) << r.out;
}

TEST(BenchCli, BadOptionsAreClearErrors) {
  auto r = test::run_awq({"bench", "gemv", "--target", "NOPE"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--target NOPE is not a compiled target"), std::string::npos) << r.err;
  r = test::run_awq({"bench", "gemv", "--shape", "4096"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--shape must be NxK"), std::string::npos) << r.err;
  r = test::run_awq({"bench", "gemm", "--m", "0"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--m must be in"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace awq
