// `awq convert`: every golden (peer-made) checkpoint into every target; what the target can hold
// must read back with the same codes and scales (so the same dense weights as the peer's own
// dequantization), and X -> Y -> X must reproduce every tensor byte for byte and the config.
// What it cannot hold must be refused with a reason and leave nothing behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "awq/convert.h"
#include "awq/error.h"
#include "awq/formats.h"
#include "awq/model_dir.h"
#include "check/checkpoint_util.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string name, model, format, gptq_format;
};

std::vector<Case> golden_cases() {
  std::vector<Case> out;
  const auto names = format_names();
  for (const auto& e : fs::directory_iterator(test::data_path("golden"))) {
    if (!fs::exists(e.path() / "meta.json")) continue;
    const auto meta = read_json_file((e.path() / "meta.json").string());
    const std::string f = meta["format"].get<std::string>();
    if (std::find(names.begin(), names.end(), f) == names.end()) continue;
    out.push_back({e.path().filename().string(), (e.path() / meta.value("model_dir", std::string("model"))).string(), f,
                   meta.value("gptq_format", std::string())});
  }
  std::sort(out.begin(), out.end(), [](const Case& a, const Case& b) { return a.name < b.name; });
  return out;
}

struct Target {
  std::string to, gptq_format;
  std::string label() const { return to + (gptq_format.empty() ? "" : "-" + gptq_format); }
};

const std::vector<Target>& targets() {
  static const std::vector<Target> k = {{"autoawq-gemm", ""}, {"autoawq-gemv", ""}, {"autoawq-gemv-fast", ""},
                                        {"gptq", "v1"},       {"gptq", "v2"},       {"compressed-tensors", ""},
                                        {"modelopt", ""}};
  return k;
}

ConvertResult convert(const std::string& in, const std::string& out, const Target& t, bool requantize = false) {
  ModelDir dir(in);
  auto r = open_format(dir);
  ConvertOptions opt;
  opt.out_dir = out;
  opt.to = t.to;
  if (!t.gptq_format.empty()) opt.gptq_format = t.gptq_format;
  opt.progress = false;
  opt.requantize = requantize;
  return convert_model(dir, *r, opt);
}

// Integer zero of group (n, g) whatever the mode.
int32_t zero_of(const QuantLinear& q, int64_t n, int64_t g) {
  if (q.zero_mode != ZeroMode::kScaledFma) return q.zero_at(n, g);
  const size_t i = size_t(n * q.n_groups + g);
  return q.scales[i] != 0 ? int32_t(std::nearbyint(-q.scaled_zeros[i] / q.scales[i])) : 0;
}

void expect_same_values(const FormatReader& a, const FormatReader& b, const std::string& what) {
  ASSERT_EQ(a.modules(), b.modules()) << what;
  for (const auto& m : a.modules()) {
    const QuantLinear x = a.read(m), y = b.read(m);
    ASSERT_EQ(x.codes, y.codes) << what << " " << m;
    ASSERT_EQ(x.scales, y.scales) << what << " " << m;
    if (b.scheme().format != "modelopt") ASSERT_EQ(x.scale_dtype, y.scale_dtype) << what << " " << m;  // ModelOpt stores F32
    for (int64_t n = 0; n < x.n; ++n)
      for (int64_t g = 0; g < x.n_groups; ++g) ASSERT_EQ(zero_of(x, n, g), zero_of(y, n, g)) << what << " " << m << " row " << n << " group " << g;
    for (int64_t k = 0; k < x.k; ++k) ASSERT_EQ(x.group_of(k), y.group_of(k)) << what << " " << m;
  }
}

void expect_same_tensors(const ModelDir& a, const ModelDir& b, const std::string& what) {
  ASSERT_EQ(a.tensors().size(), b.tensors().size()) << what;
  for (const TensorView* t : a.tensors()) {
    const TensorView* u = b.find(t->name);
    ASSERT_NE(u, nullptr) << what << ": " << t->name;
    EXPECT_EQ(u->dtype, t->dtype) << what << ": " << t->name;
    EXPECT_EQ(u->shape, t->shape) << what << ": " << t->name;
    ASSERT_EQ(u->nbytes, t->nbytes) << what << ": " << t->name;
    EXPECT_EQ(std::memcmp(u->data, t->data, t->nbytes), 0) << what << ": " << t->name;
  }
}

class ConvertGolden : public ::testing::TestWithParam<Case> {};

