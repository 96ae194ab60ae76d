// The chunked evaluations of `awq quantize` (src/quant/awq_forward.h): the forward, the q/k/v and
// gate/up losses run in pieces of whole blocks / rows into buffers sized once, and the squared
// errors are summed by MseSum. Each must give the bits of the unchunked computation: mse's
// partition (2^16-element chunks, 8 lane sums) across piece boundaries, every loss and the chosen
// scales of a layer search with 1-3-block pieces against one piece, f32 and bf16 arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

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

// Layer 1 of the llama2 golden model (hidden 64) on `blocks` random blocks of 32 tokens.
struct Golden {
  ModelConfig cfg;
  LayerTensors L;
  LayerInputs in;
  int64_t tokens = 0;
};
Golden golden(int blocks, unsigned seed, ThreadPool& pool) {
  ModelDir dir(data_path("models/llama2"));
  Golden g{parse_model_config(dir.config(), "config.json"), {}, {}, int64_t(blocks) * 32};
  g.L = load_layer(dir, g.cfg, 1, 32, false, nullptr);
  std::mt19937 rng(seed);
  std::vector<std::vector<int32_t>> ids(static_cast<size_t>(blocks));
  for (auto& b : ids)
    for (int t = 0; t < 32; ++t) b.push_back(int32_t(rng() % uint32_t(g.cfg.vocab)));
  Activations act = embed_blocks(dir, g.cfg, ids);
  layer_forward(g.cfg, load_layer(dir, g.cfg, 0, 32, false, nullptr), act, nullptr, pool);
  layer_forward(g.cfg, g.L, act, &g.in, pool);
  return g;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_same_search(const LayerLog& a, const LayerLog& b, const std::string& what) {
  ASSERT_EQ(a.groups.size(), b.groups.size()) << what;
  for (size_t i = 0; i < a.groups.size(); ++i) {
    const GroupLog &x = a.groups[i], &y = b.groups[i];
    EXPECT_EQ(x.choice, y.choice) << what << " " << x.group;
    EXPECT_EQ(x.alpha, y.alpha) << what << " " << x.group;
    EXPECT_TRUE(same_bits(x.loss_rtn, y.loss_rtn)) << what << " " << x.group;
    ASSERT_EQ(x.trials.size(), y.trials.size());
    for (size_t j = 0; j < x.trials.size(); ++j) {
      EXPECT_TRUE(same_bits(x.trials[j].loss, y.trials[j].loss)) << what << " " << x.group << " α " << x.trials[j].alpha << ": "
                                                                 << x.trials[j].loss << " vs " << y.trials[j].loss;
      EXPECT_TRUE(same_bits(x.trials[j].proxy, y.trials[j].proxy)) << what << " " << x.group << " α " << x.trials[j].alpha;
    }
  }
  ASSERT_EQ(a.clips.size(), b.clips.size());
  for (size_t i = 0; i < a.clips.size(); ++i) EXPECT_TRUE(same_bits(a.clips[i].loss_after, b.clips[i].loss_after)) << what;
  EXPECT_EQ(a.grams, b.grams) << what;
}

}  // namespace

// MseSum fed in pieces of any size (1 element, a chunk minus one, several chunks and a bit) equals
// mse() of the whole, bit for bit, with and without a pool; a plain running sum does not (so the
// comparison sees the partition).
TEST(MseSum, PiecesOfAnySizeEqualMseBitForBit) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t n = 3 * MseSum::kChunk + 1237;
  std::vector<float> a(n), b(n);
  for (size_t i = 0; i < n; ++i) {
    a[i] = nd(rng) * 100.0f;
    b[i] = a[i] + nd(rng) * 1e-3f;
  }
  ThreadPool pool(3);
  const double whole = mse(a, b, &pool);
  EXPECT_TRUE(same_bits(whole, mse(a, b)));
  for (const std::vector<size_t>& cuts : {std::vector<size_t>{1, 7, MseSum::kChunk - 1, MseSum::kChunk + 3, 2048},
                                          std::vector<size_t>{MseSum::kChunk, 5, 2 * MseSum::kChunk + 1},
                                          std::vector<size_t>{12345, 1, 1, 1, 99999}}) {
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      MseSum sum;
      size_t at = 0;
      for (size_t i = 0; at < n; ++i) {
        const size_t m = std::min(n - at, cuts[i % cuts.size()]);
        sum.add(a.data() + at, b.data() + at, m, p);
        at += m;
      }
      EXPECT_EQ(sum.count(), n);
      EXPECT_TRUE(same_bits(sum.value(), whole)) << sum.value() << " vs " << whole;
    }
  }
  double plain = 0;
  for (size_t i = 0; i < n; ++i) plain += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
  EXPECT_FALSE(same_bits(plain / double(n), whole));
}

