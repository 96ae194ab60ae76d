// Golden tests: every case under tests/data/golden/ was written by a peer's own code (tools/);
// our reader must detect the format the case names and reproduce expected.safetensors bit for bit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "awq/dequantize_model.h"
#include "awq/formats.h"
#include "awq/inspect.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> golden_cases() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(test::data_path("golden"), ec))
    if (fs::exists(e.path() / "meta.json")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class Golden : public ::testing::TestWithParam<std::string> {};

// Prints the first mismatching elements with their neighbourhood, CUTLASS-style.
std::string dump_mismatch(const TensorView& want, const std::vector<uint8_t>& got, size_t first, int64_t k) {
  std::string s;
  const size_t es = dtype_size(want.dtype);
  const size_t row = first / size_t(k), col = first % size_t(k);
  s += "first mismatch at [" + std::to_string(row) + ", " + std::to_string(col) + "]:";
  for (size_t i = first; i < std::min(first + 8, size_t(want.numel())); ++i)
    s += " want " + std::to_string(load_float(want.data, want.dtype, i)) + " got " +
         std::to_string(load_float(got.data(), want.dtype, i)) + ";";
  (void)es;
  return s;
}

TEST_P(Golden, ReadsBitExact) {
  const fs::path dir = fs::path(test::data_path("golden")) / GetParam();
  const auto meta = read_json_file((dir / "meta.json").string());
  const fs::path model = dir / meta.value("model_dir", std::string("model"));
  ModelDir md(model.string());
  auto reader = open_format(md);
  EXPECT_EQ(reader->scheme().format, meta["format"].get<std::string>());
  if (meta.contains("bits")) EXPECT_EQ(reader->scheme().bits, meta["bits"].get<int>());
  if (meta.contains("group_size")) EXPECT_EQ(reader->scheme().group_size, meta["group_size"].get<int64_t>());
  if (meta.contains("zero_point")) EXPECT_EQ(reader->scheme().zero_point, meta["zero_point"].get<bool>());
  if (meta.contains("gptq_format")) EXPECT_EQ(reader->scheme().gptq_format, meta["gptq_format"].get<std::string>());
  std::vector<std::string> want_layers = meta["quantized_layers"].get<std::vector<std::string>>();
  EXPECT_EQ(reader->modules(), want_layers);

  SafetensorsFile expected((dir / "expected.safetensors").string());
  const DType dt = *parse_float_dtype_cli(meta.value("expected_dtype", std::string("f16")));
  size_t checked = 0;
  for (const auto& m : reader->modules()) {
    const TensorView* want = expected.find(reader->dense_name(m));
    ASSERT_NE(want, nullptr) << "expected.safetensors lacks " << reader->dense_name(m);
    ASSERT_EQ(want->dtype, dt);
    const QuantLinear q = reader->read(m);
    q.validate();
    ASSERT_EQ(want->shape, (std::vector<int64_t>{q.n, q.k})) << m;
    std::vector<uint8_t> got(size_t(q.n * q.k) * dtype_size(dt));
    dequantize_ref(q, dt, got.data());
    if (std::memcmp(got.data(), want->data, got.size()) != 0) {
      size_t i = 0;
      while (std::memcmp(got.data() + i * dtype_size(dt), want->data + i * dtype_size(dt), dtype_size(dt)) == 0) ++i;
      ADD_FAILURE() << m << ": " << dump_mismatch(*want, got, i, q.k);
    }
    ++checked;
  }
  EXPECT_GT(checked, 0u);
}

TEST_P(Golden, DequantizeCommandWritesExpectedWeights) {
  const fs::path dir = fs::path(test::data_path("golden")) / GetParam();
  const auto meta = read_json_file((dir / "meta.json").string());
  const fs::path model = dir / meta.value("model_dir", std::string("model"));
  test::TempDir tmp;
  const std::string out = tmp / "dense";
  const auto r = test::run_awq({"dequantize", model.string(), "-o", out, "--dtype", meta.value("expected_dtype", std::string("f16")), "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  ModelDir dense(out);
  SafetensorsFile expected((dir / "expected.safetensors").string());
  for (const auto& t : expected.tensors()) {
    const TensorView* got = dense.find(t.name);
    ASSERT_NE(got, nullptr) << t.name;
    ASSERT_EQ(got->nbytes, t.nbytes);
    EXPECT_EQ(std::memcmp(got->data, t.data, t.nbytes), 0) << t.name;
  }
  EXPECT_FALSE(dense.config().contains("quantization_config"));
  // Nothing quantized is left behind.
  for (const TensorView* t : dense.tensors()) {
    EXPECT_EQ(t->name.find("qweight"), std::string::npos) << t->name;
    EXPECT_EQ(t->name.find("weight_packed"), std::string::npos) << t->name;
  }
}

TEST_P(Golden, InspectJsonNamesTheFormat) {
  const fs::path dir = fs::path(test::data_path("golden")) / GetParam();
  const auto meta = read_json_file((dir / "meta.json").string());
  const fs::path model = dir / meta.value("model_dir", std::string("model"));
  const auto r = test::run_awq({"inspect", model.string(), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], meta["format"]);
  EXPECT_EQ(j["quantized_layers"], meta["quantized_layers"]);
  if (meta.contains("group_size")) EXPECT_EQ(j["group_size"], meta["group_size"]);
  if (meta.contains("bits")) EXPECT_EQ(j["bits"], meta["bits"]);
  if (meta.contains("zero_point")) EXPECT_EQ(j["zero_point"], meta["zero_point"]);
}

INSTANTIATE_TEST_SUITE_P(Peers, Golden, ::testing::ValuesIn(golden_cases()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Golden);

}  // namespace
}  // namespace awq
