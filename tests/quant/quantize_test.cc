// awq quantize: RTN and AWQ on the tiny golden models, the group quantizer's edge cases, NaN
// handling, and the AWQ grid trials' independence (the AutoAWQ CPU aliasing bug).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/model.h"
#include "awq/model_dir.h"
#include "awq/model_ops.h"
#include "awq/quantize.h"
#include "awq/safetensors.h"
#include "awq/thread_pool.h"
#include "quant/awq_forward.h"
#include "quant/awq_layer.h"
#include "quant/trial_gemm.h"
#include "quant/group_quant.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace awq;
using namespace awq::quant_detail;
using namespace awq::test;

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
  std::vector<float> w(static_cast<size_t>(n * k)), s1(static_cast<size_t>(k)), s2(static_cast<size_t>(k));
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

// AutoAWQ/llm-awq on a CPU: `.cpu()` returns the same tensor, so each grid trial's in-place
// W·s leaks into the next. Here every trial's logged loss must equal the loss of that candidate
// recomputed alone from a pristine copy of the original weights, for every trial of the down
// group (Gram loss) and of the gate/up group (MLP output loss); and the test shows that a leaked
// trial would be caught (the loss from weights a previous trial modified differs).
TEST(AwqSearch, EveryGridTrialStartsFromTheUnmodifiedWeights) {
  ModelDir dir(data_path("models/llama2"));
  const ModelConfig cfg = parse_model_config(dir.config(), "config.json");
  LayerTensors L = load_layer(dir, cfg, 1, 32, false, nullptr);
  const LayerTensors orig = L;
  std::vector<std::vector<int32_t>> blocks;
  std::mt19937 rng(5);
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
  p.formula = ScaleFormula::kBoth;
  const int64_t T = 128;
  const LayerLog log = awq_layer(cfg, L, in, T, p, pool);
  const GroupLog* down = nullptr;
  const GroupLog* gate_up = nullptr;
  for (const auto& g : log.groups) {
    if (g.group == "down") down = &g;
    if (g.group == "gate_up") gate_up = &g;
  }
  ASSERT_TRUE(down && gate_up);
  ASSERT_EQ(down->trials.size(), 1u + 21u + 20u);  // identity, duo α = 0..1, x-only α = 0.05..1
  const auto scales_of = [&](const Trial& t, const std::vector<float>& xm, const std::vector<float>& wm) {
    return t.kind == "identity" ? std::vector<float>{}
                                : scale_candidate(xm, wm, t.kind == "x" ? ScaleFormula::kXOnly : ScaleFormula::kDuo, t.alpha);
  };
  // down: Gram loss.
  const int d = li(LayerLinear::kDown);
  const int64_t dn = orig.n[size_t(d)], dk = orig.k[size_t(d)];
  std::vector<float> G(size_t(dk * dk));
  for (int64_t a = 0; a < dk; ++a)
    for (int64_t b = 0; b < dk; ++b) {
      double acc = 0;
      for (int64_t t = 0; t < T; ++t) acc += double(in.down_in[size_t(t * dk + a)]) * double(in.down_in[size_t(t * dk + b)]);
      G[size_t(a * dk + b)] = float(acc);
    }
  const std::vector<float> xm_d = x_mean(in.down_in, T, dk), wm_d = w_mean(orig, {d}, 32);
  std::vector<float> wq(size_t(dn * dk));
  for (const Trial& t : down->trials) {
    const std::vector<float> pristine = orig.w[size_t(d)];  // a fresh copy per trial
    const std::vector<float> s = scales_of(t, xm_d, wm_d);
    fake_quant_scaled(pristine.data(), dn, dk, s.empty() ? nullptr : s.data(), 32, p.q, wq.data(), pool);
    const double alone = gram_loss(wq.data(), pristine.data(), dn, dk, G, T, pool);
    EXPECT_NEAR(alone, t.loss, 1e-5 * t.loss + 1e-12) << "down " << t.kind << " α " << t.alpha;
  }
  // gate/up: MLP output loss, each trial recomputed alone.
  const int g = li(LayerLinear::kGate), u = li(LayerLinear::kUp);
  const int64_t I = cfg.intermediate, H = cfg.hidden;
  std::vector<float> ref(size_t(T * H)), out(size_t(T * H)), din(size_t(T * I));
  mlp(cfg, orig.w[size_t(g)].data(), orig.w[size_t(u)].data(), orig.w[size_t(d)].data(), orig, in.mlp_in.data(), T, din.data(), ref.data(),
      pool);
  const std::vector<float> xm_m = x_mean(in.mlp_in, T, H), wm_m = w_mean(orig, {g, u}, 32);
  std::vector<float> qg(orig.w[size_t(g)].size()), qu(orig.w[size_t(u)].size());
  double leaked_diff = 0;
  for (size_t i = 0; i < gate_up->trials.size(); ++i) {
    const Trial& t = gate_up->trials[i];
    const std::vector<float> s = scales_of(t, xm_m, wm_m);
    const float* sp = s.empty() ? nullptr : s.data();
    fake_quant_scaled(orig.w[size_t(g)].data(), I, H, sp, 32, p.q, qg.data(), pool);
    fake_quant_scaled(orig.w[size_t(u)].data(), I, H, sp, 32, p.q, qu.data(), pool);
    mlp(cfg, qg.data(), qu.data(), orig.w[size_t(d)].data(), orig, in.mlp_in.data(), T, din.data(), out.data(), pool);
    EXPECT_EQ(mse(out, ref), t.loss) << "gate_up " << t.kind << " α " << t.alpha;
    if (i > 0 && sp) {  // the bug: this trial's Q(W·s)/s applied to weights the previous trial left scaled
      const std::vector<float> sprev = scales_of(gate_up->trials[i - 1], xm_m, wm_m);
      std::vector<float> leaked = orig.w[size_t(g)], leaked_u = orig.w[size_t(u)];
      for (int64_t r = 0; r < I; ++r)
        for (int64_t c = 0; c < H; ++c) {
          const float f = sprev.empty() ? 1.0f : sprev[size_t(c)];
          leaked[size_t(r * H + c)] *= f;
          leaked_u[size_t(r * H + c)] *= f;
        }
      fake_quant_scaled(leaked.data(), I, H, sp, 32, p.q, qg.data(), pool);
      fake_quant_scaled(leaked_u.data(), I, H, sp, 32, p.q, qu.data(), pool);
      mlp(cfg, qg.data(), qu.data(), orig.w[size_t(d)].data(), orig, in.mlp_in.data(), T, din.data(), out.data(), pool);
      leaked_diff = std::max(leaked_diff, std::fabs(mse(out, ref) - t.loss) / t.loss);
    }
  }
  EXPECT_GT(leaked_diff, 0.1);  // a leak would change losses by far more than the bar above
}

