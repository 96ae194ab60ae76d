// awq quantize: RTN and AWQ on the tiny golden models, the group quantizer's edge cases, NaN
// handling, and the AWQ grid trials' independence (the AutoAWQ CPU aliasing bug).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/model_dir.h"
#include "awq/quantize.h"
#include "awq/safetensors.h"
#include "awq/thread_pool.h"
#include "quant/awq_layer.h"
#include "quant/group_quant.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace awq;
using namespace awq::quant_detail;

namespace {

// A copy of a golden model with one weight value replaced (f32 models only).
std::string model_with_value(const TempDir& tmp, const std::string& golden, const std::string& tensor, size_t index, float v) {
  const std::string dst = tmp / "model";
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(data_path(golden))) fs::copy_file(e.path(), fs::path(dst) / e.path().filename());
  SafetensorsFile f(dst + "/model.safetensors");
  const TensorView* t = f.find(tensor);
  EXPECT_TRUE(t && t->dtype == DType::F32);
  const size_t off = size_t(t->data - f.tensors().front().data);
  std::string bytes = read_bytes(dst + "/model.safetensors");
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  std::memcpy(bytes.data() + 8 + header + off + 4 * index, &v, 4);
  write_bytes(dst + "/model.safetensors", bytes);
  return dst;
}

}  // namespace

TEST(GroupQuant, ConstantGroupIsExact) {
  // AutoAWQ: scale clamp(0, 1e-5)/15, zero clamped to 0, every code 15 -> 1e-5. Ours keeps 0.013.
  std::vector<float> w(128, 0.013f), out(128);
  for (bool zp : {true, false}) {
    fake_quant_group(w.data(), 128, {4, zp}, 1, 1, out.data());
    for (float v : out) EXPECT_EQ(v, to_f16(0.013f)) << "zero_point " << zp;
    std::vector<float> neg(128, -0.013f);
    fake_quant_group(neg.data(), 128, {4, zp}, 1, 1, out.data());
    for (float v : out) EXPECT_EQ(v, -to_f16(0.013f));
  }
  std::vector<float> zero(128, 0.0f);
  fake_quant_group(zero.data(), 128, {4, true}, 1, 1, out.data());
  for (float v : out) EXPECT_EQ(v, 0.0f);
}

TEST(GroupQuant, OneSignedGroupDoesNotSaturate) {
  // All positive: AutoAWQ's zero −round(min/s) < 0 is clamped to 0 and every value saturates.
  std::vector<float> w(128), out(128);
  for (int i = 0; i < 128; ++i) w[size_t(i)] = 1.0f + float(i) / 128.0f;
  const GroupQ g = quantize_group(w.data(), 128, {4, true}, 1, 1, nullptr);
  fake_quant_group(w.data(), 128, {4, true}, 1, 1, out.data());
  for (int i = 0; i < 128; ++i) EXPECT_LE(std::fabs(out[size_t(i)] - w[size_t(i)]), 0.5f * g.scale * 1.001f) << i;
}

TEST(GroupQuant, RoundsHalfToEvenAndMatchesMinMaxFormula) {
  std::vector<float> w = {-1.0f, 0.5f, 2.0f, 0.0f};
  uint8_t codes[4];
  const GroupQ g = quantize_group(w.data(), 4, {4, true}, 1, 1, codes);
  EXPECT_EQ(g.scale, to_f16(3.0f / 15));
  EXPECT_EQ(g.zero, int(std::nearbyint(1.0f / g.scale)));
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[2], 15);
}

TEST(Calibration, ExactBlocksFromTheStart) {
  std::vector<int32_t> t(25);
  for (int i = 0; i < 25; ++i) t[size_t(i)] = i;
  const auto b = calibration_blocks(t, 10, 8);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[1].front(), 8);
  EXPECT_EQ(b[2].back(), 23);
  EXPECT_EQ(calibration_blocks(t, 2, 8).size(), 2u);
}