TEST_P(ConvertGolden, EveryTargetRoundTripsOrRefuses) {
  const Case& c = GetParam();
  ModelDir src(c.model);
  auto src_reader = open_format(src);
  const Target back{c.format, c.gptq_format};
  size_t converted = 0;
  for (const Target& t : targets()) {
    test::TempDir tmp;
    const std::string y = tmp / "y", x2 = tmp / "x2";
    try {
      convert(c.model, y, t);
    } catch (const Error& e) {
      EXPECT_FALSE(fs::exists(y)) << t.label() << " refused but left output";
      EXPECT_TRUE(fs::is_empty(tmp.path())) << t.label();
      std::string why = e.what();
      EXPECT_GT(why.size(), 20u);
      continue;
    }
    ++converted;
    ModelDir ydir(y);
    auto yr = open_format(ydir);
    EXPECT_EQ(yr->scheme().format, t.to) << t.label();
    expect_same_values(*src_reader, *yr, c.name + " -> " + t.label());
    if (c.name == "ct-asym-int8zp-g64") continue;  // legacy unpacked int8 zero points: we write the packed form
    if (c.name == "gptq-v1-zero0") continue;       // the peer's defect: v1 cannot hold its zero point 0 (refused back)
    const auto writable = convert_targets();
    if (std::find(writable.begin(), writable.end(), c.format) == writable.end()) continue;  // no writer to come back to (trtllm-npz)
    convert(y, x2, back);
    ModelDir xdir(x2);
    expect_same_tensors(src, xdir, c.name + " -> " + t.label() + " -> back");
    EXPECT_EQ(xdir.quant_config(), src.quant_config()) << c.name << " -> " << t.label() << " -> back";
  }
  // TRT-LLM modules carry pre_quant_scale, which only the modelopt target stores, and have no
  // writer of their own to come back to.
  if (c.format != "trtllm-npz") EXPECT_GT(converted, 0u);
}