namespace {

// Layer `layer` of the llama2 golden model on 4 random blocks of 32 tokens: its weights and inputs.
struct GoldenLayer {
  ModelConfig cfg;
  LayerTensors L;
  LayerInputs in;
};
GoldenLayer golden_layer(int64_t layer, unsigned seed, ThreadPool& pool) {
  ModelDir dir(data_path("models/llama2"));
  GoldenLayer g{parse_model_config(dir.config(), "config.json"), {}, {}};
  g.L = load_layer(dir, g.cfg, layer, 32, false, nullptr);
  std::vector<std::vector<int32_t>> blocks;
  std::mt19937 rng(seed);
  for (int b = 0; b < 4; ++b) {
    blocks.emplace_back();
    for (int t = 0; t < 32; ++t) blocks.back().push_back(int32_t(rng() % uint32_t(g.cfg.vocab)));
  }
  Activations act = embed_blocks(dir, g.cfg, blocks);
  for (int64_t i = 0; i < layer; ++i) layer_forward(g.cfg, load_layer(dir, g.cfg, i, 32, false, nullptr), act, nullptr, pool);
  layer_forward(g.cfg, g.L, act, &g.in, pool);
  return g;
}

// XᵀX of x [T][k] in double, rounded to f32.
std::vector<float> gram_of(const std::vector<float>& x, int64_t T, int64_t k) {
  std::vector<float> G(size_t(k * k));
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) {
      double acc = 0;
      for (int64_t t = 0; t < T; ++t) acc += double(x[size_t(t * k + a)]) * double(x[size_t(t * k + b)]);
      G[size_t(a * k + b)] = float(acc);
    }
  return G;
}

const GroupLog& group_of(const LayerLog& log, const std::string& name) {
  for (const auto& g : log.groups)
    if (g.group == name) return g;
  throw std::runtime_error("no group " + name);
}

}  // namespace