TEST(AwqSearch, TrialsStartFromTheUnmodifiedWeights) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  const int64_t n = 16, k = 64;
  std::vector<float> w(size_t(n * k)), s1(size_t(k)), s2(size_t(k));
  for (auto& v : w) v = nd(rng);
  for (auto& v : s1) v = std::exp(nd(rng));
  for (auto& v : s2) v = std::exp(nd(rng));
  const std::vector<float> orig = w;
  ThreadPool pool(2);
  std::vector<float> a(w.size()), b(w.size()), c(w.size());
  fake_quant_scaled(w.data(), n, k, s1.data(), 32, {4, true}, a.data(), pool);
  fake_quant_scaled(w.data(), n, k, s2.data(), 32, {4, true}, b.data(), pool);
  EXPECT_EQ(w, orig);  // the trial never writes its input
  std::vector<float> fresh = orig;
  fake_quant_scaled(fresh.data(), n, k, s2.data(), 32, {4, true}, c.data(), pool);
  EXPECT_EQ(b, c);  // the second trial's result does not depend on the first
}

// The whole layer search: the chosen candidate's loss, recomputed from a fresh copy of the
// original weights, equals the logged one, and no group loses to RTN on its own loss.
TEST(AwqSearch, ChosenLossRecomputesFromOriginalsAndNeverLosesToRtn) {
  ModelDir dir(data_path("models/llama2"));
  const ModelConfig cfg = parse_model_config(dir.config(), "config.json");
  LayerTensors L = load_layer(dir, cfg, 0, 32, false, nullptr);
  const LayerTensors orig = L;
  std::vector<std::vector<int32_t>> blocks;
  std::mt19937 rng(3);
  for (int b = 0; b < 4; ++b) {
    blocks.emplace_back();
    for (int t = 0; t < 32; ++t) blocks.back().push_back(int32_t(rng() % uint32_t(cfg.vocab)));
  }
  Activations act = embed_blocks(dir, cfg, blocks);
  ThreadPool pool(2);
  LayerInputs in;
  layer_forward(cfg, L, act, &in, pool);
  AwqParams p;
  p.group_size = 32;
  p.seq_len = 32;
  p.clip = false;
  const LayerLog log = awq_layer(cfg, L, in, 128, p, pool);
  ASSERT_FALSE(log.groups.empty());
  for (const auto& g : log.groups) EXPECT_LE(g.loss_best, g.loss_rtn) << g.group;
  // down_proj (Gram loss): recover s from the applied columns, recompute from the originals.
  const int d = li(LayerLinear::kDown);
  const int64_t dn = L.n[size_t(d)], dk = L.k[size_t(d)];
  std::vector<float> s(size_t(dk), 1.0f);
  for (int64_t c = 0; c < dk; ++c) s[size_t(c)] = L.w[size_t(d)][size_t(c)] / orig.w[size_t(d)][size_t(c)];
  std::vector<float> x = in.down_in;
  std::vector<float> G(size_t(dk * dk));
  for (int64_t a = 0; a < dk; ++a)
    for (int64_t b = 0; b < dk; ++b) {
      double acc = 0;
      for (int64_t t = 0; t < 128; ++t) acc += double(x[size_t(t * dk + a)]) * double(x[size_t(t * dk + b)]);
      G[size_t(a * dk + b)] = float(acc);
    }
  std::vector<float> wq(size_t(dn * dk));
  const bool identity = log.groups.back().choice == "identity";
  fake_quant_scaled(orig.w[size_t(d)].data(), dn, dk, identity ? nullptr : s.data(), 32, p.q, wq.data(), pool);
  const double again = gram_loss(wq.data(), orig.w[size_t(d)].data(), dn, dk, G, 128, pool);
  EXPECT_EQ(log.groups.back().group, "down");
  EXPECT_NEAR(again, log.groups.back().loss_best, 1e-3 * log.groups.back().loss_best + 1e-12);
}

