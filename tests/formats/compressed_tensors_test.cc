// compressed-tensors pack-quantized reader: arithmetic on a hand-built module, and every
// contradiction between config and tensors is an awq::Error naming the tensor and the expectation.
#include <gtest/gtest.h>

#include "formats/tiny_model.h"

namespace awq {
namespace {

using test::EditTensor;

constexpr int64_t N = 8, K = 16, G = 8, NG = K / G;
const std::string M = "model.layers.0.mlp.down_proj";

int q_at(int64_t n, int64_t k) { return int((n * 3 + k * 5) % 16) - 8; }  // signed int4
int zp_at(int64_t n, int64_t g) { return int((n + 3 * g) % 16) - 8; }
float s_at(int64_t n, int64_t g) { return 0.5f + 0.25f * float(g) + 0.125f * float(n); }

nlohmann::json ct_config(bool symmetric, int64_t group_size = G, int bits = 4, const std::string& strategy = "group") {
  nlohmann::json w = {{"num_bits", bits}, {"type", "int"}, {"symmetric", symmetric}, {"strategy", strategy},
                      {"group_size", group_size}, {"dynamic", false}, {"actorder", nullptr}};
  nlohmann::json qc = {{"quant_method", "compressed-tensors"}, {"format", "pack-quantized"},
                       {"quantization_status", "compressed"}, {"ignore", {"lm_head"}}, {"version", "0.13.0"},
                       {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", w}, {"format", "pack-quantized"}}}}}};
  return {{"architectures", {"LlamaForCausalLM"}}, {"torch_dtype", "float16"}, {"quantization_config", qc}};
}

// zp: 0 none (symmetric), 1 packed I32 [ceil(N/8), NG], 2 unpacked I8 [N, NG].
std::vector<EditTensor> ct_tensors(int zp) {
  std::vector<int32_t> packed(size_t(N * (K / 8)));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      packed[size_t(n * (K / 8) + k / 8)] |= int32_t(uint32_t(q_at(n, k) + 8) << (4 * (k % 8)));
  std::vector<float> scales;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < NG; ++g) scales.push_back(s_at(n, g));
  std::vector<EditTensor> ts = {
      test::make_tensor(M + ".weight_packed", DType::I32, {N, K / 8}, packed),
      test::float_tensor(M + ".weight_scale", DType::F16, {N, NG}, scales),
      test::make_tensor(M + ".weight_shape", DType::I64, {2}, std::vector<int64_t>{N, K}),
      test::float_tensor("model.embed_tokens.weight", DType::F16, {4, K}, std::vector<float>(4 * K, 1.0f)),
  };
  if (zp == 1) {
    std::vector<int32_t> z(static_cast<size_t>(NG), 0);
    for (int64_t g = 0; g < NG; ++g)
      for (int64_t n = 0; n < N; ++n) z[size_t(g)] |= int32_t(uint32_t(zp_at(n, g) + 8) << (4 * n));
    ts.push_back(test::make_tensor(M + ".weight_zero_point", DType::I32, {1, NG}, z));
  } else if (zp == 2) {
    std::vector<int8_t> z;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < NG; ++g) z.push_back(int8_t(zp_at(n, g)));
    ts.push_back(test::make_tensor(M + ".weight_zero_point", DType::I8, {N, NG}, z));
  }
  return ts;
}

struct Fixture {
  test::TempDir tmp;
  std::string dir = tmp / "model";
};

void expect_dense(const std::string& dir, bool asym) {
  ModelDir md(dir);
  auto r = open_format(md);
  ASSERT_EQ(r->scheme().format, "compressed-tensors");
  EXPECT_EQ(r->scheme().zero_point, asym);
  EXPECT_EQ(r->modules(), std::vector<std::string>{M});
  EXPECT_EQ(r->scheme().modules_to_not_convert, std::vector<std::string>{"lm_head"});
  const auto w = test::dense_f32(*r, M);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const float want = s_at(n, k / G) * float(q_at(n, k) - (asym ? zp_at(n, k / G) : 0));
      ASSERT_EQ(w[size_t(n * K + k)], want) << n << "," << k;
    }
  const auto mt = r->module_tensors(M);
  EXPECT_EQ(std::count(mt.begin(), mt.end(), M + ".weight_shape"), 1);
}

TEST(CompressedTensors, SymmetricPackedDequantizes) {
  Fixture f;
  test::write_model(f.dir, ct_tensors(0), ct_config(true));
  expect_dense(f.dir, false);
}

TEST(CompressedTensors, PackedAndUnpackedZeroPointsDequantize) {
  for (int zp : {1, 2}) {
    Fixture f;
    test::write_model(f.dir, ct_tensors(zp), ct_config(false));
    expect_dense(f.dir, true);
  }
}

TEST(CompressedTensors, InfersSchemeWithoutConfig) {
  Fixture f;
  test::write_model(f.dir, ct_tensors(1), nlohmann::json::object());
  ModelDir md(f.dir);
  auto r = open_format(md);
  EXPECT_EQ(r->scheme().format, "compressed-tensors");
  EXPECT_EQ(r->scheme().group_size, G);
  EXPECT_TRUE(r->scheme().zero_point);
}

TEST(CompressedTensors, ConfigGroupSizeContradictingTensorsNamesScale) {
  Fixture f;
  test::write_model(f.dir, ct_tensors(0), ct_config(true, 16));
  test::expect_open_error(f.dir, {M + ".weight_scale", "expected [8, 1]", "group size 8"});
}

TEST(CompressedTensors, ChannelStrategyContradictingGroupedScales) {
  Fixture f;
  test::write_model(f.dir, ct_tensors(0), ct_config(true, -1, 4, "channel"));
  test::expect_open_error(f.dir, {M + ".weight_scale", "strategy channel", "expected [8, 1]"});
}

TEST(CompressedTensors, WrongBitsNamesPackedWeight) {
  Fixture f;
  test::write_model(f.dir, ct_tensors(0), ct_config(true, G, 8));
  test::expect_open_error(f.dir, {M + ".weight_packed", "expected [8, 4]", "8 bits"});
  Fixture g;
  test::write_model(g.dir, ct_tensors(0), ct_config(true, G, 3));
  test::expect_open_error(g.dir, {"num_bits = 3", "only 4 and 8"});
}

TEST(CompressedTensors, MissingTensorsAreNamed) {
  for (const std::string& t : {".weight_shape", ".weight_scale"}) {
    Fixture f;
    auto ts = ct_tensors(0);
    test::drop_tensor(ts, M + t);
    test::write_model(f.dir, ts, ct_config(true));
    test::expect_open_error(f.dir, {M + t, "missing"});
  }
  Fixture f;  // asymmetric config, zero points absent
  test::write_model(f.dir, ct_tensors(0), ct_config(false));
  test::expect_open_error(f.dir, {M + ".weight_zero_point", "missing", "asymmetric"});
}

TEST(CompressedTensors, WrongDtypesAreNamed) {
  {
    Fixture f;
    auto ts = ct_tensors(0);
    test::find_tensor(ts, M + ".weight_scale")->dtype = DType::I16;
    test::write_model(f.dir, ts, ct_config(true));
    test::expect_open_error(f.dir, {M + ".weight_scale", "dtype I16", "expected F16 or BF16 or F32"});
  }
  {
    Fixture f;
    auto ts = ct_tensors(0);
    auto* wp = test::find_tensor(ts, M + ".weight_packed");
    wp->dtype = DType::F32;
    test::write_model(f.dir, ts, ct_config(true));
    test::expect_open_error(f.dir, {M + ".weight_packed", "dtype F32", "expected I32"});
  }
  {
    Fixture f;
    auto ts = ct_tensors(1);
    auto* zp = test::find_tensor(ts, M + ".weight_zero_point");
    zp->dtype = DType::F32;
    test::write_model(f.dir, ts, ct_config(false));
    test::expect_open_error(f.dir, {M + ".weight_zero_point", "dtype F32", "expected I32"});
  }
}

TEST(CompressedTensors, WeightShapeDisagreeingWithPackedWeight) {
  Fixture f;
  auto ts = ct_tensors(0);
  *test::find_tensor(ts, M + ".weight_shape") = test::make_tensor(M + ".weight_shape", DType::I64, {2}, std::vector<int64_t>{N, 32});
  test::write_model(f.dir, ts, ct_config(true));
  test::expect_open_error(f.dir, {M + ".weight_packed", "expected [8, 4]", "weight_shape [8, 32]"});
}

TEST(CompressedTensors, OutOfRangeGroupIndexAndZeroPointAreErrors) {
  {
    Fixture f;
    auto ts = ct_tensors(0);
    std::vector<int32_t> gi(static_cast<size_t>(K), 0);
    gi[5] = 2;  // only groups 0 and 1 exist
    ts.push_back(test::make_tensor(M + ".weight_g_idx", DType::I32, {K}, gi));
    test::write_model(f.dir, ts, ct_config(true));
    test::expect_open_error(f.dir, {M + ".weight_g_idx", "weight_g_idx[5] = 2", "outside [0, 2)"});
  }
  {
    Fixture f;
    auto ts = ct_tensors(2);
    test::find_tensor(ts, M + ".weight_zero_point")->bytes[3] = char(100);
    test::write_model(f.dir, ts, ct_config(false));
    test::expect_open_error(f.dir, {M + ".weight_zero_point", "= 100", "outside the signed 4-bit range"});
  }
}

TEST(CompressedTensors, GroupIndexIsHonoured) {
  Fixture f;
  auto ts = ct_tensors(0);
  std::vector<int32_t> gi(static_cast<size_t>(K), 0);
  for (int64_t k = 0; k < K; ++k) gi[size_t(k)] = int32_t((k + 1) % 2);  // act-order style interleave
  ts.push_back(test::make_tensor(M + ".weight_g_idx", DType::I32, {K}, gi));
  test::write_model(f.dir, ts, ct_config(true));
  ModelDir md(f.dir);
  auto r = open_format(md);
  const auto w = test::dense_f32(*r, M);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) ASSERT_EQ(w[size_t(n * K + k)], s_at(n, gi[size_t(k)]) * float(q_at(n, k)));
}

