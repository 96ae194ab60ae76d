// awq eval's library: the sliding windows, perplexity against transformers' own f32 model (goldens
// by tools/eval_ppl_transformers.py), the bundled model against itself (KLD 0, top-1 agreement 1,
// no divergent layer), and a 4-bit model with one block damaged named as the first divergent layer
// with the right sub-module (and ranked worst by compare).
//
// The damaged model: tests/data/models/llama-awq-gemm-g32 (quantized by AutoAWQ itself) with one
// module's f16 scales tripled; REF: the undamaged model dequantized to f32 by `awq dequantize`'s
// library, so REF and the undamaged copy compute the same function up to f32 rounding, and every
// difference beyond that comes from the damaged module.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "awq/compare.h"
#include "awq/error.h"
#include "awq/eval.h"
#include "awq/layer_cache.h"
#include "awq/model.h"
#include "awq/tokenizer.h"
#include "check/checkpoint_util.h"
#include "eval/eval_test_util.h"
#include "test_util.h"

namespace awq {
namespace {

std::string bundled() { return test::data_path("../../models/kjv-llama"); }

// The first `chars` code points of the bundled model's eval.txt (the goldens' --max-chars).
std::string eval_text(size_t chars) {
  std::string s = test::read_bytes(bundled() + "/eval.txt");
  if (chars == 0) return s;
  size_t i = 0, n = 0;
  while (i < s.size() && n < chars) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    ++n;
  }
  return s.substr(0, i);
}

TEST(EvalWindows, HuggingFaceSlidingWindow) {
  // n 10, ctx 4, stride 2: windows [0,4) [2,6) [4,8) [6,10); each scores the tokens after the
  // previous window's end; every token but the first is scored once.
  auto w = eval_windows(10, 4, 2);
  ASSERT_EQ(w.size(), 4u);
  const int64_t want[4][3] = {{0, 4, 1}, {2, 6, 4}, {4, 8, 6}, {6, 10, 8}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(w[i].begin, want[i][0]);
    EXPECT_EQ(w[i].end, want[i][1]);
    EXPECT_EQ(w[i].first_scored, want[i][2]);
  }
  // stride = ctx: side by side; a window's first token has no context and is not scored.
  w = eval_windows(10, 4, 4);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[1].begin, 4);
  EXPECT_EQ(w[1].first_scored, 5);
  EXPECT_EQ(w[2].end, 10);
  EXPECT_EQ(w[2].first_scored, 9);
  // A text shorter than one window: one window, all but the first token.
  w = eval_windows(3, 8, 8);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].first_scored, 1);
  EXPECT_THROW(eval_windows(1, 4, 4), Error);
  EXPECT_THROW(eval_windows(10, 4, 5), Error);
  EXPECT_THROW(eval_windows(10, 4, 0), Error);
  EXPECT_THROW(eval_windows(10, 1, 1), Error);
}

// Perplexity of the bundled model against transformers' f32 model on the same text and windows.
void check_golden(const std::string& golden_file) {
  const nlohmann::json g = nlohmann::json::parse(test::read_bytes(test::data_path("eval/" + golden_file)));
  ASSERT_EQ(g["convention"], "huggingface-sliding-window");
  auto tok = load_tokenizer(bundled());
  const std::vector<int32_t> ids = tok->encode(eval_text(g["max_chars"].get<size_t>()));
  ASSERT_EQ(int64_t(ids.size()), g["tokens"].get<int64_t>()) << "the tokenizer disagrees with transformers'";
  ASSERT_TRUE(g["bos_added"].get<bool>());
  ASSERT_EQ(ids.front(), *tok->bos_id());
  auto m = Model::load(bundled());
  EvalOptions opt;
  opt.ctx = g["ctx"];
  opt.stride = g["stride"];
  const EvalResult r = evaluate(*m, nullptr, ids, opt);
  EXPECT_EQ(r.scored, g["scored"].get<int64_t>());
  EXPECT_EQ(r.windows, int64_t(g["windows"].size()));
  const double want = g["ppl"];
  EXPECT_LT(std::fabs(r.ppl / want - 1), 1e-3) << "ours " << r.ppl << " transformers " << want;
  // Recorded in the test log: the agreement the README states.
  std::printf("[%s] PPL ours %.6f transformers %.6f rel diff %.2e\n", golden_file.c_str(), r.ppl, want,
              std::fabs(r.ppl / want - 1));
}

TEST(EvalPerplexity, AgreesWithTransformersOverlappingWindows) { check_golden("kjv-llama-ppl-ctx128-stride48.json"); }
TEST(EvalPerplexity, AgreesWithTransformersWholeEvalText) { check_golden("kjv-llama-ppl-ctx512.json"); }

TEST(EvalRef, BundledModelAgainstItself) {
  auto tok = load_tokenizer(bundled());
  const std::vector<int32_t> ids = tok->encode(eval_text(3000));
  auto m = Model::load(bundled()), ref = Model::load(bundled());
  EvalOptions opt;
  opt.ctx = 96;
  opt.stride = 64;
  int64_t calls = 0, last_total = 0;
  opt.on_progress = [&](int64_t done, int64_t total) {
    ++calls;
    last_total = total;
    EXPECT_LE(done, total);
  };
  const EvalResult r = evaluate(*m, ref.get(), ids, opt);
  opt.on_progress = nullptr;
  const EvalResult plain = evaluate(*m, nullptr, ids, opt);
  EXPECT_GT(calls, 0);
  EXPECT_EQ(last_total, 2 * r.windows * m->config().layers);
  EXPECT_GT(r.scored, 100);
  EXPECT_EQ(r.kld.mean, 0);
  EXPECT_EQ(r.kld_q.max, 0);
  EXPECT_EQ(r.same_top.mean, 1);
  EXPECT_EQ(r.dp_rms.mean, 0);
  EXPECT_EQ(r.ppl, r.ppl_ref);
  EXPECT_EQ(r.ln_ppl_ratio.mean, 0);
  EXPECT_EQ(r.ppl, plain.ppl) << "with or without a reference, the same logits";
  ASSERT_EQ(r.layers.size(), size_t(m->config().layers));
  for (const auto& l : r.layers) {
    EXPECT_EQ(l.cosine, 1);
    EXPECT_EQ(l.rel_error, 0);
    EXPECT_EQ(l.local_rel_error, 0);
  }
  EXPECT_FALSE(r.first_divergent_layer.has_value());
}

