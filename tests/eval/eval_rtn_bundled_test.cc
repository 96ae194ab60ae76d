// The damaged-layer check on the bundled model: `awq quantize --method rtn` makes a 4-bit
// copy of models/kjv-llama at test time (autoawq-gemm, f16 scales), one layer's down_proj scales
// are tripled, and then, through the command as a user runs it:
//   - `awq eval Q --ref models/kjv-llama --json` names that layer as the first divergent layer,
//     caused by the MLP, where the undamaged copy has no divergent layer;
//   - `awq compare models/kjv-llama Q --json` ranks that module worst.
// A constant-factor scale error is the case cosine cannot see (cosine stays 1); relative MSE and
// the hidden states can.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "eval/eval_test_util.h"
#include "test_util.h"

namespace awq {
namespace {

std::string bundled() { return test::data_path("../../models/kjv-llama"); }

class EvalRtnBundled : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir;
    const auto q = test::run_awq({"quantize", bundled(), "-o", *tmp_ / "rtn", "--method", "rtn", "-q", "--threads", "2"});
    ASSERT_EQ(q.status, 0) << q.err;
    // The first 4000 bytes of eval.txt (at a line end): ~1000 tokens, 8 windows of 128.
    std::string s = test::read_bytes(bundled() + "/eval.txt");
    test::write_bytes(*tmp_ / "text.txt", s.substr(0, s.rfind('\n', 4000) + 1));
  }
  static void TearDownTestSuite() { delete tmp_; }

  // A copy of the RTN model with `module`'s scales tripled (none when empty).
  static std::string damaged(const std::string& module, const std::string& name) {
    const std::string dir = *tmp_ / name;
    test::copy_dir(*tmp_ / "rtn", dir);
    if (!module.empty()) test::multiply_scales(dir + "/model.safetensors", module, 3);
    return dir;
  }
  static nlohmann::json eval(const std::string& q) {
    const auto r = test::run_awq({"eval", q, "--ref", bundled(), "--text", *tmp_ / "text.txt", "--ctx", "128",
                                  "--threads", "2", "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }
  static test::TempDir* tmp_;
};
test::TempDir* EvalRtnBundled::tmp_ = nullptr;

TEST_F(EvalRtnBundled, UndamagedCopyHasNoDivergentLayer) {
  const nlohmann::json j = eval(damaged("", "plain"));
  EXPECT_TRUE(j["first_divergent_layer"].is_null()) << j.dump(1);
  EXPECT_GT(j["kld_mean"].get<double>(), 0) << "4-bit weights differ from the dense ones";
  EXPECT_LT(j["kld_mean"].get<double>(), 0.05) << j.dump(1);
  EXPECT_GT(j["same_top_p"].get<double>(), 0.9) << j.dump(1);
}

TEST_F(EvalRtnBundled, TripledDownProjIsFirstDivergentAndRankedWorst) {
  for (int layer : {1, 2}) {
    const std::string module = "model.layers." + std::to_string(layer) + ".mlp.down_proj";
    const std::string q = damaged(module, "down" + std::to_string(layer));
    const nlohmann::json j = eval(q);
    ASSERT_FALSE(j["first_divergent_layer"].is_null()) << module << "\n" << j.dump(1);
    EXPECT_EQ(j["first_divergent_layer"], layer) << j.dump(1);
    EXPECT_EQ(j["divergence_cause"], "mlp") << j.dump(1);
    const auto c = test::run_awq({"compare", bundled(), q, "--json", "--threads", "2"});
    ASSERT_EQ(c.status, 0) << c.err;
    const nlohmann::json cj = nlohmann::json::parse(c.out);
    ASSERT_FALSE(cj["layers"].empty());
    EXPECT_EQ(cj["layers"][0]["name"], module) << "compare ranks the damaged module worst";
    EXPECT_NEAR(cj["layers"][0]["rel_mse"].get<double>(), 4.0, 0.2) << "tripled scales: ‖2W‖²/‖W‖²";
  }
}

}  // namespace
}  // namespace awq
