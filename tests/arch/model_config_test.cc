// config.json -> ModelConfig: each architecture's flags and defaults, and one clear error naming the
// architecture or key for everything unsupported.
#include <gtest/gtest.h>

#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/gguf_arch.h"
#include "awq/model_config.h"
#include "test_util.h"

using namespace awq;
using nlohmann::json;

namespace {
json base(const char* arch) {
  return {{"architectures", {arch}}, {"hidden_size", 64}, {"intermediate_size", 128}, {"num_hidden_layers", 2},
          {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 100}, {"hidden_act", "silu"}};
}
std::string error_of(const json& j) {
  try {
    parse_model_config(j, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ModelConfig, Llama) {
  json j = base("LlamaForCausalLM");
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  j["rope_theta"] = 500000.0;
  j["tie_word_embeddings"] = true;
  const ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.arch, Architecture::kLlama);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.kv_heads, 2);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.linear_name(3, LayerLinear::kDown), "model.layers.3.mlp.down_proj");
  EXPECT_EQ(ModelConfig::layer_name(c.names.attn_norm, 1), "model.layers.1.input_layernorm.weight");
  EXPECT_EQ(c.linear_shape(LayerLinear::kK), (std::pair<int64_t, int64_t>{32, 64}));
  EXPECT_EQ(c.linear_shape(LayerLinear::kDown), (std::pair<int64_t, int64_t>{64, 128}));
}

TEST(ModelConfig, MistralQwen2Qwen3) {
  json m = base("MistralForCausalLM");
  m["sliding_window"] = 4096;
  EXPECT_EQ(parse_model_config(m, "c").sliding_window, 4096);
  const ModelConfig q2 = parse_model_config(base("Qwen2ForCausalLM"), "c");
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.o_bias);
  EXPECT_TRUE(q2.linear_has_bias(LayerLinear::kV));
  EXPECT_FALSE(q2.linear_has_bias(LayerLinear::kO));
  json j3 = base("Qwen3ForCausalLM");
  j3["head_dim"] = 32;  // explicit, != hidden / heads
  const ModelConfig q3 = parse_model_config(j3, "c");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_EQ(q3.head_dim, 32);
  EXPECT_EQ(q3.linear_shape(LayerLinear::kQ), (std::pair<int64_t, int64_t>{128, 64}));
  EXPECT_EQ(q3.linear_shape(LayerLinear::kO), (std::pair<int64_t, int64_t>{64, 128}));
  EXPECT_EQ(ModelConfig::layer_name(q3.names.q_norm, 0), "model.layers.0.self_attn.q_norm.weight");
}

TEST(ModelConfig, ErrorsNameTheArchitectureOrKey) {
  EXPECT_NE(error_of(base("GPT2LMHeadModel")).find("architecture GPT2LMHeadModel is not supported"), std::string::npos);
  json j = base("LlamaForCausalLM");
  j.erase("architectures");
  EXPECT_NE(error_of(j).find("architectures"), std::string::npos);
  j = base("LlamaForCausalLM");
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("hidden_size: missing"), std::string::npos);
  j = base("LlamaForCausalLM");
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("hidden_act"), std::string::npos);
  j = base("LlamaForCausalLM");
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  EXPECT_NE(error_of(j).find("rope type 'yarn' is not supported"), std::string::npos);
  j = base("LlamaForCausalLM");
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("num_key_value_heads"), std::string::npos);
  j = base("LlamaForCausalLM");
  j["num_attention_heads"] = -4;
  EXPECT_NE(error_of(j).find("num_attention_heads"), std::string::npos);
  j = base("LlamaForCausalLM");
  j["vocab_size"] = "lots";
  EXPECT_NE(error_of(j).find("vocab_size: expected an integer"), std::string::npos);
  j = base("Qwen2ForCausalLM");
  j["use_sliding_window"] = true;
  EXPECT_NE(error_of(j).find("use_sliding_window"), std::string::npos);
  EXPECT_NE(error_of(json::array()).find("expected a JSON object"), std::string::npos);
}