// A copy of the AutoAWQ tiny model with `module`'s scales multiplied by 3; REF its f32 dequantization.
struct Damaged {
  test::TempDir tmp;
  std::string ref_dir() const { return tmp / "ref"; }
  std::unique_ptr<test::Checkpoint> quant;
  explicit Damaged(const std::string& module) {
    test::dense_reference(test::data_path("models/llama-awq-gemm-g32"), ref_dir());
    quant = std::make_unique<test::Checkpoint>("models/llama-awq-gemm-g32");
    if (!module.empty()) test::multiply_scales(quant->file("model.safetensors"), module, 3);
  }
  EvalResult eval(const ModelOptions& o = {}) const {
    auto q = Model::load(quant->dir(), o), r = Model::load(ref_dir(), o);
    std::vector<int32_t> ids;
    for (int i = 0; i < 200; ++i) ids.push_back(int32_t((i * 73 + 5) % q->config().vocab));
    EvalOptions opt;
    opt.ctx = 64;
    opt.stride = 32;
    return evaluate(*q, r.get(), ids, opt);
  }
};

TEST(EvalRef, UndamagedQuantizedModelHasNoDivergentLayer) {
  const Damaged d("");
  const EvalResult r = d.eval();
  EXPECT_FALSE(r.first_divergent_layer.has_value());
  for (const auto& l : r.layers) EXPECT_LT(l.rel_error, 1e-4) << "REF is the same function up to rounding";
  EXPECT_LT(r.kld.mean, 1e-6);
  EXPECT_GT(r.same_top.mean, 0.99);
}

TEST(EvalRef, DamagedDownProjIsTheFirstDivergentLayerAndRankedWorst) {
  for (int layer : {0, 1}) {
    const std::string module = "model.layers." + std::to_string(layer) + ".mlp.down_proj";
    const Damaged d(module);
    const EvalResult r = d.eval();
    ASSERT_TRUE(r.first_divergent_layer.has_value()) << module;
    EXPECT_EQ(*r.first_divergent_layer, layer);
    EXPECT_EQ(r.cause, "mlp");
    EXPECT_GT(r.mlp_only_error, 10 * r.attention_only_error);
    EXPECT_GT(r.kld.mean, 1e-4);
    EXPECT_GT(r.layers[size_t(layer)].local_rel_error, 0.05);
    // compare ranks the same module worst.
    const CompareResult c = compare_weights(d.ref_dir(), d.quant->dir());
    ASSERT_FALSE(c.layers.empty());
    EXPECT_EQ(c.layers[0].name, module);
  }
}

TEST(EvalRef, DamagedAttentionIsNamedAttention) {
  const Damaged d("model.layers.1.self_attn.o_proj");
  const EvalResult r = d.eval();
  ASSERT_TRUE(r.first_divergent_layer.has_value());
  EXPECT_EQ(*r.first_divergent_layer, 1);
  EXPECT_EQ(r.cause, "attention");
}

// `awq eval --cache-bytes`: MODEL and REF stream their layers through one cache smaller than a
// layer (every layer read again on every use, by run_layer too): every figure is the same.
TEST(EvalRef, LayersStreamedThroughOneSharedCacheGiveTheSameResult) {
  const Damaged d("model.layers.1.mlp.down_proj");
  const EvalResult want = d.eval();
  ModelOptions o;
  o.layer_cache = std::make_shared<LayerCache>(1);
  o.prefetch = 1;
  const EvalResult got = d.eval(o);
  EXPECT_EQ(got.ppl, want.ppl);
  EXPECT_EQ(got.ppl_ref, want.ppl_ref);
  EXPECT_EQ(got.kld.mean, want.kld.mean);
  EXPECT_EQ(got.same_top.mean, want.same_top.mean);
  ASSERT_EQ(got.layers.size(), want.layers.size());
  for (size_t i = 0; i < got.layers.size(); ++i) {
    EXPECT_EQ(got.layers[i].rel_error, want.layers[i].rel_error) << i;
    EXPECT_EQ(got.layers[i].local_rel_error, want.layers[i].local_rel_error) << i;
  }
  EXPECT_EQ(got.first_divergent_layer, want.first_divergent_layer);
  EXPECT_EQ(got.cause, want.cause);
  EXPECT_EQ(o.layer_cache->stats().entries, 0u);  // both models closed: nothing left
  EXPECT_GT(o.layer_cache->stats().misses, 0u);
}

TEST(EvalRef, MismatchedModelsAreRefused) {
  auto a = Model::load(test::data_path("models/llama2")), b = Model::load(test::data_path("models/qwen3"));
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5};
  EvalOptions opt;
  opt.ctx = 4;
  EXPECT_THROW(evaluate(*a, b.get(), ids, opt), Error);
  opt.ctx = 100000;
  EXPECT_THROW(evaluate(*a, nullptr, ids, opt), Error);
}

}  // namespace
}  // namespace awq
