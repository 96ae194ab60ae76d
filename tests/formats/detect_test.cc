// Detection and refusal: config and tensors together; errors that name the tensor and expectation.
#include <gtest/gtest.h>

#include <filesystem>

#include "awq/error.h"
#include "awq/formats.h"
#include "test_util.h"

namespace awq {
namespace {

// Copies a golden model into a temp dir for editing.
struct Copy {
  test::TempDir tmp;
  std::string dir;
  explicit Copy(const std::string& golden_case) : dir(tmp / "model") {
    test::copy_dir(test::data_path("golden/" + golden_case + "/model"), dir);
  }
  std::string st() const { return dir + "/model.safetensors"; }
  std::string cfg() const { return dir + "/config.json"; }
};

std::string open_error(const std::string& dir) {
  try {
    ModelDir md(dir);
    auto r = open_format(md);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(Detect, InfersEveryAwqLayoutWithoutAnyConfig) {
  for (const auto& [c, fmt, g] : std::vector<std::tuple<std::string, std::string, int64_t>>{
           {"awq-gemm-g64", "autoawq-gemm", 64}, {"awq-gemm-g128", "autoawq-gemm", 128},
           {"awq-gemv-g64", "autoawq-gemv", 64}, {"awq-gemv-g128", "autoawq-gemv", 128},
           {"awq-gemv-fast-g64", "autoawq-gemv-fast", 64}, {"awq-gemv-fast-g128", "autoawq-gemv-fast", 128}}) {
    Copy m(c);
    test::edit_json(m.cfg(), [](nlohmann::json& j) { j.erase("quantization_config"); });
    ModelDir md(m.dir);
    auto r = open_format(md);
    EXPECT_EQ(r->scheme().format, fmt) << c;
    EXPECT_EQ(r->scheme().group_size, g) << c;
  }
}

TEST(Detect, RefusesConfigGroupSizeThatContradictsTensors) {
  Copy m("awq-gemm-g64");
  test::edit_json(m.cfg(), [](nlohmann::json& j) { j["quantization_config"]["group_size"] = 128; });
  const std::string e = open_error(m.dir);
  EXPECT_NE(e.find("scales"), std::string::npos) << e;
  EXPECT_NE(e.find("group size 64"), std::string::npos) << e;
}

TEST(Detect, RefusesBitsOtherThanFour) {
  Copy m("awq-gemm-g128");
  test::edit_json(m.cfg(), [](nlohmann::json& j) { j["quantization_config"]["bits"] = 8; });
  EXPECT_NE(open_error(m.dir).find("bits = 8"), std::string::npos) << open_error(m.dir);
}

TEST(Detect, RefusesVersionThatContradictsTensors) {
  Copy m("awq-gemm-g128");
  test::edit_json(m.cfg(), [](nlohmann::json& j) { j["quantization_config"]["version"] = "gemv"; });
  const std::string e = open_error(m.dir);
  EXPECT_NE(e.find("says autoawq-gemv"), std::string::npos) << e;
  EXPECT_NE(e.find("laid out as autoawq-gemm"), std::string::npos) << e;
}

TEST(Detect, MissingTensorIsNamed) {
  Copy m("awq-gemm-g128");
  test::rewrite_safetensors(m.st(), [](std::vector<test::EditTensor>& ts) {
    std::erase_if(ts, [](const auto& t) { return t.name == "model.layers.0.mlp.up_proj.qzeros"; });
  });
  const std::string e = open_error(m.dir);
  EXPECT_NE(e.find("model.layers.0.mlp.up_proj.qzeros"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
}

TEST(Detect, WrongDtypeIsNamedWithExpectation) {
  Copy m("awq-gemm-g128");
  test::rewrite_safetensors(m.st(), [](std::vector<test::EditTensor>& ts) {
    for (auto& t : ts)
      if (t.name == "model.layers.0.self_attn.q_proj.qzeros") t.dtype = DType::F32;
  });
  const std::string e = open_error(m.dir);
  EXPECT_NE(e.find("model.layers.0.self_attn.q_proj.qzeros"), std::string::npos) << e;
  EXPECT_NE(e.find("expected I32"), std::string::npos) << e;
}

TEST(Detect, UnknownLayoutListsWhatWasTriedAndTheNearest) {
  Copy m("awq-gemm-g128");
  test::edit_json(m.cfg(), [](nlohmann::json& j) { j.erase("quantization_config"); });
  test::rewrite_safetensors(m.st(), [](std::vector<test::EditTensor>& ts) {
    for (auto& t : ts)
      if (t.name.find(".scales") != std::string::npos) t.shape = {t.shape[1], t.shape[0]};  // transposed scales
  });
  const std::string e = open_error(m.dir);
  EXPECT_NE(e.find("no known 4-bit layout fits"), std::string::npos) << e;
  EXPECT_NE(e.find("Tried: autoawq-gemm"), std::string::npos) << e;
  EXPECT_NE(e.find("Nearest: autoawq-gemm"), std::string::npos) << e;
  EXPECT_NE(e.find(".scales"), std::string::npos) << e;
}

TEST(Detect, MarlinAndPicklesAreNamedNotRead) {
  Copy m("awq-gemm-g128");
  test::edit_json(m.cfg(), [](nlohmann::json& j) { j["quantization_config"]["version"] = "marlin"; });
  EXPECT_NE(open_error(m.dir).find("Marlin"), std::string::npos);
  test::TempDir t;
  test::write_bytes(t / "llama-7b-w4-g128-awq-v2.pt", "PK\x03\x04");
  EXPECT_NE(open_error(t.path().string()).find("llm-awq"), std::string::npos) << open_error(t.path().string());
}

TEST(Detect, ShardIndexMayNotLeaveTheModelDirectory) {
  test::TempDir t;
  test::copy_dir(test::data_path("golden/awq-gemm-g128/model"), t / "m");
  std::filesystem::rename(t / "m/model.safetensors", t / "outside.safetensors");
  nlohmann::json idx;
  idx["metadata"] = {{"total_size", 1}};
  {
    SafetensorsFile f(t / "outside.safetensors");
    for (const auto& v : f.tensors()) idx["weight_map"][v.name] = "../outside.safetensors";
  }
  test::write_bytes(t / "m/model.safetensors.index.json", idx.dump());
  std::string e = open_error(t / "m");
  EXPECT_NE(e.find("outside the model directory"), std::string::npos) << e;
  for (auto& [k, v] : idx["weight_map"].items()) v = (t / "outside.safetensors");
  test::write_bytes(t / "m/model.safetensors.index.json", idx.dump());
  e = open_error(t / "m");
  EXPECT_NE(e.find("outside the model directory"), std::string::npos) << e;
}

TEST(Detect, MissingShardIsNamed) {
  test::TempDir t;
  test::copy_dir(test::data_path("golden/awq-gemm-g128/model"), t / "m");
  nlohmann::json idx;
  {
    SafetensorsFile f(t / "m/model.safetensors");
    for (const auto& v : f.tensors()) idx["weight_map"][v.name] = "model.safetensors";
  }
  idx["weight_map"]["lm_head.weight"] = "model-00002-of-00002.safetensors";
  test::write_bytes(t / "m/model.safetensors.index.json", idx.dump());
  const std::string e = open_error(t / "m");
  EXPECT_NE(e.find("missing shard file(s): model-00002-of-00002.safetensors"), std::string::npos) << e;
}

// Error kinds are types: callers catch them by type, never by message text.
namespace kinds {

template <class E>
void expect_open_throws(const std::string& dir) {
  ModelDir md(dir);
  EXPECT_THROW(open_format(md), E) << dir;
}

TEST(DetectErrorKinds, ConfigContradictingTensorsIsFormatConflict) {
  Copy m("awq-gemm-g128");
  test::edit_json(m.cfg(), [](nlohmann::json& j) { j["quantization_config"]["version"] = "gemv"; });
  expect_open_throws<FormatConflict>(m.dir);
}

TEST(DetectErrorKinds, MarlinIsUnsupported) {
  Copy m("awq-gemm-g128");
  test::edit_json(m.cfg(), [](nlohmann::json& j) { j["quantization_config"]["version"] = "marlin"; });
  expect_open_throws<Unsupported>(m.dir);
}

// The claimed layout's own error keeps its type when no other layout fits either.
TEST(DetectErrorKinds, ClaimedLayoutErrorIsRethrownAsRaised) {
  Copy m("awq-gemm-g128");
  test::edit_json(m.cfg(), [](nlohmann::json& j) { j["quantization_config"]["bits"] = 8; });
  ModelDir md(m.dir);
  try {
    open_format(md);
    FAIL() << "opened 8-bit AWQ";
  } catch (const FormatConflict& e) {
    FAIL() << "not a conflict: " << e.what();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bits = 8"), std::string::npos) << e.what();
  }
}

// FormatReader::act_order answers from the stored g_idx what QuantLinear::act_order says of the
// module read in full, on every golden checkpoint; the act-order one says yes.
TEST(DetectErrorKinds, ReaderActOrderAgreesWithQuantLinear) {
  std::error_code ec;
  int act = 0, modules = 0;
  for (const auto& e : std::filesystem::directory_iterator(test::data_path("golden"), ec)) {
    if (!std::filesystem::exists(e.path() / "model" / "config.json")) continue;
    ModelDir md((e.path() / "model").string());
    auto r = open_format(md);
    for (const auto& m : r->modules()) {
      const bool want = r->read(m).act_order();
      EXPECT_EQ(r->act_order(m), want) << e.path() << " " << m;
      act += want;
      ++modules;
    }
  }
  EXPECT_GT(modules, 20);
  EXPECT_GT(act, 0) << "no golden checkpoint with act-order (gptq-actorder-g64)";
}

}  // namespace kinds

}  // namespace
}  // namespace awq