// The fast search with every candidate refined on every token is the full search: same losses,
// same choices, same scaled weights and norms, bit for bit.
TEST(AwqSearch, FastSearchRefiningEverythingIsTheFullSearch) {
  ThreadPool pool(2);
  GoldenLayer g = golden_layer(1, 5, pool);
  AwqParams p;
  p.group_size = 32;
  p.seq_len = 32;
  p.clip = false;
  LayerTensors full = g.L, fast = g.L;
  const LayerLog a = awq_layer(g.cfg, full, g.in, 128, p, pool);
  p.mode = SearchMode::kFast;
  p.refine = p.refine_attn = 1000;
  p.loss_tokens = 128;
  const LayerLog b = awq_layer(g.cfg, fast, g.in, 128, p, pool);
  ASSERT_EQ(a.groups.size(), b.groups.size());
  for (size_t i = 0; i < a.groups.size(); ++i) {
    EXPECT_EQ(a.groups[i].group, b.groups[i].group);
    EXPECT_EQ(a.groups[i].choice, b.groups[i].choice) << a.groups[i].group;
    EXPECT_EQ(a.groups[i].alpha, b.groups[i].alpha) << a.groups[i].group;
    EXPECT_EQ(a.groups[i].loss_best, b.groups[i].loss_best) << a.groups[i].group;
    EXPECT_EQ(a.groups[i].loss_rtn, b.groups[i].loss_rtn) << a.groups[i].group;
    EXPECT_EQ(a.groups[i].trials.size(), size_t(b.groups[i].evaluated)) << a.groups[i].group;
  }
  for (const Trial& t : group_of(b, "down").trials) EXPECT_EQ(t.loss, t.proxy);  // one linear, every row: the proxy is the loss
  EXPECT_EQ(full.w, fast.w);
  EXPECT_EQ(full.attn_norm, fast.attn_norm);
  EXPECT_EQ(full.mlp_norm, fast.mlp_norm);
}