// transformers' Qwen3Config defaults head_dim to 128, whatever hidden_size / num_attention_heads is;
// Llama, Mistral and Qwen2 derive it from those two.
TEST(ModelConfig, HeadDimDefaultsAsTransformersConfigsDo) {
  EXPECT_EQ(parse_model_config(base("Qwen3ForCausalLM"), "c").head_dim, 128);
  for (const char* a : {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"})
    EXPECT_EQ(parse_model_config(base(a), "c").head_dim, 16) << a;
}

TEST(DecoderDims, AcceptedConfigsGiveModelConfigsValues) {
  json j = base("Qwen3ForCausalLM");
  j["num_experts"] = 8;  // read beside the dimensions, whatever the architecture
  const DecoderDims d = decoder_dims(j, "config.json");
  ASSERT_TRUE(d.model.has_value()) << d.model_error;
  EXPECT_EQ(d.head_dim, 128);
  EXPECT_EQ(d.head_dim, d.model->head_dim);
  EXPECT_EQ(d.kv_heads, 2);
  EXPECT_EQ(d.hidden, 64);
  EXPECT_EQ(d.intermediate, 128);
  EXPECT_EQ(d.layers, 2);
  EXPECT_EQ(d.vocab, 100);
  EXPECT_EQ(d.experts, 8);
  EXPECT_EQ(d.experts_key, "num_experts");
  EXPECT_TRUE(d.model_error.empty());
}

// What parse_model_config refuses is still described: the same keys and defaults, read leniently,
// also inside text_config; the refusal is kept.
TEST(DecoderDims, RefusedConfigsAreReadLeniently) {
  json moe = base("MixtralForCausalLM");
  moe.erase("num_key_value_heads");
  moe["num_local_experts"] = 4;
  moe["moe_intermediate_size"] = 32;
  DecoderDims d = decoder_dims(moe, "config.json");
  EXPECT_FALSE(d.model.has_value());
  EXPECT_NE(d.model_error.find("architecture MixtralForCausalLM is not supported"), std::string::npos) << d.model_error;
  EXPECT_EQ(d.kv_heads, 4);   // defaults to num_attention_heads
  EXPECT_EQ(d.head_dim, 16);  // hidden_size / num_attention_heads
  EXPECT_EQ(d.moe_intermediate, 32);
  EXPECT_EQ(d.experts, 4);
  EXPECT_EQ(d.experts_key, "num_local_experts");

  json vlm = {{"architectures", {"SomeVisionForConditionalGeneration"}}, {"text_config", base("Qwen3ForCausalLM")}};
  vlm["text_config"]["hidden_size"] = 96;
  vlm["text_config"]["head_dim"] = 48;
  d = decoder_dims(vlm, "config.json");
  EXPECT_FALSE(d.model.has_value());
  EXPECT_EQ(d.hidden, 96);
  EXPECT_EQ(d.head_dim, 48);
  EXPECT_EQ(d.vocab, 100);

  json odd = base("LlamaForCausalLM");
  odd["hidden_size"] = "64";  // wrong JSON type: that dimension is unknown, the others stay
  d = decoder_dims(odd, "config.json");
  EXPECT_NE(d.model_error.find("hidden_size"), std::string::npos) << d.model_error;
  EXPECT_EQ(d.hidden, -1);
  EXPECT_EQ(d.head_dim, -1);
  EXPECT_EQ(d.heads, 4);
  EXPECT_EQ(decoder_dims(json::array(), "c").hidden, -1);  // never throws
}

TEST(ModelConfig, TensorNamesByArchitectureName) {
  ASSERT_TRUE(architecture_tensor_names("Qwen3ForCausalLM").has_value());
  EXPECT_EQ(architecture_tensor_names("Qwen3ForCausalLM")->k_norm, "model.layers.{}.self_attn.k_norm.weight");
  EXPECT_TRUE(architecture_tensor_names("LlamaForCausalLM")->q_norm.empty());
  EXPECT_FALSE(architecture_tensor_names("MixtralForCausalLM").has_value());
}

// A qwen3 GGUF without attention.key_length means llama.cpp's n_embd / n_head, which the config
// read back from it states explicitly (else Qwen3Config's default of 128 would apply).
TEST(GgufConfig, Qwen3WithoutKeyLengthKeepsLlamaCppsHeadDim) {
  test::TempDir t;
  const std::string path = t / "q3.gguf";
  {
    GgufWriter w(path);
    w.add_string("general.architecture", "qwen3");
    w.add_u32("qwen3.embedding_length", 64);
    w.add_u32("qwen3.feed_forward_length", 128);
    w.add_u32("qwen3.block_count", 1);
    w.add_u32("qwen3.attention.head_count", 4);
    w.add_u32("qwen3.attention.head_count_kv", 2);
    w.add_f32("qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
    w.add_tensor("token_embd.weight", {64, 10}, GgmlType::F32);
    w.begin_data();
    const std::vector<float> zeros(640, 0.0f);
    w.append(zeros.data(), zeros.size() * sizeof(float));
    w.commit();
  }
  const json c = hf_config_from_gguf(GgufFile(path));
  EXPECT_EQ(c["head_dim"], 16);
  EXPECT_EQ(parse_model_config(c, path).head_dim, 16);
}
