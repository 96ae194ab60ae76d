// `awq inspect` on a dense checkpoint: a summary (format "dense") instead of a refusal, with the
// dimensions from src/arch, per-kind dtypes, the parameter count and the tied-embedding state.
#include <gtest/gtest.h>

#include <filesystem>

#include "awq/error.h"
#include "awq/inspect.h"
#include "awq/model_dir.h"
#include "check/checkpoint_util.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;

// The bundled model (models/kjv-llama, its model card: Llama, 4 layers, hidden 256, intermediate
// 768, 4 heads, 2 KV heads, head_dim 64, vocab 4096, tied, bf16).
const std::string kBundled = (fs::path(AWQ_TEST_DATA).parent_path().parent_path() / "models" / "kjv-llama").string();

TEST(InspectDense, BundledModelJsonAndText) {
  if (!fs::exists(kBundled + "/config.json")) GTEST_SKIP() << "no bundled model at " << kBundled;
  auto r = test::run_awq({"inspect", kBundled, "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "dense");
  EXPECT_EQ(j["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  const auto& d = j["dims"];
  EXPECT_EQ(d["hidden_size"], 256);
  EXPECT_EQ(d["intermediate_size"], 768);
  EXPECT_EQ(d["num_hidden_layers"], 4);
  EXPECT_EQ(d["num_attention_heads"], 4);
  EXPECT_EQ(d["num_key_value_heads"], 2);
  EXPECT_EQ(d["head_dim"], 64);
  EXPECT_EQ(d["vocab_size"], 4096);
  EXPECT_EQ(d["max_position_embeddings"], 1024);
  EXPECT_EQ(j["runtime_supported"], true);
  // Counted from the shape alone: embedding 4096x256 (tied: no lm_head), per layer q/o 256x256,
  // k/v 128x256, gate/up/down 768x256, two norms of 256; the final norm.
  const uint64_t per_layer = 2 * 256 * 256 + 2 * 128 * 256 + 3 * 768 * 256 + 2 * 256;
  const uint64_t params = 4096 * 256 + 4 * per_layer + 256;
  EXPECT_EQ(j["parameters"], params);
  EXPECT_EQ(j["total_bytes"], 2 * params);  // bf16
  EXPECT_EQ(j["tie_word_embeddings"], true);
  EXPECT_EQ(j["embeddings_stored"], "embedding only");
  for (const char* kind : {"embeddings", "norms", "dense_weights"}) {
    ASSERT_TRUE(j["tensors"].contains(kind)) << j["tensors"].dump();
    EXPECT_EQ(j["tensors"][kind]["dtype"], "BF16") << kind;
  }
  EXPECT_EQ(j["tensors"]["dense_weights"]["count"], 4 * 7);
  EXPECT_EQ(j["tensors"]["norms"]["parameters"], (4 * 2 + 1) * 256);

  r = test::run_awq({"inspect", kBundled});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* line : {"format                     dense (torch_dtype bfloat16)", "hidden size                256",
                           "attention heads            4 (kv heads 2, head_dim 64)", "embeddings stored          embedding only",
                           "awq run                    supported"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  EXPECT_NE(r.out.find("parameters                 " + std::to_string(params)), std::string::npos) << r.out;
}

// An architecture the runtime refuses is still summarised, with the refusal, from the keys src/arch
// reads anyway; ModelConfig's own defaults apply where it accepts the config (Qwen3's head_dim).
TEST(InspectDense, DimsFromSrcArchAlsoForRefusedArchitectures) {
  test::Checkpoint m("models/qwen3");  // head_dim 32, hidden 64, 4 heads
  m.edit_config([](nlohmann::json& c) { c["architectures"] = {"SomeFutureForCausalLM"}; });
  nlohmann::ordered_json r = inspect_dense_model(ModelDir(m.dir()));
  EXPECT_EQ(r["format"], "dense");
  EXPECT_EQ(r["runtime_supported"], false);
  EXPECT_NE(r["runtime_refusal"].get<std::string>().find("SomeFutureForCausalLM is not supported"), std::string::npos);
  EXPECT_EQ(r["dims"]["head_dim"], 32);
  EXPECT_TRUE(r["dims"]["max_position_embeddings"].is_null());
  EXPECT_NE(render_inspect_text(r).find("awq run                    not supported: "), std::string::npos);

  m.edit_config([](nlohmann::json& c) { c["architectures"] = {"Qwen3ForCausalLM"}; c.erase("head_dim"); });
  r = inspect_dense_model(ModelDir(m.dir()));
  EXPECT_EQ(r["runtime_supported"], true);
  EXPECT_EQ(r["dims"]["head_dim"], 128);  // Qwen3Config's default, not 64 / 4
}

// Only a dense checkpoint is summarised: integer tensors or a quantization config keep inspect's
// refusal (it refuses whatever dequantize refuses), and a quantized one keeps its own report.
TEST(InspectDense, OnlyDenseCheckpointsAreSummarised) {
  test::Checkpoint m("models/qwen3");
  EXPECT_TRUE(is_dense_checkpoint(ModelDir(m.dir())));
  m.edit_config([](nlohmann::json& c) { c["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}}; });
  EXPECT_FALSE(is_dense_checkpoint(ModelDir(m.dir())));
  const auto r = test::run_awq({"inspect", m.dir()});
  EXPECT_EQ(r.status, 1);
  EXPECT_FALSE(is_dense_checkpoint(ModelDir(test::data_path("tiny-llama-awq"))));
  const auto q = test::run_awq({"inspect", test::data_path("tiny-llama-awq"), "--json"});
  ASSERT_EQ(q.status, 0) << q.err;
  EXPECT_EQ(nlohmann::json::parse(q.out)["format"], "autoawq-gemm");
}

}  // namespace
}  // namespace awq
