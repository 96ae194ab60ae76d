// Model's layer-by-layer API against its ordinary forward pass: embed + run_layer chained over
// every layer reproduces layer_outputs (the residual stream captured inside forward) and
// logits_of(the last state) reproduces prompt_logits, bit for bit, on dense, bf16, Qwen3 (q/k
// norms) and AutoAWQ 4-bit golden models. Borrowing blocks from the model itself changes nothing;
// borrowing from another model changes exactly the borrowed block; bad arguments are typed errors.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "awq/error.h"
#include "awq/model.h"
#include "test_util.h"

namespace awq {
namespace {

std::vector<int32_t> some_ids(int64_t vocab, int n) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(int32_t((i * 37 + 11) % vocab));
  return ids;
}

class LayerApi : public ::testing::TestWithParam<const char*> {};

TEST_P(LayerApi, ChainEqualsForward) {
  auto m = Model::load(test::data_path(std::string("models/") + GetParam()), {.threads = 2, .serial_threshold_scale = 0});
  const ModelConfig& c = m->config();
  const auto ids = some_ids(c.vocab, 13);
  const std::vector<float> captured = m->layer_outputs(ids);
  const size_t per = ids.size() * size_t(c.hidden);
  ASSERT_EQ(captured.size(), size_t(c.layers) * per);
  std::vector<float> x = m->embed(ids);
  ASSERT_EQ(x.size(), per);
  for (int64_t l = 0; l < c.layers; ++l) {
    m->run_layer(l, x);
    const std::vector<float> want(captured.begin() + std::ptrdiff_t(size_t(l) * per),
                                  captured.begin() + std::ptrdiff_t(size_t(l + 1) * per));
    ASSERT_EQ(x, want) << "layer " << l;
  }
  EXPECT_EQ(m->logits_of(x), m->prompt_logits(ids));
  // Blocks lent by the model itself: the same layer.
  std::vector<float> a = m->embed(ids), b = a;
  m->run_layer(0, a);
  m->run_layer(0, b, m.get(), m.get());
  EXPECT_EQ(a, b);
}

INSTANTIATE_TEST_SUITE_P(Golden, LayerApi, ::testing::Values("llama2", "llama3", "qwen3", "llama-awq-gemm-g32"));

TEST(LayerApiBorrow, BorrowedBlockIsTheLendersOnly) {
  // llama2 and the AutoAWQ model share the shape (hidden 64, 4/2 heads of 16, intermediate 128, RoPE
  // theta 10000) but not the weights (nor the RMSNorm eps: 1e-6 vs 1e-5, the borrower's is used).
  auto a = Model::load(test::data_path("models/llama2"), {.threads = 1});
  auto b = Model::load(test::data_path("models/llama-awq-gemm-g32"), {.threads = 1});
  const auto ids = some_ids(std::min(a->config().vocab, b->config().vocab), 9);
  const std::vector<float> x0 = a->embed(ids);
  std::vector<float> own = x0, attn_b = x0, mlp_b = x0, both_b = x0, b_own = x0;
  a->run_layer(0, own);
  a->run_layer(0, attn_b, b.get(), nullptr);
  a->run_layer(0, mlp_b, nullptr, b.get());
  a->run_layer(0, both_b, b.get(), b.get());
  b->run_layer(0, b_own);
  EXPECT_NE(attn_b, own);
  EXPECT_NE(mlp_b, own);
  EXPECT_NE(attn_b, mlp_b);
  double err = 0, ref = 0, far = 0;
  for (size_t i = 0; i < x0.size(); ++i) {
    err += double(both_b[i] - b_own[i]) * double(both_b[i] - b_own[i]);
    far += double(own[i] - b_own[i]) * double(own[i] - b_own[i]);
    ref += double(b_own[i]) * double(b_own[i]);
  }
  EXPECT_LT(std::sqrt(err / ref), 1e-3) << "both blocks lent: the lender's layer (up to the eps)";
  EXPECT_GT(std::sqrt(far / ref), 0.1) << "the two models' layers should differ";
}

TEST(LayerApiErrors, TypedErrors) {
  auto m = Model::load(test::data_path("models/llama2"), {.threads = 1});
  auto q3 = Model::load(test::data_path("models/qwen3"), {.threads = 1});
  std::vector<float> x = m->embed(some_ids(m->config().vocab, 4));
  EXPECT_THROW(m->run_layer(2, x), Error);
  EXPECT_THROW(m->run_layer(-1, x), Error);
  std::vector<float> bad(x.begin(), x.end() - 1);
  EXPECT_THROW(m->run_layer(0, bad), Error);
  EXPECT_THROW(m->run_layer(0, x, q3.get(), nullptr), Error);  // head_dim 32 vs 16, q/k norms
  EXPECT_THROW(m->embed(std::vector<int32_t>{int32_t(m->config().vocab)}), Error);
  EXPECT_THROW(m->embed(std::vector<int32_t>{}), Error);
  EXPECT_THROW(m->logits_of(bad), Error);
}

}  // namespace
}  // namespace awq
