// `awq quantize --compute f32|bf16|auto`: the calibration's dense products on the bf16 GEMM
// (kernels::bf16_gemm, bf16_gram) and its attention on causal_attention_bf16. The bf16 layer forward follows the f32 one within bf16 rounding
// (and differs from it, so the bf16 kernels did run); a bf16 run gives the same bytes for 1 and 2
// threads and passes check; auto is bf16 where AMX-BF16 runs, else f32 (bytes equal to that mode's).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "awq/kernels.h"
#include "awq/model_config.h"
#include "awq/model_dir.h"
#include "awq/thread_pool.h"
#include "quant/awq_forward.h"
#include "quant/awq_layer.h"
#include "test_util.h"

using namespace awq;
using namespace awq::quant_detail;
using namespace awq::test;

namespace {

std::string calib_file(const TempDir& tmp, int n, unsigned seed, int vocab) {
  std::string ids;
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) ids += std::to_string(rng() % unsigned(vocab)) + " ";
  write_bytes(tmp / "calib-ids.txt", ids);
  return tmp / "calib-ids.txt";
}

// The last layer's output of every layer's forward on random tokens, with the given arithmetic.
std::vector<float> forward(const std::string& model, Compute c) {
  ModelDir dir(data_path(model));
  const ModelConfig cfg = parse_model_config(dir.config(), "config.json");
  std::mt19937 rng(9);
  std::vector<std::vector<int32_t>> blocks(2);
  for (auto& b : blocks)
    for (int t = 0; t < 150; ++t) b.push_back(int32_t(rng() % uint32_t(cfg.vocab)));
  Activations act = embed_blocks(dir, cfg, blocks);
  ThreadPool pool(2);
  const ComputeScope scope(c);
  for (int64_t i = 0; i < cfg.layers; ++i) layer_forward(cfg, load_layer(dir, cfg, i, 32, false, nullptr), act, nullptr, pool);
  return act.x;
}

}  // namespace

TEST(QuantizeCompute, Bf16ForwardFollowsTheF32ForwardWithinBf16Rounding) {
  EXPECT_EQ(compute_mode(), Compute::kF32);  // no scope alive: f32
  for (const char* name : {"models/llama2", "models/qwen3"}) {
    const std::vector<float> f = forward(name, Compute::kF32), b = forward(name, Compute::kBf16);
    double err = 0, ref = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      err += double(b[i] - f[i]) * double(b[i] - f[i]);
      ref += double(f[i]) * double(f[i]);
    }
    const double rel = std::sqrt(err / ref);
    EXPECT_GT(rel, 1e-6) << name << ": the bf16 forward equals the f32 one; did the bf16 GEMM run?";
    // Measured: 0.0091 (llama2) and 0.0057 (qwen3) with the bf16 linears alone, 0.0101 and 0.0072 once
    // the attention runs on bf16 too (causal_attention_bf16); these tiny random-weight models compound
    // the roundings over every layer.
    EXPECT_LT(rel, 1.5e-2) << name << ": relative RMS difference of the bf16 forward";
  }
}

TEST(QuantizeCompute, Bf16RunIsTheSameForOneAndTwoThreadsAndPassesCheck) {
  TempDir tmp;
  const std::string calib = calib_file(tmp, 200, 13, 300);
  std::vector<std::string> bytes;
  for (const char* t : {"1", "2"}) {
    const std::string out = tmp / (std::string("bf16-") + t);
    const auto r = run_awq({"quantize", data_path("models/llama2"), "-o", out, "--group-size", "32", "--calib-tokens", calib, "--samples", "6",
                            "--seqlen", "32", "--threads", t, "--compute", "bf16", "--log", tmp / "log.jsonl", "-q"});
    ASSERT_EQ(r.status, 0) << r.err;
    bytes.push_back(read_bytes(out + "/model.safetensors"));
  }
  EXPECT_TRUE(bytes[0] == bytes[1]);
  EXPECT_NE(read_bytes(tmp / "log.jsonl").find("\"compute\":\"bf16\""), std::string::npos);
  const auto c = run_awq({"check", tmp / "bf16-2"});
  EXPECT_EQ(c.status, 0) << c.out << c.err;
}

TEST(QuantizeCompute, AutoIsBf16WhereAmxBf16RunsElseF32) {
  TempDir tmp;
  const std::string calib = calib_file(tmp, 200, 17, 300);
  std::vector<std::string> bytes;
  for (const char* mode : {"auto", "f32", "bf16"}) {
    const std::string out = tmp / mode;
    const auto r = run_awq({"quantize", data_path("models/llama2"), "-o", out, "--group-size", "32", "--calib-tokens", calib, "--samples", "6",
                            "--seqlen", "32", "--threads", "2", "--compute", mode, "-q"});
    ASSERT_EQ(r.status, 0) << r.err;
    bytes.push_back(read_bytes(out + "/model.safetensors"));
  }
  if (kernels::amx_bf16_available())
    EXPECT_TRUE(bytes[0] == bytes[2]) << "auto differs from bf16 on a CPU with AMX-BF16";
  else
    EXPECT_TRUE(bytes[0] == bytes[1]) << "auto differs from f32 on a CPU without AMX-BF16";
  EXPECT_FALSE(bytes[1] == bytes[2]) << "bf16 gave f32's bytes: the option did nothing";
  const auto bad = run_awq({"quantize", data_path("models/llama2"), "-o", tmp / "x", "--compute", "f64"});
  EXPECT_EQ(bad.status, 2) << bad.err;
}