// The fast search's numbers, each recomputed alone from pristine weights: every candidate's proxy
// (Gram form over the sampled rows of gate/up), the faithful loss of exactly the best `refine` by
// proxy plus s ≡ 1 and of no other, on the documented token subsets (attention: whole blocks 0 and
// 2 of 4; MLP: every second token; down: its Gram loss over every row, the proxy over half of them).
TEST(AwqSearch, FastSearchProxiesAndRefinedLossesRecomputeFromPristineWeights) {
  ThreadPool pool(2);
  GoldenLayer g = golden_layer(1, 11, pool);
  const LayerTensors orig = g.L;
  const ModelConfig& cfg = g.cfg;
  AwqParams p;
  p.group_size = 32;
  p.seq_len = 32;
  p.clip = false;
  p.mode = SearchMode::kFast;
  p.refine = p.refine_attn = 3;
  p.loss_tokens = p.attn_loss_tokens = 64;
  p.proxy_rows = 32;
  const int64_t T = 128, H = cfg.hidden, I = cfg.intermediate, qd = cfg.heads * cfg.head_dim;
  const LayerLog log = awq_layer(cfg, g.L, g.in, T, p, pool);
  const auto scales_of = [](const Trial& t, const std::vector<float>& xm, const std::vector<float>& wm) {
    return t.kind == "identity" ? std::vector<float>{} : scale_candidate(xm, wm, ScaleFormula::kDuo, t.alpha);
  };
  // The refined set: s ≡ 1 and the `refine` lowest proxies (none of the others has a loss).
  for (const char* name : {"qkv", "gate_up", "down"}) {
    const GroupLog& gl = group_of(log, name);
    std::vector<double> px;
    for (const Trial& t : gl.trials) px.push_back(t.proxy);
    std::sort(px.begin(), px.end());
    size_t with_loss = 0;
    for (const Trial& t : gl.trials) {
      ASSERT_TRUE(std::isfinite(t.proxy)) << name;
      const bool refined = std::isfinite(t.loss);
      with_loss += refined;
      if (t.kind == "identity") EXPECT_TRUE(refined) << name;
      else EXPECT_EQ(refined, t.proxy <= px[2]) << name << " α " << t.alpha;
    }
    EXPECT_GE(with_loss, 3u);
    EXPECT_LE(with_loss, 4u);
    EXPECT_EQ(size_t(gl.evaluated), with_loss) << name;
  }
  // gate/up: proxy over rows 0, 4, 8, ... of each, scaled to all rows; loss on tokens 0, 2, 4, ...
  const int gi = li(LayerLinear::kGate), ui = li(LayerLinear::kUp), di = li(LayerLinear::kDown);
  const std::vector<float> G = gram_of(g.in.mlp_in, T, H);
  const std::vector<float> xm = x_mean(g.in.mlp_in, T, H), wm = w_mean(orig, {gi, ui}, 32);
  const std::vector<float> m = gather_rows(g.in.mlp_in.data(), H, spread(T, 64));
  std::vector<float> ref(size_t(64 * H)), out(size_t(64 * H)), din(size_t(64 * I));
  mlp(cfg, orig.w[size_t(gi)].data(), orig.w[size_t(ui)].data(), orig.w[size_t(di)].data(), orig, m.data(), 64, din.data(), ref.data(), pool);
  for (const Trial& t : group_of(log, "gate_up").trials) {
    const std::vector<float> s = scales_of(t, xm, wm);
    const float* sp = s.empty() ? nullptr : s.data();
    double proxy = 0;
    std::vector<std::vector<float>> q;
    for (int i : {gi, ui}) {
      const std::vector<float> pristine = orig.w[size_t(i)];
      const std::vector<float> sub = gather_rows(pristine.data(), H, spread(I, 32));
      std::vector<float> fq(sub.size());
      fake_quant_scaled(sub.data(), 32, H, sp, 32, p.q, fq.data(), pool);
      proxy += gram_sum(fq.data(), sub.data(), 32, H, G, pool) * (double(I) / 32);
      q.emplace_back(pristine.size());
      fake_quant_scaled(pristine.data(), I, H, sp, 32, p.q, q.back().data(), pool);
    }
    proxy /= double(T) * double(2 * I);
    EXPECT_NEAR(proxy, t.proxy, 1e-5 * proxy) << "gate_up α " << t.alpha;
    if (!std::isfinite(t.loss)) continue;
    mlp(cfg, q[0].data(), q[1].data(), orig.w[size_t(di)].data(), orig, m.data(), 64, din.data(), out.data(), pool);
    EXPECT_EQ(mse(out, ref), t.loss) << "gate_up α " << t.alpha;
  }
  // q/k/v: loss on blocks 0 and 2 (whole causal blocks of 32).
  std::vector<int64_t> rows;
  for (int64_t b : {0, 2})
    for (int64_t t = 0; t < 32; ++t) rows.push_back(b * 32 + t);
  const std::vector<float> a = gather_rows(g.in.qkv_in.data(), H, rows);
  const std::vector<float> xq = x_mean(g.in.qkv_in, T, H), wq = w_mean(orig, {0, 1, 2}, 32);
  std::vector<float> aref(size_t(64 * H)), aout(size_t(64 * H)), oin(size_t(64 * qd));
  self_attention(cfg, orig.w[0].data(), orig.w[1].data(), orig.w[2].data(), orig.w[3].data(), orig, a.data(), 2, 32, oin.data(), aref.data(),
                 pool);
  size_t checked = 0;
  for (const Trial& t : group_of(log, "qkv").trials) {
    if (!std::isfinite(t.loss)) continue;
    const std::vector<float> s = scales_of(t, xq, wq);
    // The candidate's projections on the int16 kernels (trial_gemm.h), from the pristine weights.
    const LayerTensors pristine = orig;
    std::vector<float> qkv;
    self_attention_trial(cfg, pristine, s.empty() ? nullptr : s.data(), 32, p.q, a.data(), 2, 32, oin.data(), aout.data(), pool, qkv);
    EXPECT_EQ(mse(aout, aref), t.loss) << "qkv α " << t.alpha;
    ++checked;
  }
  EXPECT_GE(checked, 3u);
  // down (64 rows, 32 sampled): proxy over rows 0, 2, 4, ...; refined losses = the Gram loss on all rows.
  const GroupLog& down = group_of(log, "down");
  const std::vector<float> Gd = gram_of(g.in.down_in, T, I);
  const std::vector<float> xd = x_mean(g.in.down_in, T, I), wd = w_mean(orig, {di}, 32);
  const std::vector<float> dsub = gather_rows(orig.w[size_t(di)].data(), I, spread(H, 32));
  std::vector<float> fq(orig.w[size_t(di)].size()), fqs(dsub.size());
  for (const Trial& t : down.trials) {
    const std::vector<float> s = scales_of(t, xd, wd);
    fake_quant_scaled(dsub.data(), 32, I, s.empty() ? nullptr : s.data(), 32, p.q, fqs.data(), pool);
    const double proxy = gram_sum(fqs.data(), dsub.data(), 32, I, Gd, pool) * (double(H) / 32) / double(T) / double(H);
    EXPECT_NEAR(proxy, t.proxy, 1e-5 * proxy) << "down α " << t.alpha;
    if (!std::isfinite(t.loss)) continue;
    fake_quant_scaled(orig.w[size_t(di)].data(), H, I, s.empty() ? nullptr : s.data(), 32, p.q, fq.data(), pool);
    EXPECT_NEAR(gram_loss(fq.data(), orig.w[size_t(di)].data(), H, I, Gd, T, pool), t.loss, 1e-5 * t.loss + 1e-12);
  }
  for (const auto& gl : log.groups) EXPECT_LE(gl.loss_best, gl.loss_rtn) << gl.group;
}