// The forward's pieces: self_attention one block at a time equals all blocks at once, and mlp()
// (pieces of kChunkTokens rows) equals one mlp_rows over every row, bit for bit.
TEST(AwqChunks, ForwardPiecesEqualOnePiece) {
  ThreadPool pool(2);
  for (Compute c : {Compute::kF32, Compute::kBf16}) {
    const ComputeScope scope(c);
    const int blocks = int(kChunkTokens / 32) + 16;  // the MLP splits into kChunkTokens + 512 rows
    Golden g = golden(blocks, 7, pool);
    const ModelConfig& cfg = g.cfg;
    const int64_t T = g.tokens, H = cfg.hidden, qd = cfg.heads * cfg.head_dim, I = cfg.intermediate;
    const LayerTensors& L = g.L;
    std::vector<float> o1(size_t(T * qd)), y1(size_t(T * H)), o2 = o1, y2 = y1;
    AttnBuffers one, all;
    one.chunk_tokens = 32;
    all.chunk_tokens = T;
    self_attention(cfg, L.w[0].data(), L.w[1].data(), L.w[2].data(), L.w[3].data(), L, g.in.qkv_in.data(), blocks, 32, o1.data(), y1.data(),
                   pool, &one);
    self_attention(cfg, L.w[0].data(), L.w[1].data(), L.w[2].data(), L.w[3].data(), L, g.in.qkv_in.data(), blocks, 32, o2.data(), y2.data(),
                   pool, &all);
    EXPECT_EQ(o1, o2);
    EXPECT_EQ(y1, y2);
    EXPECT_EQ(y1, g.in.attn_out);  // layer_forward's own pieces
    std::vector<float> d1(size_t(T * I)), m1(size_t(T * H)), d2 = d1, m2 = m1, u;
    mlp(cfg, L.w[4].data(), L.w[5].data(), L.w[6].data(), L, g.in.mlp_in.data(), T, d1.data(), m1.data(), pool);
    mlp_rows(cfg, MlpWeights(cfg, L.w[4].data(), L.w[5].data(), L.w[6].data(), pool), L, g.in.mlp_in.data(), T, d2.data(), m2.data(), u, pool);
    EXPECT_EQ(d1, d2);
    EXPECT_EQ(m1, m2);
    EXPECT_EQ(d1, g.in.down_in);
  }
}

// A layer's scale and clip search with its q/k/v and gate/up losses in pieces of 3 blocks / 96 rows
// (40 blocks: pieces straddle mse's 2^16-element chunks) gives every loss, proxy, choice, weight
// and Gram matrix of the search with one piece, bit for bit: full and fast search (screened q/k/v,
// gate/up on a token subset), int16 and f32 trials, f32 and bf16 arithmetic. The consuming
// overload gives the same result and frees the inputs.
TEST(AwqChunks, LayerSearchInPiecesEqualsOnePiece) {
  ThreadPool pool(2);
  for (Compute c : {Compute::kF32, Compute::kBf16}) {
    const ComputeScope scope(c);
    const Golden g = golden(40, 5, pool);
    for (int mode = 0; mode < 3; ++mode) {
      AwqParams p;
      p.group_size = 32;
      p.seq_len = 32;
      p.keep_grams = true;
      if (mode > 0) {
        p.mode = SearchMode::kFast;
        p.attn_screen_tokens = 8 * 32;
        p.loss_tokens = 640;
        p.proxy_rows = 48;
      }
      p.int16_trials = mode != 2;
      const std::string what = std::string(c == Compute::kBf16 ? "bf16" : "f32") + " mode " + std::to_string(mode);
      LayerTensors a = g.L, b = g.L, d = g.L;
      p.chunk_tokens = int64_t(1) << 30;
      const LayerLog la = awq_layer(g.cfg, a, g.in, g.tokens, p, pool);
      p.chunk_tokens = 96;
      const LayerLog lb = awq_layer(g.cfg, b, g.in, g.tokens, p, pool);
      LayerInputs copy = g.in;
      const LayerLog ld = awq_layer(g.cfg, d, std::move(copy), g.tokens, p, pool);
      expect_same_search(la, lb, what);
      expect_same_search(la, ld, what + " consumed");
      for (const LayerTensors* x : {&b, &d}) {
        EXPECT_EQ(a.w, x->w) << what;
        EXPECT_EQ(a.attn_norm, x->attn_norm) << what;
        EXPECT_EQ(a.mlp_norm, x->mlp_norm) << what;
        EXPECT_EQ(a.clip_lo, x->clip_lo) << what;
        EXPECT_EQ(a.clip_hi, x->clip_hi) << what;
      }
      EXPECT_TRUE(copy.qkv_in.empty() && copy.o_in.empty() && copy.mlp_in.empty() && copy.down_in.empty() && copy.attn_out.empty());
      EXPECT_EQ(copy.qkv_in.capacity(), 0u);
    }
  }
}
