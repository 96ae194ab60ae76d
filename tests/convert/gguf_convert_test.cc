// `awq convert --to gguf`: the mapping is exact where the issue says it is (every code kept,
// d = f16(s), m = f16(−z·s) bit for bit; symmetric -> Q4_0 with no difference at all), q/k rows
// are permuted as llama.cpp's converter does (and dequantize undoes it), metadata is llama.cpp's,
// refusals name the module and write nothing, and Q4_K keeps every code.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "awq/dtype.h"
#include "awq/formats.h"
#include "awq/gguf.h"
#include "awq/gguf_arch.h"
#include "awq/model_config.h"
#include "awq/model_dir.h"
#include "awq/safetensors.h"
#include "convert/pack.h"
#include "awq/gguf_blocks.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;
using namespace gguf_detail;

QuantLinear read_module(const std::string& dir, const std::string& m) {
  ModelDir d(dir);
  auto r = open_format(d);
  return convert_detail::to_integer_zeros(r->read(m));
}

std::vector<float> ref_dequant(const QuantLinear& q) {
  std::vector<float> w(size_t(q.n * q.k));
  dequantize_ref(q, DType::F32, reinterpret_cast<uint8_t*>(w.data()));
  return w;
}

TEST(GgufConvert, Q4_1KeepsEveryCodeAndScaleAndPermutesQK) {
  test::TempDir tmp;
  const std::string src = test::data_path("tiny-llama-awq"), out = tmp / "m.gguf";
  const auto r = test::run_awq({"convert", src, "-o", out, "--to", "gguf", "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("layer 0: max |w_gguf - w_source|"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("total: max |w_gguf - w_source|"), std::string::npos) << r.out;
  GgufFile f(out);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 2);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 4);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(f.get_int("llama.rope.dimension_count"), 64);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 256);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 512);
  EXPECT_EQ(f.get_int("general.file_type"), 3);  // LLAMA_FTYPE_MOSTLY_Q4_1
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  ASSERT_TRUE(f.find("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(f.find("tokenizer.ggml.add_bos_token")->type, GgufType::BOOL);
  EXPECT_EQ(f.find("tokenizer.ggml.tokens")->arr.size(), 512u);
  EXPECT_GT(f.find("tokenizer.ggml.merges")->arr.size(), 0u);
  EXPECT_EQ(f.tensor("token_embd.weight")->type, GgmlType::F16);
  EXPECT_EQ(f.tensor("blk.0.attn_norm.weight")->type, GgmlType::F32);

  // Every block: codes kept, d = f16(s), m = f16(−z·s) bit for bit; q and k rows in llama.cpp's order.
  for (const char* lin : {"q_proj", "k_proj", "v_proj", "down_proj"}) {
    const bool attn = std::string(lin) != "down_proj";
    const std::string module = std::string("model.layers.1.") + (attn ? "self_attn." : "mlp.") + lin;
    const std::string gname = std::string("blk.1.") + (std::string(lin) == "q_proj" ? "attn_q" : std::string(lin) == "k_proj" ? "attn_k"
                                                       : std::string(lin) == "v_proj" ? "attn_v" : "ffn_down") + ".weight";
    const QuantLinear q = read_module(src, module);
    const GgufTensorInfo* t = f.tensor(gname);
    ASSERT_TRUE(t) << gname;
    ASSERT_EQ(t->type, GgmlType::Q4_1);
    ASSERT_EQ(t->ne, (std::vector<int64_t>{q.k, q.n}));
    const int64_t heads = std::string(lin) == "q_proj" ? 4 : std::string(lin) == "k_proj" ? 2 : 0;
    for (int64_t r = 0; r < q.n; ++r) {
      const int64_t hr = heads ? gguf_permuted_source_row(r, q.n, heads) : r;
      for (int64_t b = 0; b < q.k / 32; ++b) {
        BlockQ4_1 blk;
        std::memcpy(&blk, t->data + size_t(r * (q.k / 32) + b) * sizeof blk, sizeof blk);
        const size_t g = size_t(hr * q.n_groups + b * 32 / q.group_size);
        ASSERT_EQ(blk.d, f32_to_f16(q.scales[g])) << gname << " row " << r;
        ASSERT_EQ(blk.m, f32_to_f16(-float(q.zeros[g]) * q.scales[g])) << gname << " row " << r;
        for (int j = 0; j < 16; ++j) {
          ASSERT_EQ(blk.qs[j] & 0xF, q.codes[size_t(hr * q.k + b * 32 + j)]);
          ASSERT_EQ(blk.qs[j] >> 4, q.codes[size_t(hr * q.k + b * 32 + 16 + j)]);
        }
      }
    }
    if (heads) {  // the permutation moves rows (a test that cannot pass by identity)
      EXPECT_NE(gguf_permuted_source_row(1, q.n, heads), 1);
    }
  }

  // dequantize undoes names and permutation: within the m rounding of the source's own dequantization.
  const auto d = test::run_awq({"dequantize", out, "-o", tmp / "back", "--dtype", "f32", "-q"});
  ASSERT_EQ(d.status, 0) << d.err;
  SafetensorsFile back(tmp / "back/model.safetensors");
  for (const char* module : {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.1.mlp.gate_proj"}) {
    const QuantLinear q = read_module(src, module);
    const auto ref = ref_dequant(q);
    const TensorView* v = back.find(std::string(module) + ".weight");
    ASSERT_TRUE(v) << module;
    double worst = 0, bound = 0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(double(load_float(v->data, DType::F32, i)) - ref[i]));
    for (size_t g = 0; g < q.scales.size(); ++g) {  // |f16(−z·s) − (−z·s)| plus one f32 rounding of the sum
      const float m = -float(q.zeros[g]) * q.scales[g];
      bound = std::max(bound, std::fabs(double(f16_to_f32(f32_to_f16(m))) - m) + 1e-6);
    }
    EXPECT_LE(worst, bound) << module;
  }
  const auto cfg = read_json_file(tmp / "back/config.json");
  EXPECT_EQ(cfg["num_key_value_heads"], 2);
  EXPECT_EQ(cfg["head_dim"], 64);
  EXPECT_EQ(cfg["vocab_size"], 512);
}

TEST(GgufConvert, SymmetricIsQ4_0WithNoDifference) {
  test::TempDir tmp;
  const auto r = test::run_awq({"convert", test::data_path("golden/ct-sym-g128/model"), "-o", tmp / "s.gguf", "--to", "gguf", "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("total: max |w_gguf - w_source| 0 "), std::string::npos) << r.out;
  GgufFile f(tmp / "s.gguf");
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight")->type, GgmlType::Q4_0);
  EXPECT_EQ(f.get_int("general.file_type"), 2);
}

TEST(GgufConvert, Q4KKeepsEveryCodeAndReportsTheAddedError) {
  test::TempDir tmp;
  const std::string src = test::data_path("tiny-llama-awq");
  const auto r = test::run_awq({"convert", src, "-o", tmp / "k.gguf", "--to", "gguf", "--gguf-type", "q4_k", "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  GgufFile f(tmp / "k.gguf");
  const GgufTensorInfo* t = f.tensor("blk.0.ffn_down.weight");
  ASSERT_EQ(t->type, GgmlType::Q4_K);
  const QuantLinear q = read_module(src, "model.layers.0.mlp.down_proj");
  const auto ref = ref_dequant(q);
  std::vector<float> got(ref.size());
  dequantize_ggml(t->type, t->data, int64_t(got.size()), got.data());
  double worst = 0, smax = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - ref[i]));
  for (float s : q.scales) smax = std::max(smax, double(s));
  EXPECT_GT(worst, 0.0);             // 6-bit scales cannot hold f16 scales exactly
  EXPECT_LT(worst, smax * 15 / 63);  // but the error stays below one 6-bit step times the largest code
  for (int64_t r0 = 0; r0 < q.n; ++r0)
    for (int64_t b = 0; b < q.k / 256; ++b) {
      BlockQ4_K blk;
      std::memcpy(&blk, t->data + size_t(r0 * (q.k / 256) + b) * sizeof blk, sizeof blk);
      for (int i = 0; i < 4; ++i)
        for (int l = 0; l < 32; ++l) {
          ASSERT_EQ(blk.qs[32 * i + l] & 0xF, q.codes[size_t(r0 * q.k + b * 256 + 64 * i + l)]);
          ASSERT_EQ(blk.qs[32 * i + l] >> 4, q.codes[size_t(r0 * q.k + b * 256 + 64 * i + 32 + l)]);
        }
    }
  EXPECT_EQ(f.get_int("general.file_type"), 14);
}

TEST(GgufConvert, RefusesWhatCannotBeExactAndKeepsExistingOutput) {
  test::TempDir tmp;
  fs::copy(test::data_path("golden/gptq-actorder-g64/model"), tmp / "act");
  auto cfg = read_json_file(tmp / "act/config.json");
  cfg["architectures"] = {"LlamaForCausalLM"};
  test::write_bytes(tmp / "act/config.json", cfg.dump());
  test::write_bytes(tmp / "out.gguf", "old");
  auto r = test::run_awq({"convert", tmp / "act", "-o", tmp / "new.gguf", "--to", "gguf", "-q"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("act-order"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--requantize"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "new.gguf"));
  r = test::run_awq({"convert", test::data_path("tiny-llama-awq"), "-o", tmp / "out.gguf", "--to", "gguf", "-q"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_bytes(tmp / "out.gguf"), "old");
  r = test::run_awq({"convert", tmp / "act", "-o", tmp / "new.gguf", "--to", "gguf", "--requantize", "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("requantized model.layers.0.self_attn.q_proj"), std::string::npos) << r.out;
  GgufFile f(tmp / "new.gguf");
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight")->type, GgmlType::Q4_1);
  size_t leftovers = 0;
  for (auto& e : fs::directory_iterator(tmp.path())) leftovers += e.path().filename().string().find(".tmp-") != std::string::npos;
  EXPECT_EQ(leftovers, 0u);
}

TEST(GgufConvert, InspectReadsTheFile) {
  test::TempDir tmp;
  ASSERT_EQ(test::run_awq({"convert", test::data_path("tiny-llama-awq"), "-o", tmp / "m.gguf", "--to", "gguf", "-q"}).status, 0);
  const auto r = test::run_awq({"inspect", tmp / "m.gguf", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "gguf");
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["by_type"]["q4_1"]["count"], 14);
  bool mapped = false;
  for (const auto& t : j["tensors"]) mapped |= t["name"] == "blk.1.attn_k.weight" && t["hf_name"] == "model.layers.1.self_attn.k_proj.weight";
  EXPECT_TRUE(mapped);
}

}  // namespace
}  // namespace awq