TEST(CompressedTensors, RefusesOtherFormatsByName) {
  for (const std::string& fmt : {"naive-quantized", "int-quantized", "marlin-24", "float-quantized"}) {
    Fixture f;
    auto cfg = ct_config(true);
    cfg["quantization_config"]["format"] = fmt;
    test::write_model(f.dir, ct_tensors(0), cfg);
    test::expect_open_error(f.dir, {"\"" + fmt + "\"", "only \"pack-quantized\""});
  }
  Fixture f;
  auto cfg = ct_config(true);
  cfg["quantization_config"]["config_groups"]["group_0"]["weights"]["type"] = "float";
  test::write_model(f.dir, ct_tensors(0), cfg);
  test::expect_open_error(f.dir, {"type is \"float\""});
}

}  // namespace
}  // namespace awq

namespace awq {
namespace {

TEST(CompressedTensors, GoldenCheckpointsAreDetectedWithoutAnyConfig) {
  for (const auto& [c, g, asym] : std::vector<std::tuple<std::string, int64_t, bool>>{
           // ct-channel: one group per row in every module reads as per-channel (-1), as its meta says
           {"ct-asym-k100-g20", 20, true}, {"ct-sym-g128", 128, false}, {"ct-channel", -1, false}}) {
    test::TempDir t;
    const std::string dir = t / "m";
    test::copy_dir(test::data_path("golden/" + c + "/model"), dir);
    test::edit_json(dir + "/config.json", [](nlohmann::json& j) { j.erase("quantization_config"); });
    ModelDir md(dir);
    auto r = open_format(md);
    EXPECT_EQ(r->scheme().format, "compressed-tensors") << c;
    EXPECT_EQ(r->scheme().group_size, g) << c;
    EXPECT_EQ(r->scheme().zero_point, asym) << c;
  }
}

}  // namespace
}  // namespace awq

