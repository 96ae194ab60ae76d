// `awq bench run` output contract: the JSON list's keys and values on a tiny golden model (nothing
// timed is asserted beyond being positive), and its errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace awq {
namespace {

const std::string kModel = std::string(AWQ_TEST_DATA) + "/models/llama3";

TEST(BenchRunCli, JsonListHasExactlyTheContractKeys) {
  const auto r = test::run_awq({"bench", "run", kModel, "--prompt-tokens", "5", "--gen-tokens", "3", "--threads", "1,2",
                                "--repeats", "1", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto rows = nlohmann::json::parse(r.out);
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.size(), 2u);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& j = rows[i];
    ASSERT_EQ(j.size(), 9u) << j.dump();
    EXPECT_EQ(j["model"], kModel);
    EXPECT_TRUE(j["threads"].is_number_integer());
    EXPECT_EQ(j["threads"], i == 0 ? 1 : 2);
    EXPECT_EQ(j["prompt_tokens"], 5);
    EXPECT_EQ(j["gen_tokens"], 3);
    EXPECT_GT(j["prefill_tps"].get<double>(), 0.0);
    EXPECT_GT(j["decode_tps"].get<double>(), 0.0);
    EXPECT_TRUE(j["peak_rss_bytes"].is_number_integer());
    EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 1 << 20);
    EXPECT_GT(j["load_s"].get<double>(), 0.0);
    EXPECT_GT(j["first_token_s"].get<double>(), j["load_s"].get<double>());
  }
}

TEST(BenchRunCli, LayerCacheOptions) {
  auto r = test::run_awq({"bench", "run", kModel, "--prompt-tokens", "4", "--gen-tokens", "2", "--threads", "1",
                          "--repeats", "1", "--cache-bytes", "1", "--prefetch", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("layer cache 1 bytes, prefetch 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layer cache: 0 layers held"), std::string::npos) << r.out;  // 1 byte keeps no layer
  r = test::run_awq({"bench", "run", kModel, "--cache-bytes", "lots"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--cache-bytes"), std::string::npos) << r.err;
  r = test::run_awq({"bench", "run", kModel, "--cache-bytes", "1MB", "--prefetch", "-1"});
  EXPECT_EQ(r.status, 2) << r.err;
}

TEST(BenchRunCli, TableAndErrors) {
  auto r = test::run_awq({"bench", "run", kModel, "--prompt-tokens", "4", "--gen-tokens", "2", "--threads", "1", "--repeats", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("LlamaForCausalLM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("decode"), std::string::npos) << r.out;
  r = test::run_awq({"bench", "run", kModel, "--prompt-tokens", "100000"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("exceeds the model's context"), std::string::npos) << r.err;
  r = test::run_awq({"bench", "run", "/nonexistent/model"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no such model directory"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace awq