// The fast search's q/k/v screen: every candidate ranked by its attention output loss on a few
// whole blocks (here block 0 of 4), each screen loss and each refined loss (all 4 blocks) equal to
// the same loss recomputed alone from pristine weights, and exactly the `refine_attn` best by the
// screen plus s ≡ 1 refined.
TEST(AwqSearch, FastSearchScreensQkvOnFewBlocksFromPristineWeights) {
  ThreadPool pool(2);
  GoldenLayer g = golden_layer(1, 11, pool);
  const LayerTensors orig = g.L;
  const ModelConfig& cfg = g.cfg;
  AwqParams p;
  p.group_size = 32;
  p.seq_len = 32;
  p.clip = false;
  p.mode = SearchMode::kFast;
  p.refine_attn = 3;
  p.attn_screen_tokens = 32;
  const int64_t T = 128, H = cfg.hidden, qd = cfg.heads * cfg.head_dim;
  const LayerLog log = awq_layer(cfg, g.L, g.in, T, p, pool);
  const GroupLog& gl = group_of(log, "qkv");
  std::vector<double> px;
  for (const Trial& t : gl.trials) px.push_back(t.proxy);
  std::sort(px.begin(), px.end());
  const std::vector<float> a0(g.in.qkv_in.begin(), g.in.qkv_in.begin() + 32 * H), ref0(g.in.attn_out.begin(), g.in.attn_out.begin() + 32 * H);
  const std::vector<float> xq = x_mean(g.in.qkv_in, T, H), wq = w_mean(orig, {0, 1, 2}, 32);
  size_t refined = 0;
  for (const Trial& t : gl.trials) {
    const std::vector<float> s = t.kind == "identity" ? std::vector<float>{} : scale_candidate(xq, wq, ScaleFormula::kDuo, t.alpha);
    const LayerTensors pristine = orig;
    std::vector<float> qkv, oin(size_t(32 * qd)), out(size_t(32 * H));
    self_attention_trial(cfg, pristine, s.empty() ? nullptr : s.data(), 32, p.q, a0.data(), 1, 32, oin.data(), out.data(), pool, qkv);
    EXPECT_EQ(mse(out, ref0), t.proxy) << "screen α " << t.alpha;
    const bool is_refined = std::isfinite(t.loss);
    refined += is_refined;
    EXPECT_EQ(is_refined, t.kind == "identity" || t.proxy <= px[2]) << "α " << t.alpha;
    if (!is_refined) continue;
    std::vector<float> oall(size_t(T * qd)), outall(size_t(T * H));
    self_attention_trial(cfg, pristine, s.empty() ? nullptr : s.data(), 32, p.q, g.in.qkv_in.data(), 4, 32, oall.data(), outall.data(), pool,
                         qkv);
    EXPECT_EQ(mse(outall, g.in.attn_out), t.loss) << "qkv α " << t.alpha;
  }
  EXPECT_GE(refined, 3u);
  EXPECT_LE(refined, 4u);
  EXPECT_EQ(size_t(gl.evaluated), refined);
  EXPECT_LE(gl.loss_best, gl.loss_rtn);
}