TEST(QuantizeCmd, RtnPassesCheckAndKeepsTied) {
  TempDir tmp;
  const std::string out = tmp / "q";
  const auto r = run_awq({"quantize", data_path("models/llama2"), "-o", out, "--method", "rtn", "--group-size", "32", "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto c = run_awq({"check", out});
  EXPECT_EQ(c.status, 0) << c.out << c.err;
  ModelDir q(out);
  EXPECT_EQ(q.quant_config()["bits"], 4);
  EXPECT_EQ(q.quant_config()["group_size"], 32);
  EXPECT_EQ(q.quant_config()["quant_method"], "awq");
  EXPECT_TRUE(q.find("model.layers.0.self_attn.q_proj.qweight"));
  EXPECT_TRUE(q.find("model.embed_tokens.weight"));
  EXPECT_FALSE(q.find("lm_head.weight"));  // tied stays tied
  // Deterministic: a second run writes the same bytes.
  const std::string out2 = tmp / "q2";
  ASSERT_EQ(run_awq({"quantize", data_path("models/llama2"), "-o", out2, "--method", "rtn", "--group-size", "32", "-q"}).status, 0);
  EXPECT_EQ(read_bytes(out + "/model.safetensors"), read_bytes(out2 + "/model.safetensors"));
  // Same OUT_DIR rules: a non-empty OUT_DIR is refused without --force; the progress dir is gone.
  EXPECT_NE(run_awq({"quantize", data_path("models/llama2"), "-o", out, "--method", "rtn", "--group-size", "32", "-q"}).status, 0);
  EXPECT_FALSE(fs::exists(tmp / "q.awq-progress"));
}

TEST(QuantizeCmd, SkipIsWrittenAndKeptDense) {
  TempDir tmp;
  const std::string out = tmp / "q";
  const auto r = run_awq({"quantize", data_path("models/qwen2"), "-o", out, "--method", "rtn", "--group-size", "32", "--skip",
                          "down_proj", "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  ModelDir q(out);
  EXPECT_EQ(q.quant_config()["modules_to_not_convert"], nlohmann::json::array({"down_proj"}));
  EXPECT_TRUE(q.find("model.layers.0.mlp.down_proj.weight"));
  EXPECT_TRUE(q.find("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_EQ(run_awq({"check", out}).status, 0);
}

TEST(QuantizeCmd, AwqOnEveryGoldenArchitecturePassesCheck) {
  for (const char* m : {"llama2", "llama3", "mistral", "qwen2", "qwen3"}) {
    TempDir tmp;
    std::string ids;
    std::mt19937 rng(11);
    for (int i = 0; i < 80; ++i) ids += std::to_string(rng() % 200) + (i % 10 == 9 ? "\n" : " ");
    write_bytes(tmp / "calib.txt", ids);
    const std::string out = tmp / "q";
    const auto r = run_awq({"quantize", data_path(std::string("models/") + m), "-o", out, "--group-size", "32", "--calib-tokens",
                            tmp / "calib.txt", "--samples", "4", "--seqlen", "16", "--log", tmp / "log.jsonl", "-q"});
    ASSERT_EQ(r.status, 0) << m << ": " << r.err;
    EXPECT_EQ(run_awq({"check", out}).status, 0) << m;
    EXPECT_NE(read_bytes(tmp / "log.jsonl").find("\"alpha\""), std::string::npos);
  }
}

TEST(QuantizeCmd, NonFiniteWeightNamesRowAndGroupAndSanitizeFixesIt) {
  TempDir tmp;
  // Row 1, column 40 of layer 0's up_proj (k = 64): group 1 at --group-size 32.
  const std::string model = model_with_value(tmp, "models/llama2", "model.layers.0.mlp.up_proj.weight", 64 + 40, NAN);
  const auto r = run_awq({"quantize", model, "-o", tmp / "q", "--method", "rtn", "--group-size", "32", "-q"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("up_proj.weight"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("row 1, group 1"), std::string::npos) << r.err;
  const auto s = run_awq({"quantize", model, "-o", tmp / "q", "--method", "rtn", "--group-size", "32", "--sanitize", "zero", "-q"});
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_EQ(run_awq({"check", tmp / "q"}).status, 0);
}
