// config.json -> ModelConfig: each architecture's flags and defaults, and one clear error naming the
// architecture or key for everything unsupported.
#include <gtest/gtest.h>

#include "awq/error.h"
#include "awq/model_config.h"

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
