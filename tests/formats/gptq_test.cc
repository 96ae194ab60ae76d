// GPTQ reader: v1/v2 zero conventions and g_idx on a hand-built module, legacy configs and file
// names, and every contradiction between config and tensors is an awq::Error naming the tensor.
#include <gtest/gtest.h>

#include "formats/tiny_model.h"

namespace awq {
namespace {

using test::EditTensor;

constexpr int64_t N = 16, K = 32, G = 16, NG = K / G;
const std::string M = "model.layers.0.self_attn.o_proj";

int q_at(int64_t n, int64_t k) { return int((n * 7 + k * 3) % 16); }  // unsigned code
int z_at(int64_t n, int64_t g) { return int((n + 5 * g) % 15) + 1; }  // true zero in [1, 15]
float s_at(int64_t n, int64_t g) { return 0.25f + 0.125f * float(n % 4) + 0.5f * float(g); }

nlohmann::json gptq_qc(int bits = 4, int64_t group_size = G, const std::string& fmt = "") {
  nlohmann::json qc = {{"quant_method", "gptq"}, {"bits", bits}, {"group_size", group_size}, {"desc_act", false}, {"sym", false}};
  if (!fmt.empty()) qc["checkpoint_format"] = fmt;
  return qc;
}
nlohmann::json config(const nlohmann::json& qc) {
  return {{"architectures", {"LlamaForCausalLM"}}, {"torch_dtype", "float16"}, {"quantization_config", qc}};
}

// `v2`: store z instead of z − 1. `zero_at_0_0`: overrides the zero of (n=0, g=0).
std::vector<EditTensor> gptq_tensors(bool v2, int zero_at_0_0 = -1) {
  std::vector<int32_t> qw(size_t(K / 8 * N), 0), qz(size_t(NG * N / 8), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) qw[size_t((k / 8) * N + n)] |= int32_t(uint32_t(q_at(n, k)) << (4 * (k % 8)));
  std::vector<float> sc;
  for (int64_t g = 0; g < NG; ++g)
    for (int64_t n = 0; n < N; ++n) {
      int z = (n == 0 && g == 0 && zero_at_0_0 >= 0) ? zero_at_0_0 : z_at(n, g);
      const uint32_t stored = uint32_t(v2 ? z : z - 1) & 0xF;
      qz[size_t(g * (N / 8) + n / 8)] |= int32_t(stored << (4 * (n % 8)));
      sc.push_back(s_at(n, g));
    }
  return {
      test::make_tensor(M + ".qweight", DType::I32, {K / 8, N}, qw),
      test::make_tensor(M + ".qzeros", DType::I32, {NG, N / 8}, qz),
      test::float_tensor(M + ".scales", DType::F16, {NG, N}, sc),
      test::float_tensor(M + ".bias", DType::F16, {N}, std::vector<float>(N, 0.5f)),
      test::float_tensor("lm_head.weight", DType::F16, {4, K}, std::vector<float>(4 * K, 1.0f)),
  };
}

struct Fixture {
  test::TempDir tmp;
  std::string dir = tmp / "model";
};

std::vector<float> open_dense(const std::string& dir, const std::string& want_fmt) {
  ModelDir md(dir);
  auto r = open_format(md);
  EXPECT_EQ(r->scheme().format, "gptq");
  EXPECT_EQ(r->scheme().gptq_format, want_fmt);
  EXPECT_EQ(r->modules(), std::vector<std::string>{M});
  EXPECT_EQ(r->read(M).bias.size(), size_t(N));
  return test::dense_f32(*r, M);
}

TEST(Gptq, V1AndV2ZeroConventions) {
  for (bool v2 : {false, true}) {
    Fixture f;
    test::write_model(f.dir, gptq_tensors(v2), config(gptq_qc(4, G, v2 ? "gptq_v2" : "gptq")));
    const auto w = open_dense(f.dir, v2 ? "v2" : "v1");
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k)
        ASSERT_EQ(w[size_t(n * K + k)], s_at(n, k / G) * float(q_at(n, k) - z_at(n, k / G))) << v2 << " " << n << "," << k;
  }
}

TEST(Gptq, V1StoredFifteenReadsAsZeroLikeAutoGptq) {
  Fixture f;
  test::write_model(f.dir, gptq_tensors(false, /*zero_at_0_0=*/0), config(gptq_qc()));
  ModelDir md(f.dir);
  auto r = open_format(md);
  const QuantLinear q = r->read(M);
  EXPECT_EQ(q.zeros[0], 0);  // stored nibble 15 = z − 1 for z = 0; (15 + 1) & 0xF
}

TEST(Gptq, LegacyQuantizeConfigAndGptqFileName) {
  Fixture f;
  test::write_model(f.dir, gptq_tensors(false), {{"architectures", {"LlamaForCausalLM"}}}, "gptq_model-4bit-16g.safetensors");
  nlohmann::json legacy = gptq_qc();
  legacy.erase("quant_method");
  legacy["desc_act"] = false;
  test::write_bytes(f.dir + "/quantize_config.json", legacy.dump());
  const auto w = open_dense(f.dir, "v1");
  EXPECT_EQ(w[1], s_at(0, 0) * float(q_at(0, 1) - z_at(0, 0)));
}

TEST(Gptq, GroupIndexIsHonouredAndRangeChecked) {
  std::vector<int32_t> gi(static_cast<size_t>(K), 0);
  for (int64_t k = 0; k < K; ++k) gi[size_t(k)] = int32_t((k * 5 + 1) % NG);
  {
    Fixture f;
    auto ts = gptq_tensors(false);
    ts.push_back(test::make_tensor(M + ".g_idx", DType::I32, {K}, gi));
    test::write_model(f.dir, ts, config(gptq_qc()));
    const auto w = open_dense(f.dir, "v1");
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t g = gi[size_t(k)];
        ASSERT_EQ(w[size_t(n * K + k)], s_at(n, g) * float(q_at(n, k) - z_at(n, g)));
      }
  }
  for (int32_t badv : {-1, 2, 1 << 30}) {
    Fixture f;
    auto ts = gptq_tensors(false);
    auto bad = gi;
    bad[7] = badv;
    ts.push_back(test::make_tensor(M + ".g_idx", DType::I32, {K}, bad));
    test::write_model(f.dir, ts, config(gptq_qc()));
    test::expect_open_error(f.dir, {M + ".g_idx", "g_idx[7] = " + std::to_string(badv), "outside [0, 2)"});
  }
  Fixture f;
  auto ts = gptq_tensors(false);
  ts.push_back(test::make_tensor(M + ".g_idx", DType::I32, {K - 1}, std::vector<int32_t>(size_t(K - 1), 0)));
  test::write_model(f.dir, ts, config(gptq_qc()));
  test::expect_open_error(f.dir, {M + ".g_idx", "expected [32]"});
}