// The q/k/v candidates' projections on the int16 kernels against the f32 GEMMs on the dequantized
// trial weights: each candidate's attention-output loss agrees within 1e-3 (relative), and the
// full search chooses the same α with the same scaled weights either way. A mutation that drops the
// 1/s pre-scale (x·Q(W·s)ᵀ) moves the losses by far more than that.
TEST(AwqSearch, Int16TrialsAgreeWithTheF32Trials) {
  ThreadPool pool(2);
  GoldenLayer g = golden_layer(1, 5, pool);
  AwqParams p;
  p.group_size = 32;
  p.seq_len = 32;
  p.clip = false;
  LayerTensors f32 = g.L, i16 = g.L;
  p.int16_trials = false;
  const LayerLog a = awq_layer(g.cfg, f32, g.in, 128, p, pool);
  p.int16_trials = true;
  const LayerLog b = awq_layer(g.cfg, i16, g.in, 128, p, pool);
  const GroupLog &qa = group_of(a, "qkv"), &qb = group_of(b, "qkv");
  ASSERT_EQ(qa.trials.size(), qb.trials.size());
  for (size_t i = 0; i < qa.trials.size(); ++i) {
    EXPECT_NEAR(qb.trials[i].loss, qa.trials[i].loss, 1e-3 * qa.trials[i].loss) << "α " << qa.trials[i].alpha;
    EXPECT_NE(qb.trials[i].loss, qa.trials[i].loss) << "the int16 path did not run";
  }
  EXPECT_EQ(qa.alpha, qb.alpha);
  EXPECT_EQ(qa.choice, qb.choice);
  EXPECT_EQ(f32.w, i16.w);
  // The mutation: without the 1/s pre-scale the loss of a scaled candidate is far off.
  const LayerTensors& L = g.L;
  const int64_t H = g.cfg.hidden, qd = g.cfg.heads * g.cfg.head_dim;
  const std::vector<float> s = scale_candidate(x_mean(g.in.qkv_in, 128, H), w_mean(L, {0, 1, 2}, 32), ScaleFormula::kDuo, 0.5);
  std::vector<float> oin(size_t(128 * qd)), out(size_t(128 * H)), qkv;
  self_attention_trial(g.cfg, L, s.data(), 32, p.q, g.in.qkv_in.data(), 4, 32, oin.data(), out.data(), pool, qkv);
  const double good = mse(out, g.in.attn_out);
  kernels::PackedLinear w = pack_trial(L, {0, 1, 2}, s.data(), 32, p.q, pool);
  w.pre_quant_scale.clear();
  const int64_t N = qd + 2 * g.cfg.kv_heads * g.cfg.head_dim;
  qkv.assign(size_t(128 * N), 0.0f);
  kernels::gemm(w, g.in.qkv_in.data(), DType::F32, 128, qkv.data(), DType::F32, {kernels::Path::kInt16, &pool});
  attend(g.cfg, L, {qkv.data(), N, qkv.data() + qd, N, qkv.data() + qd + g.cfg.kv_heads * g.cfg.head_dim, N}, true, 4, 32, L.w[3].data(),
         oin.data(), out.data(), pool);
  EXPECT_GT(mse(out, g.in.attn_out), 2 * good);
}

// RTN against AutoAWQ's own code: tools/make_golden_quantize.py ran AwqQuantizer._apply_quant
// (pseudo_quantize_tensor + WQLinear_GEMM.from_linear) on each dense fp16 model; every qweight,
// qzeros and scales tensor we write must be byte-identical to AutoAWQ's.
TEST(QuantizeCmd, RtnEqualsAutoAwqBitForBit) {
  for (const auto& [name, group] : std::vector<std::pair<std::string, int>>{
           {"rtn-llama-g32", 32}, {"rtn-qwen2-g64", 64}, {"rtn-llama-g128", 128}}) {
    TempDir tmp;
    const std::string out = tmp / "q";
    const auto r = run_awq({"quantize", data_path("quantize/" + name + "/dense"), "-o", out, "--method", "rtn", "--group-size",
                            std::to_string(group), "-q"});
    ASSERT_EQ(r.status, 0) << name << ": " << r.err;
    SafetensorsFile expected(data_path("quantize/" + name + "/expected.safetensors"));
    ModelDir q(out);
    size_t compared = 0;
    for (const auto& e : expected.tensors()) {
      const TensorView* t = q.find(e.name);
      ASSERT_TRUE(t) << name << ": " << e.name << " missing";
      ASSERT_EQ(t->dtype, e.dtype) << e.name;
      ASSERT_EQ(t->shape, e.shape) << e.name;
      ASSERT_EQ(t->nbytes, e.nbytes) << e.name;
      size_t diff = 0;
      for (size_t i = 0; i < e.nbytes; ++i) diff += t->data[i] != e.data[i];
      EXPECT_EQ(diff, 0u) << name << ": " << e.name << " differs in " << diff << " bytes";
      ++compared;
    }
    EXPECT_GE(compared, 21u) << name;  // 7 linears × (qweight, qzeros, scales) per layer
  }
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

namespace {
std::string calib_ids(const TempDir& tmp, int n, unsigned seed, int vocab) {
  std::string ids;
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) ids += std::to_string(rng() % unsigned(vocab)) + (i % 10 == 9 ? "\n" : " ");
  write_bytes(tmp / "calib.txt", ids);
  return tmp / "calib.txt";
}
}  // namespace

