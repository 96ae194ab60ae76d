// awq compare: exact figures on small matrices, then real AutoAWQ checkpoints against their own
// dequantization (identical: zero error) and with one module's scales tripled (ranked worst; the
// cosine cannot see it, the relative MSE can).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "awq/compare.h"
#include "awq/compare_report.h"
#include "awq/dequantize_model.h"
#include "awq/error.h"
#include "awq/formats.h"
#include "awq/safetensors.h"
#include "check/checkpoint_util.h"
#include "eval/eval_test_util.h"
#include "test_util.h"

namespace awq {
namespace {

TEST(LayerError, ExactFiguresOnSmallIntegers) {
  // ref = [[1,2,3,4],[0,0,0,0]], quant differs by +1 at (0,3): |dW|^2 = 1, |W|^2 = 30.
  const std::vector<float> ref = {1, 2, 3, 4, 0, 0, 0, 0};
  const std::vector<float> q = {1, 2, 3, 5, 0, 0, 0, 0};
  const LayerError e = layer_error(ref.data(), q.data(), 2, 4, 2);
  EXPECT_DOUBLE_EQ(e.rel_mse, 1.0 / 30.0);
  EXPECT_NEAR(e.cosine, 34.0 / std::sqrt(30.0 * 39.0), 1e-15);
  EXPECT_DOUBLE_EQ(e.sqnr_db, 10 * std::log10(30.0));
  EXPECT_DOUBLE_EQ(e.max_abs, 1.0);
  EXPECT_EQ(e.worst_row, 0);
  EXPECT_EQ(e.worst_group, 1);                        // columns 2..3
  EXPECT_DOUBLE_EQ(e.worst_group_rel_mse, 1.0 / 25.0);  // 1 / (9 + 16)
}

TEST(LayerError, ConstantFactorIsInvisibleToCosineNotToMse) {
  const std::vector<float> ref = {1, -2, 3, 4};
  const std::vector<float> q = {3, -6, 9, 12};
  const LayerError e = layer_error(ref.data(), q.data(), 1, 4, 4);
  EXPECT_NEAR(e.cosine, 1.0, 1e-15);
  EXPECT_DOUBLE_EQ(e.rel_mse, 4.0);
}

TEST(LayerError, NaNIsReportedNotHidden) {
  const std::vector<float> ref = {1, 2};
  const std::vector<float> q = {1, std::nanf("")};
  const LayerError e = layer_error(ref.data(), q.data(), 1, 2, 2);
  EXPECT_TRUE(std::isnan(e.rel_mse));
  EXPECT_TRUE(std::isnan(e.cosine));
}

TEST(LayerError, ActOrderGroupsFollowGIdx) {
  const std::vector<float> ref = {1, 1, 1, 1};
  const std::vector<float> q = {1, 3, 1, 1};
  const LayerError e = layer_error(ref.data(), q.data(), 1, 4, 2, {1, 0, 1, 0});
  EXPECT_EQ(e.worst_group, 0);  // column 1 is in group 0 by g_idx
  EXPECT_DOUBLE_EQ(e.worst_group_rel_mse, 2.0);
}

TEST(Compare, OwnDequantizationIsExact) {
  test::TempDir tmp;
  const std::string model = test::data_path("tiny-llama-awq");
  const CompareResult r = compare_weights(test::dense_reference(model, tmp / "ref"), model);
  ASSERT_FALSE(r.layers.empty());
  EXPECT_EQ(r.quant_format, "autoawq-gemm");
  for (const auto& l : r.layers) {
    EXPECT_EQ(l.rel_mse, 0.0) << l.name;
    EXPECT_EQ(l.max_abs, 0.0) << l.name;
    EXPECT_FALSE(l.below_bar) << l.name;
  }
  EXPECT_TRUE(r.missing_in_ref.empty());
  EXPECT_TRUE(r.mismatched.empty());
}

TEST(Compare, TripledScalesRankWorstByMseWithCosineOne) {
  test::TempDir tmp;
  const std::string model = test::data_path("tiny-llama-awq");
  const std::string ref = test::dense_reference(model, tmp / "ref");
  test::Checkpoint ck("tiny-llama-awq");
  const std::string target = "model.layers.1.mlp.down_proj";
  ck.edit_tensors([&](std::vector<test::EditTensor>& ts) {
    for (auto& t : ts)
      if (t.name == target + ".scales")
        for (size_t i = 0; i + 1 < t.bytes.size(); i += 2) {
          uint16_t h;
          std::memcpy(&h, &t.bytes[i], 2);
          h = f32_to_f16(3 * f16_to_f32(h));
          std::memcpy(&t.bytes[i], &h, 2);
        }
  });
  const CompareResult r = compare_weights(ref, ck.dir());
  ASSERT_FALSE(r.layers.empty());
  EXPECT_EQ(r.layers[0].name, target);
  EXPECT_NEAR(r.layers[0].rel_mse, 4.0, 0.01);  // w' = 3w up to f16 rounding of the scales
  EXPECT_GT(r.layers[0].cosine, 0.9999);
  EXPECT_TRUE(r.layers[0].below_bar);  // flagged by its size: the cosine alone cannot see it
  EXPECT_FALSE(r.layers[1].below_bar);
  EXPECT_EQ(r.layers[1].rel_mse, 0.0);
  const auto j = compare_json(r);
  EXPECT_EQ(j["layers"][0]["name"], target);
  for (const char* key : {"name", "cosine", "rel_mse", "sqnr_db", "max_abs"})
    EXPECT_TRUE(j["layers"][0].contains(key)) << key;
  EXPECT_NE(render_compare_text(r).find(target), std::string::npos);
}

TEST(Compare, NamesShapeMismatchAndMissing) {
  test::TempDir tmp;
  const std::string model = test::data_path("tiny-llama-awq");
  const std::string ref = test::dense_reference(model, tmp / "ref");
  test::rewrite_safetensors(ref + "/model.safetensors", [](std::vector<test::EditTensor>& ts) {
    for (auto it = ts.begin(); it != ts.end();)
      if (it->name == "model.layers.0.self_attn.q_proj.weight") it = ts.erase(it);
      else ++it;
    for (auto& t : ts)
      if (t.name == "model.layers.0.self_attn.k_proj.weight") {
        t.shape = {1, t.shape[0] * t.shape[1]};
      }
  });
  const CompareResult r = compare_weights(ref, model);
  ASSERT_EQ(r.missing_in_ref.size(), 1u);
  EXPECT_EQ(r.missing_in_ref[0], "model.layers.0.self_attn.q_proj");
  ASSERT_EQ(r.mismatched.size(), 1u);
  EXPECT_NE(r.mismatched[0].find("model.layers.0.self_attn.k_proj: REF [1, "), std::string::npos) << r.mismatched[0];
}

TEST(Compare, QuantizedRefIsRefused) {
  const std::string model = test::data_path("tiny-llama-awq");
  EXPECT_THROW(compare_weights(model, model), Error);
}

TEST(CompareCli, JsonAndHtml) {
  test::TempDir tmp;
  const std::string model = test::data_path("tiny-llama-awq");
  const std::string ref = test::dense_reference(model, tmp / "ref");
  const auto res = test::run_awq({"compare", ref, model, "--json", "--html", tmp / "r.html"});
  ASSERT_EQ(res.status, 0) << res.err;
  const auto j = nlohmann::json::parse(res.out);
  EXPECT_FALSE(j["layers"].empty());
  const std::string page = test::read_bytes(tmp / "r.html");
  EXPECT_NE(page.find("<svg class=\"chart\" id=\"weight-error\""), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  // Self-contained: the only URL is the SVG namespace name (not fetched).
  size_t urls = 0;
  for (size_t p = page.find("http"); p != std::string::npos; p = page.find("http", p + 1)) {
    EXPECT_EQ(page.compare(p, 26, "http://www.w3.org/2000/svg"), 0);
    ++urls;
  }
  EXPECT_GT(urls, 0u);
  const auto bad = test::run_awq({"compare", tmp / "nope", model});
  EXPECT_EQ(bad.status, 1);
}

// Streamed means bounded: REF (8 dense f32 modules of 4 MiB) against QUANT (the same 8 modules as
// AutoAWQ GEMM) must not keep the pages of every module it measured mapped in RSS (the 7B shape
// peaked at 16.5 GB that way): the file-backed RSS during the run stays within about one module
// of where it started, far below the 36 MiB the two files hold.
TEST(Compare, FileBackedRssStaysBoundedWhileStreaming) {
  test::TempDir tmp;
  const int64_t n = 1024, k = 1024, g = 128, modules = 8;
  const std::string ref = tmp / "ref", quant = tmp / "quant";
  std::filesystem::create_directories(ref);
  std::filesystem::create_directories(quant);
  test::write_bytes(quant + "/config.json",
                    R"({"quantization_config": {"bits": 4, "group_size": 128, "quant_method": "awq", "version": "gemm", "zero_point": true}})");
  std::vector<TensorSpec> rs, qs;
  for (int64_t i = 0; i < modules; ++i) {
    const std::string m = "model.layers." + std::to_string(i) + ".mlp.down_proj";
    rs.push_back({m + ".weight", DType::F32, {n, k}});
    qs.push_back({m + ".qweight", DType::I32, {k, n / 8}});
    qs.push_back({m + ".qzeros", DType::I32, {k / g, n / 8}});
    qs.push_back({m + ".scales", DType::F16, {k / g, n}});
  }
  SafetensorsWriter rw(ref + "/model.safetensors", rs), qw(quant + "/model.safetensors", qs);
  std::vector<float> w(size_t(n * k));
  for (size_t j = 0; j < w.size(); ++j) w[j] = float(int(j % 15) - 8) * 0.01f;
  std::vector<uint32_t> words(size_t(k * n / 8), 0x76543210u), zeros(size_t(k / g * n / 8), 0x88888888u);
  std::vector<uint16_t> scales(size_t(k / g * n), f32_to_f16(0.01f));
  for (int64_t i = 0; i < modules; ++i) {
    rw.append(w.data(), w.size() * 4);
    qw.append(words.data(), words.size() * 4);
    qw.append(zeros.data(), zeros.size() * 4);
    qw.append(scales.data(), scales.size() * 2);
  }
  rw.commit();
  qw.commit();

  const size_t before = test::rss_file_bytes();
  size_t peak = before, calls = 0;
  CompareOptions opt;
  opt.threads = 1;
  opt.on_progress = [&](size_t, size_t) {
    peak = std::max(peak, test::rss_file_bytes());
    ++calls;
  };
  const CompareResult r = compare_weights(ref, quant, opt);
  EXPECT_EQ(r.layers.size(), size_t(modules));
  EXPECT_EQ(calls, size_t(modules));
  EXPECT_LT(peak - before, size_t(12) << 20) << "file-backed RSS grew from " << before << " to " << peak;
}

// A GGUF file given as REF or QUANT is named as such, with the command that does measure it (it
// was called "not a .safetensors or .npz file").
TEST(Compare, GgufIsNamedAsUnsupported) {
  const std::string dense = test::data_path("models/llama2"), gguf = test::data_path("gguf/q4_0.gguf");
  for (const auto& [ref, quant] : {std::pair<std::string, std::string>{dense, gguf}, {gguf, dense}}) {
    try {
      compare_weights(ref, quant);
      ADD_FAILURE() << "a GGUF was accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("q4_0.gguf"), std::string::npos) << m;
      EXPECT_NE(m.find("is a GGUF file"), std::string::npos) << m;
      EXPECT_NE(m.find("awq eval"), std::string::npos) << m;
    }
  }
}

}  // namespace
}  // namespace awq