TEST(Gptq, ConfigGroupSizeContradictingTensorsNamesScales) {
  Fixture f;
  test::write_model(f.dir, gptq_tensors(false), config(gptq_qc(4, 32)));
  test::expect_open_error(f.dir, {M + ".scales", "group_size 32", "has 2", "group size 16"});
}

TEST(Gptq, WrongBitsIsNamed) {
  Fixture f;
  test::write_model(f.dir, gptq_tensors(false), config(gptq_qc(8)));
  test::expect_open_error(f.dir, {M + ".scales", "bits 8", "K = 16"});
  Fixture g;
  test::write_model(g.dir, gptq_tensors(false), config(gptq_qc(3)));
  test::expect_open_error(g.dir, {"bits = 3", "only 2, 4 and 8"});
}

TEST(Gptq, MissingTensorIsNamed) {
  Fixture f;
  auto ts = gptq_tensors(false);
  test::drop_tensor(ts, M + ".qzeros");
  test::write_model(f.dir, ts, config(gptq_qc()));
  test::expect_open_error(f.dir, {M + ".qzeros", "missing", "gptq"});
}

TEST(Gptq, WrongDtypesAreNamed) {
  {
    Fixture f;
    auto ts = gptq_tensors(false);
    test::find_tensor(ts, M + ".scales")->dtype = DType::I16;
    test::write_model(f.dir, ts, config(gptq_qc()));
    test::expect_open_error(f.dir, {M + ".scales", "dtype I16", "expected F16 or BF16 or F32"});
  }
  {
    Fixture f;
    auto ts = gptq_tensors(false);
    test::find_tensor(ts, M + ".qzeros")->dtype = DType::F32;
    test::write_model(f.dir, ts, config(gptq_qc()));
    test::expect_open_error(f.dir, {M + ".qzeros", "dtype F32", "expected I32"});
  }
}