TEST(QuantizeCmd, AwqIsDeterministicForTheSameThreadCount) {
  TempDir tmp;
  const std::string calib = calib_ids(tmp, 200, 13, 300);
  std::vector<std::string> bytes;
  for (const char* o : {"a", "b"}) {
    const auto r = run_awq({"quantize", data_path("models/llama2"), "-o", tmp / o, "--group-size", "32", "--calib-tokens", calib, "--samples",
                            "6", "--seqlen", "32", "--threads", "2", "-q"});
    ASSERT_EQ(r.status, 0) << r.err;
    bytes.push_back(read_bytes(tmp / o + "/model.safetensors"));
  }
  EXPECT_TRUE(bytes[0] == bytes[1]);
}

// --mixed auto keeps the most sensitive linears dense within the budget: they are listed in
// modules_to_not_convert, stored dense, and the output passes check. The kept weight is the
// AWQ-scaled one, so that with the folded norm it computes what the original did: per input
// column, W'·norm' = W·norm. Budget 6 on this f32 model (4.625 bits per weight quantized) leaves
// room for exactly one 32×64 k/v_proj (27.4 extra bits × 2048 weights of 73728), nothing larger.
TEST(QuantizeCmd, MixedAutoPromotesTheMostSensitiveWithinTheBudget) {
  TempDir tmp;
  const std::string calib = calib_ids(tmp, 200, 17, 300);
  const auto r = run_awq({"quantize", data_path("models/llama2"), "-o", tmp / "m", "--group-size", "32", "--calib-tokens", calib, "--samples",
                          "6", "--seqlen", "32", "--mixed", "auto", "--budget", "6"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("promoted"), std::string::npos) << r.out;
  EXPECT_EQ(run_awq({"check", tmp / "m"}).status, 0);
  ModelDir q(tmp / "m");
  ModelDir dense(data_path("models/llama2"));
  const auto skip = q.quant_config()["modules_to_not_convert"];
  ASSERT_TRUE(skip.is_array() && skip.size() == 1u) << q.quant_config().dump();
  const std::string m = skip[0].get<std::string>();
  ASSERT_TRUE(m.find("k_proj") != std::string::npos || m.find("v_proj") != std::string::npos) << m;
  EXPECT_FALSE(q.find(m + ".qweight"));
  const std::string layer = m.substr(0, m.find(".self_attn"));
  const std::vector<float> w0 = tensor_f32(dense.get(m + ".weight")), w1 = tensor_f32(q.get(m + ".weight")),
                           n0 = tensor_f32(dense.get(layer + ".input_layernorm.weight")),
                           n1 = tensor_f32(q.get(layer + ".input_layernorm.weight"));
  ASSERT_EQ(w0.size(), w1.size());
  const size_t k = n0.size();
  for (size_t i = 0; i < w0.size(); ++i)
    ASSERT_NEAR(double(w1[i]) * n1[i % k], double(w0[i]) * n0[i % k], 1e-5 * std::fabs(double(w0[i]) * n0[i % k]) + 1e-9) << m << " " << i;
  double quantized = 0, budget = 0, written = 0;
  const size_t at = r.out.find("mixed precision: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  size_t kept = 0;
  ASSERT_EQ(std::sscanf(r.out.c_str() + at,
                        "mixed precision: %lf bits per weight over all decoder linears if all quantized, budget %lf, %lf written "
                        "(%zu kept dense",
                        &quantized, &budget, &written, &kept),
            4)
      << r.out;
  EXPECT_NEAR(quantized, 4 + 20.0 / 32, 1e-3);  // 4-bit codes + f16 scale + 4-bit zero per 32 weights
  EXPECT_NEAR(written, quantized + 27.375 * 2048 / 73728, 1e-3);
  EXPECT_EQ(kept, 1u);
  double module_bpw = 0;
  const size_t alone = r.out.find("a quantized module alone: ");
  ASSERT_NE(alone, std::string::npos) << r.out;
  ASSERT_EQ(std::sscanf(r.out.c_str() + alone, "a quantized module alone: %lf", &module_bpw), 1) << r.out;
  EXPECT_NEAR(module_bpw, 4 + 20.0 / 32, 1e-3);
  // inspect counts the stored bytes: its two figures are quantize's, each over what it says.
  const auto ins = run_awq({"inspect", tmp / "m", "--json"});
  ASSERT_EQ(ins.status, 0) << ins.err;
  const auto j = nlohmann::json::parse(ins.out);
  EXPECT_NEAR(j["effective_bits_per_weight"].get<double>(), module_bpw, 1e-3);
  EXPECT_NEAR(j["decoder_linear_bits_per_weight"].get<double>(), written, 1e-3);
  EXPECT_EQ(j["decoder_dense_linears"].get<size_t>(), kept);
  // A budget that would keep every linear dense is refused before any work.
  const auto all = run_awq({"quantize", data_path("models/llama2"), "-o", tmp / "all", "--group-size", "32", "--calib-tokens", calib,
                            "--samples", "6", "--seqlen", "32", "--mixed", "auto", "--budget", "32", "-q"});
  EXPECT_EQ(all.status, 1);
  EXPECT_NE(all.err.find("nothing would be quantized"), std::string::npos) << all.err;
}

// quantize's own f32 forward (embedding, every layer, final
// norm, head) gives the runtime's logits (which are checked against transformers), on two blocks.
TEST(AwqForward, MatchesTheRuntimeLogits) {
  for (const char* name : {"models/llama2", "models/qwen3", "models/mistral"}) {
    ModelDir dir(data_path(name));
    const ModelConfig cfg = parse_model_config(dir.config(), "config.json");
    std::mt19937 rng(9);
    std::vector<std::vector<int32_t>> blocks(2);
    for (auto& b : blocks)
      for (int t = 0; t < 150; ++t) b.push_back(int32_t(rng() % uint32_t(cfg.vocab)));
    Activations act = embed_blocks(dir, cfg, blocks);
    ThreadPool pool(2);
    for (int64_t i = 0; i < cfg.layers; ++i) layer_forward(cfg, load_layer(dir, cfg, i, 32, false, nullptr), act, nullptr, pool);
    const std::vector<float> fn = tensor_f32(dir.get(cfg.names.final_norm));
    const std::vector<float> head = tensor_f32(dir.get(cfg.tied_embeddings ? cfg.names.embed : cfg.names.lm_head));
    const auto model = Model::load(data_path(name));
    for (size_t b = 0; b < blocks.size(); ++b) {
      const std::vector<float> ref = model->prompt_logits(blocks[b]);
      double worst = 0, var = 0;
      std::vector<float> h(size_t(cfg.hidden));
      for (int64_t t = 0; t < 150; ++t) {
        kernels::rms_norm(act.x.data() + (int64_t(b) * 150 + t) * cfg.hidden, fn.data(), cfg.hidden, float(cfg.rms_eps), h.data());
        for (int64_t v = 0; v < cfg.vocab; ++v) {
          double l = 0;
          for (int64_t c = 0; c < cfg.hidden; ++c) l += double(head[size_t(v * cfg.hidden + c)]) * h[size_t(c)];
          const double r = ref[size_t(t * cfg.vocab + v)];
          worst = std::max(worst, std::fabs(l - r));
          var += r * r;
        }
      }
      EXPECT_LT(worst / std::sqrt(var / double(150 * cfg.vocab)), 1e-4) << name << " block " << b;
    }
  }
}

// --propagate calibrates layer i on the stored (quantized) layers before it: layer 0 sees the same
// input either way and is quantized identically; layer 1's calibration input differs, and so do
// some of its codes or scales. The output passes check.
TEST(QuantizeCmd, PropagateChangesOnlyTheLayersAfterTheFirst) {
  TempDir tmp;
  const std::string calib = calib_ids(tmp, 200, 19, 300);
  for (const char* o : {"plain", "prop"}) {
    std::vector<std::string> args = {"quantize", data_path("models/llama2"), "-o", tmp / o, "--group-size", "32", "--calib-tokens", calib,
                                     "--samples", "6", "--seqlen", "32", "-q"};
    if (std::string(o) == "prop") args.push_back("--propagate");
    const auto r = run_awq(args);
    ASSERT_EQ(r.status, 0) << r.err;
  }
  EXPECT_EQ(run_awq({"check", tmp / "prop"}).status, 0);
  ModelDir a(tmp / "plain"), b(tmp / "prop");
  size_t same0 = 0, diff1 = 0;
  for (const auto* t : a.tensors()) {
    const TensorView* u = b.find(t->name);
    ASSERT_TRUE(u) << t->name;
    const bool same = t->nbytes == u->nbytes && std::memcmp(t->data, u->data, t->nbytes) == 0;
    if (t->name.rfind("model.layers.0.", 0) == 0) {
      EXPECT_TRUE(same) << t->name;
      same0 += same;
    }
    if (t->name.rfind("model.layers.1.", 0) == 0 && !same) ++diff1;
  }
  EXPECT_GT(same0, 0u);
  EXPECT_GT(diff1, 0u);
}