INSTANTIATE_TEST_SUITE_P(Peers, ConvertGolden, ::testing::ValuesIn(golden_cases()), [](const auto& info) {
  std::string n = info.param.name;
  for (auto& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

TEST(Convert, ActOrderIntoGemmIsRefused) {
  test::TempDir tmp;
  try {
    convert(test::data_path("golden/gptq-actorder-g64/model"), tmp / "o", {"autoawq-gemm", ""});
    FAIL() << "not refused";
  } catch (const NotRepresentable& e) {
    EXPECT_NE(std::string(e.what()).find("act-order"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(Convert, ZeroPointZeroIntoGptqV1IsRefusedV2Works) {
  test::TempDir tmp;
  // The const-group golden has groups whose AutoAWQ zero point is 0.
  try {
    convert(test::data_path("golden/awq-gemm-const-group/model"), tmp / "o", {"gptq", "v1"});
    FAIL() << "not refused";
  } catch (const NotRepresentable& e) {
    EXPECT_NE(std::string(e.what()).find("zero point 0"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
  convert(test::data_path("golden/awq-gemm-const-group/model"), tmp / "v2", {"gptq", "v2"});
  EXPECT_EQ(read_json_file(tmp / "v2/config.json")["quantization_config"]["checkpoint_format"], "gptq_v2");
}

TEST(Convert, GemvFastReportsTheArithmeticDifference) {
  test::TempDir tmp;
  const auto r = convert(test::data_path("golden/awq-gemm-g128/model"), tmp / "f", {"autoawq-gemv-fast", ""});
  EXPECT_TRUE(r.arithmetic_differs);
  EXPECT_GT(r.max_abs_diff, 0.0);
  EXPECT_LT(r.max_abs_diff, 1e-2);
  EXPECT_FALSE(r.max_diff_module.empty());
  const auto s = convert(test::data_path("golden/awq-gemm-g128/model"), tmp / "g", {"gptq", "v2"});
  EXPECT_FALSE(s.arithmetic_differs);
}

TEST(Convert, WritesTheTargetsOwnConfig) {
  test::TempDir tmp;
  convert(test::data_path("golden/gptq-v1-asym-g64/model"), tmp / "awq", {"autoawq-gemm", ""});
  const auto awq = read_json_file(tmp / "awq/config.json")["quantization_config"];
  EXPECT_EQ(awq, nlohmann::json::parse(R"({"bits":4,"group_size":64,"modules_to_not_convert":null,"quant_method":"awq","version":"gemm","zero_point":true})"));
  convert(tmp / "awq", tmp / "gptq", {"gptq", "v1"});
  EXPECT_EQ(read_json_file(tmp / "gptq/quantize_config.json"), read_json_file(test::data_path("golden/gptq-v1-asym-g64/model/quantize_config.json")));
  convert(tmp / "awq", tmp / "ct", {"compressed-tensors", ""});
  auto want = read_json_file(test::data_path("golden/ct-asym-g128/model/config.json"))["quantization_config"];
  want["config_groups"]["group_0"]["weights"]["group_size"] = 64;
  EXPECT_EQ(read_json_file(tmp / "ct/config.json")["quantization_config"], want);
}

// Through compressed-tensors and GPTQ v2 and back, AutoAWQ's own files come back byte for byte
// (tensor order and header included: we lay files out as the safetensors Rust writer does).
TEST(Convert, ThreeHopsReproduceAutoAwqFilesExactly) {
  for (const std::string src : {test::data_path("tiny-llama-awq"), test::data_path("golden/awq-gemm-g64/model")}) {
    test::TempDir tmp;
    convert(src, tmp / "ct", {"compressed-tensors", ""});
    convert(tmp / "ct", tmp / "gptq", {"gptq", "v2"});
    convert(tmp / "gptq", tmp / "awq", {"autoawq-gemm", ""});
    EXPECT_EQ(test::read_bytes(tmp / "awq/model.safetensors"), test::read_bytes(src + "/model.safetensors")) << src;
    EXPECT_EQ(read_json_file(tmp / "awq/config.json"), read_json_file(src + "/config.json")) << src;
  }
}

ConvertResult convert_requant(const std::string& in, const std::string& out, const Target& t) {
  return convert(in, out, t, /*requantize=*/true);
}

TEST(ConvertRequantize, ActOrderIntoGemmReportsErrorPerLayer) {
  test::TempDir tmp;
  const auto r = convert_requant(test::data_path("golden/gptq-actorder-g64/model"), tmp / "o", {"autoawq-gemm", ""});
  ASSERT_EQ(r.requantized.size(), 7u);
  for (const auto& q : r.requantized) {
    EXPECT_NE(q.reason.find("act-order"), std::string::npos) << q.reason;
    EXPECT_GT(q.rel_rms, 0.0);
    EXPECT_LT(q.rel_rms, 0.2) << q.module;  // one more 4-bit RTN step on top of the source's
  }
  ModelDir out(tmp / "o");
  EXPECT_EQ(open_format(out)->scheme().format, "autoawq-gemm");
}

TEST(ConvertRequantize, OnlyTheUnrepresentableModulesChange) {
  test::TempDir tmp;
  const std::string src = test::data_path("golden/awq-gemm-const-group/model");
  const auto r = convert_requant(src, tmp / "v1", {"gptq", "v1"});
  ASSERT_FALSE(r.requantized.empty());
  std::set<std::string> changed;
  for (const auto& q : r.requantized) changed.insert(q.module);
  ModelDir a(src), b(tmp / "v1");
  auto ra = open_format(a), rb = open_format(b);
  for (const auto& m : ra->modules()) {
    const QuantLinear x = ra->read(m), y = rb->read(m);
    if (changed.count(m)) {
      for (int32_t z : y.zeros) EXPECT_GE(z, 1) << m;  // v1 cannot hold 0
    } else {
      EXPECT_EQ(x.codes, y.codes) << m;
      EXPECT_EQ(x.scales, y.scales) << m;
    }
  }
}

TEST(ConvertRequantize, ModelOptPreQuantScaleIsFolded) {
  test::TempDir tmp;
  const auto r = convert_requant(test::data_path("golden/modelopt-w4a16-g128/model"), tmp / "o", {"autoawq-gemm", ""});
  EXPECT_FALSE(r.requantized.empty());
  for (const auto& q : r.requantized) EXPECT_NE(q.reason.find("pre_quant_scale"), std::string::npos);
}

TEST(ConvertCli, RefusalLeavesNothingAndDenseWorks) {
  test::TempDir tmp;
  auto r = test::run_awq({"convert", test::data_path("golden/gptq-actorder-g64/model"), "-o", tmp / "o", "--to", "autoawq-gemm", "-q"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("act-order"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "o"));
  r = test::run_awq({"convert", test::data_path("tiny-llama-awq"), "-o", tmp / "d", "--to", "dense", "-q"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "d/model.safetensors"));
  r = test::run_awq({"convert", test::data_path("tiny-llama-awq"), "-o", tmp / "c", "--to", "compressed-tensors", "-q"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "c/tokenizer.json"));
}

}  // namespace
}  // namespace awq