TEST(Gptq, QzerosShapeIsChecked) {
  Fixture f;
  auto ts = gptq_tensors(false);
  auto* qz = test::find_tensor(ts, M + ".qzeros");
  qz->shape = {NG * 2, N / 16};
  test::write_model(f.dir, ts, config(gptq_qc()));
  test::expect_open_error(f.dir, {M + ".qzeros", "expected [2, 2]"});
}

TEST(Gptq, RefusesMarlinAndUnknownCheckpointFormats) {
  Fixture f;
  test::write_model(f.dir, gptq_tensors(false), config(gptq_qc(4, G, "bitblas")));
  test::expect_open_error(f.dir, {"checkpoint_format \"bitblas\""});
}

}  // namespace
}  // namespace awq

namespace awq {
namespace {

TEST(Gptq, GoldenCheckpointsAreDetectedWithoutAnyConfig) {
  for (const auto& [c, g, asym] : std::vector<std::tuple<std::string, int64_t, bool>>{
           {"gptq-v1-asym-g64", 64, true}, {"gptq-v1-sym-g128", 128, false}, {"gptq-actorder-g64", 64, true}}) {
    test::TempDir t;
    const std::string dir = t / "m";
    test::copy_dir(test::data_path("golden/" + c + "/model"), dir);
    std::filesystem::remove(dir + "/quantize_config.json");
    test::edit_json(dir + "/config.json", [](nlohmann::json& j) { j.erase("quantization_config"); });
    ModelDir md(dir);
    auto r = open_format(md);
    EXPECT_EQ(r->scheme().format, "gptq") << c;
    EXPECT_EQ(r->scheme().group_size, g) << c;
    EXPECT_EQ(r->scheme().zero_point, asym) << c;
    EXPECT_EQ(r->scheme().gptq_format, "v1") << c;
  }
}

}  // namespace
}  // namespace awq

namespace awq {
namespace {

TEST(Gptq, EightBitV1) {
  // 8-bit: qweight [K/4, N], qzeros [ng, N/4], four bytes per word; v1 zero = (stored + 1) & 255.
  constexpr int64_t n8 = 8, k8 = 8;
  auto q8 = [](int64_t n, int64_t k) { return int((n * 29 + k * 13) % 256); };
  auto z8 = [](int64_t n) { return int(n * 30 + 5); };
  std::vector<int32_t> qw(size_t(k8 / 4 * n8), 0), qz(size_t(n8 / 4), 0);
  for (int64_t k = 0; k < k8; ++k)
    for (int64_t n = 0; n < n8; ++n) qw[size_t((k / 4) * n8 + n)] |= int32_t(uint32_t(q8(n, k)) << (8 * (k % 4)));
  for (int64_t n = 0; n < n8; ++n) qz[size_t(n / 4)] |= int32_t(uint32_t(z8(n) - 1) << (8 * (n % 4)));
  std::vector<float> sc;
  for (int64_t n = 0; n < n8; ++n) sc.push_back(0.125f * float(n + 1));
  test::TempDir t;
  const std::string dir = t / "m";
  test::write_model(dir,
                    {test::make_tensor(M + ".qweight", DType::I32, {k8 / 4, n8}, qw),
                     test::make_tensor(M + ".qzeros", DType::I32, {1, n8 / 4}, qz),
                     test::float_tensor(M + ".scales", DType::F16, {1, n8}, sc)},
                    config(gptq_qc(8, -1)));
  ModelDir md(dir);
  auto r = open_format(md);
  EXPECT_EQ(r->scheme().bits, 8);
  const auto w = test::dense_f32(*r, M);
  for (int64_t n = 0; n < n8; ++n)
    for (int64_t k = 0; k < k8; ++k) ASSERT_EQ(w[size_t(n * k8 + k)], sc[size_t(n)] * float(q8(n, k) - z8(n))) << n << "," << k;
}

}  // namespace
}  // namespace awq
