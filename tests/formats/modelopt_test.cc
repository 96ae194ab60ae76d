// ModelOpt W4A16_AWQ reader: row-pair int4 unpacking and pre_quant_scale folding on a hand-built
// module, dense weights left alone, and every contradiction is an awq::Error naming the tensor.
#include <gtest/gtest.h>

#include "formats/tiny_model.h"

namespace awq {
namespace {

using test::EditTensor;

constexpr int64_t N = 8, K = 32, G = 16, NG = K / G;
const std::string M = "model.layers.0.mlp.down_proj";
const std::string DENSE = "model.layers.0.mlp.up_proj";  // excluded: plain F16 weight

int q_at(int64_t n, int64_t k) { return int((n * 5 + k * 3) % 16) - 8; }
float s_at(int64_t n, int64_t g) { return 0.125f * float(1 + n % 3) + 0.5f * float(g); }
float pqs_at(int64_t k) { return 0.5f + 0.25f * float(k % 4); }

nlohmann::json hf_quant(int64_t group_size = G, const std::string& algo = "W4A16_AWQ") {
  return {{"producer", {{"name", "modelopt"}, {"version", "0.47.0"}}},
          {"quantization", {{"quant_algo", algo}, {"kv_cache_quant_algo", nullptr}, {"group_size", group_size},
                            {"has_zero_point", false}, {"pre_quant_scale", true}, {"exclude_modules", {"lm_head", DENSE}}}}};
}

nlohmann::json config() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"torch_dtype", "float16"},
          {"quantization_config", {{"quant_method", "modelopt"}, {"quant_algo", "W4A16_AWQ"}, {"ignore", {"lm_head"}}}}};
}

std::vector<EditTensor> mo_tensors(bool pqs = true) {
  std::vector<uint8_t> packed(size_t(N / 2 * K));
  for (int64_t p = 0; p < N / 2; ++p)
    for (int64_t k = 0; k < K; ++k)
      packed[size_t(p * K + k)] = uint8_t((q_at(2 * p, k) & 0xF) | ((q_at(2 * p + 1, k) & 0xF) << 4));
  std::vector<float> sc, pq;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < NG; ++g) sc.push_back(s_at(n, g));
  for (int64_t k = 0; k < K; ++k) pq.push_back(pqs_at(k));
  std::vector<EditTensor> ts = {
      test::make_tensor(M + ".weight", DType::U8, {N / 2, K}, packed),
      test::float_tensor(M + ".weight_scale", DType::F32, {N, NG}, sc),
      test::float_tensor(DENSE + ".weight", DType::F16, {N, K}, std::vector<float>(N * K, 0.25f)),
      test::float_tensor("model.embed_tokens.weight", DType::F16, {4, K}, std::vector<float>(4 * K, 1.0f)),
      test::float_tensor("model.norm.weight", DType::F16, {K}, std::vector<float>(K, 1.0f)),
  };
  if (pqs) ts.push_back(test::float_tensor(M + ".pre_quant_scale", DType::F16, {K}, pq));
  return ts;
}

struct Fixture {
  test::TempDir tmp;
  std::string dir = tmp / "model";
  void write(const std::vector<EditTensor>& ts, const nlohmann::json& hq = hf_quant()) {
    test::write_model(dir, ts, config());
    if (!hq.is_null()) test::write_bytes(dir + "/hf_quant_config.json", hq.dump());
  }
};

TEST(ModelOpt, UnpacksRowPairsAndFoldsPreQuantScale) {
  for (bool pqs : {true, false}) {
    Fixture f;
    f.write(mo_tensors(pqs));
    ModelDir md(f.dir);
    auto r = open_format(md);
    ASSERT_EQ(r->scheme().format, "modelopt");
    EXPECT_EQ(r->scheme().group_size, G);
    EXPECT_FALSE(r->scheme().zero_point);
    EXPECT_EQ(r->modules(), std::vector<std::string>{M});  // dense up_proj / embeddings / norms are not modules
    EXPECT_EQ(r->dense_name(M), M + ".weight");
    const auto mt = r->module_tensors(M);
    EXPECT_EQ(std::count(mt.begin(), mt.end(), M + ".pre_quant_scale"), pqs ? 1 : 0);
    const auto w = test::dense_f32(*r, M);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const float want = (float(q_at(n, k)) * s_at(n, k / G)) * (pqs ? pqs_at(k) : 1.0f);
        ASSERT_EQ(w[size_t(n * K + k)], want) << n << "," << k;
      }
  }
}

TEST(ModelOpt, InfersGroupSizeWithoutHfQuantConfig) {
  Fixture f;
  f.write(mo_tensors(), nullptr);
  ModelDir md(f.dir);
  auto r = open_format(md);
  EXPECT_EQ(r->scheme().format, "modelopt");
  EXPECT_EQ(r->scheme().group_size, G);
}

TEST(ModelOpt, ConfigGroupSizeContradictingTensorsNamesScale) {
  Fixture f;
  f.write(mo_tensors(), hf_quant(32));
  test::expect_open_error(f.dir, {M + ".weight_scale", "group_size 32", "has 2", "group size 16"});
}

TEST(ModelOpt, RefusesOtherAlgorithmsByName) {
  for (const std::string& algo : {"W4A8_AWQ", "NVFP4", "FP8"}) {
    Fixture f;
    f.write(mo_tensors(), hf_quant(G, algo));
    test::expect_open_error(f.dir, {algo, "only W4A16_AWQ"});
  }
  Fixture f;  // W4A8 tensors under a W4A16 config
  auto ts = mo_tensors();
  ts.push_back(test::float_tensor(M + ".weight_scale_2", DType::F32, {}, {1.0f}));
  f.write(ts);
  test::expect_open_error(f.dir, {M + ".weight_scale_2", "W4A8_AWQ"});
}

TEST(ModelOpt, MissingScaleOfPackedWeightIsNamed) {
  Fixture f;
  auto ts = mo_tensors();
  test::drop_tensor(ts, M + ".weight_scale");
  f.write(ts);
  test::expect_open_error(f.dir, {M + ".weight_scale", "missing", M + ".weight is packed int4"});
}

TEST(ModelOpt, WrongDtypesAndShapesAreNamed) {
  {
    Fixture f;
    auto ts = mo_tensors();
    test::find_tensor(ts, M + ".weight_scale")->dtype = DType::I32;
    f.write(ts);
    test::expect_open_error(f.dir, {M + ".weight_scale", "dtype I32", "expected F32"});
  }
  {
    Fixture f;
    auto ts = mo_tensors();
    test::find_tensor(ts, M + ".pre_quant_scale")->dtype = DType::I16;
    f.write(ts);
    test::expect_open_error(f.dir, {M + ".pre_quant_scale", "dtype I16"});
  }
  {
    Fixture f;
    auto ts = mo_tensors();
    test::find_tensor(ts, M + ".weight_scale")->shape = {N / 2, NG * 2};
    f.write(ts);
    test::expect_open_error(f.dir, {M + ".weight_scale", "implies N = 8", "[N/2, K]"});
  }
  {
    Fixture f;
    auto ts = mo_tensors();
    *test::find_tensor(ts, M + ".pre_quant_scale") = test::float_tensor(M + ".pre_quant_scale", DType::F16, {K / 2}, std::vector<float>(K / 2, 1.0f));
    f.write(ts);
    test::expect_open_error(f.dir, {M + ".pre_quant_scale", "expected [32]"});
  }
}

}  // namespace
}  // namespace awq