namespace awq {
namespace {

TEST(CompressedTensors, EightBitPackedAsymmetric) {
  // 8-bit: four offset-binary bytes per int32 (u = q + 128), zero points packed the same along N.
  constexpr int64_t n8 = 4, k8 = 8;
  auto q8 = [](int64_t n, int64_t k) { return int((n * 37 + k * 11) % 256) - 128; };
  auto z8 = [](int64_t n) { return int(n * 9) - 20; };
  std::vector<int32_t> wp(size_t(n8 * k8 / 4), 0), zp(1, 0);
  for (int64_t n = 0; n < n8; ++n) {
    for (int64_t k = 0; k < k8; ++k) wp[size_t(n * 2 + k / 4)] |= int32_t(uint32_t(q8(n, k) + 128) << (8 * (k % 4)));
    zp[0] |= int32_t(uint32_t(z8(n) + 128) << (8 * n));
  }
  std::vector<float> sc = {0.5f, 0.25f, 1.0f, 2.0f};
  test::TempDir t;
  const std::string dir = t / "m";
  test::write_model(dir,
                    {test::make_tensor(M + ".weight_packed", DType::I32, {n8, k8 / 4}, wp),
                     test::float_tensor(M + ".weight_scale", DType::BF16, {n8, 1}, sc),
                     test::make_tensor(M + ".weight_shape", DType::I64, {2}, std::vector<int64_t>{n8, k8}),
                     test::make_tensor(M + ".weight_zero_point", DType::I32, {1, 1}, zp)},
                    ct_config(false, -1, 8, "channel"));
  ModelDir md(dir);
  auto r = open_format(md);
  EXPECT_EQ(r->scheme().bits, 8);
  EXPECT_EQ(r->scheme().group_size, -1);
  const auto w = test::dense_f32(*r, M);
  for (int64_t n = 0; n < n8; ++n)
    for (int64_t k = 0; k < k8; ++k) ASSERT_EQ(w[size_t(n * k8 + k)], sc[size_t(n)] * float(q8(n, k) - z8(n))) << n << "," << k;
}

}  // namespace
}  // namespace awq
