// `awq dequantize` as a user runs it: output directory rules, sharding, copied files, errors.
#include <gtest/gtest.h>

#include <filesystem>

#include "awq/fsutil.h"
#include "awq/model_dir.h"
#include "awq/error.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;
const std::string kTiny = test::data_path("tiny-llama-awq");

size_t entries(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST(DequantizeCli, WritesPlainHfDirectoryWithTokenizer) {
  test::TempDir t;
  const auto r = test::run_awq({"dequantize", kTiny, "-o", t / "out", "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  ModelDir out(t / "out");
  EXPECT_FALSE(out.config().contains("quantization_config"));
  EXPECT_EQ(out.config()["torch_dtype"], "float16");
  EXPECT_TRUE(fs::exists(t / "out/tokenizer.json"));
  EXPECT_TRUE(fs::exists(t / "out/generation_config.json"));
  const TensorView& w = out.get("model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(w.dtype, DType::F16);
  EXPECT_EQ(w.shape.size(), 2u);
  EXPECT_EQ(out.shards().front()->metadata().at("format"), "pt");
  for (const TensorView* v : out.tensors()) EXPECT_EQ(v->name.find("qweight"), std::string::npos);
}

TEST(DequantizeCli, DtypeOptionAndF32) {
  test::TempDir t;
  ASSERT_EQ(test::run_awq({"dequantize", kTiny, "-o", t / "bf", "--dtype", "bf16", "-q"}).status, 0);
  ASSERT_EQ(test::run_awq({"dequantize", kTiny, "-o", t / "f32", "--dtype", "f32", "-q"}).status, 0);
  ModelDir bf(t / "bf"), f32(t / "f32");
  const TensorView& a = bf.get("model.layers.1.self_attn.q_proj.weight");
  const TensorView& b = f32.get("model.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(a.dtype, DType::BF16);
  EXPECT_EQ(b.dtype, DType::F32);
  EXPECT_EQ(bf.config()["torch_dtype"], "bfloat16");
  // bf16 output is the RNE of the exact f32 value.
  for (int64_t i = 0; i < a.numel(); ++i)
    ASSERT_EQ(load_float(a.data, DType::BF16, size_t(i)), bf16_to_f32(f32_to_bf16(load_float(b.data, DType::F32, size_t(i)))));
  const auto r = test::run_awq({"dequantize", kTiny, "-o", t / "x", "--dtype", "int4"});
  EXPECT_EQ(r.status, 2);  // a usage error
  EXPECT_NE(r.err.find("must be f16, bf16 or f32"), std::string::npos) << r.err;
}

TEST(DequantizeCli, ShardsWithIndexWhenAskedAndReadsBackTheSame) {
  test::TempDir t;
  ASSERT_EQ(test::run_awq({"dequantize", kTiny, "-o", t / "one", "-q"}).status, 0);
  ASSERT_EQ(test::run_awq({"dequantize", kTiny, "-o", t / "many", "--max-shard-size", "500KB", "-q"}).status, 0);
  ModelDir one(t / "one"), many(t / "many");
  EXPECT_FALSE(one.sharded());
  ASSERT_TRUE(many.sharded());
  EXPECT_GT(many.shards().size(), 2u);
  uint64_t total = 0;
  for (const TensorView* v : many.tensors()) total += v->nbytes;
  EXPECT_EQ(many.index()["metadata"]["total_size"].get<uint64_t>(), total);
  ASSERT_EQ(one.tensors().size(), many.tensors().size());
  for (const TensorView* v : one.tensors()) {
    const TensorView& w = many.get(v->name);
    ASSERT_EQ(v->nbytes, w.nbytes);
    EXPECT_EQ(std::memcmp(v->data, w.data, v->nbytes), 0) << v->name;
  }
  for (const auto& s : many.shards()) EXPECT_LE(s->file_size(), 500'000u + 4096u) << s->path();
}

TEST(DequantizeCli, RefusesNonEmptyOutputUnlessForced) {
  test::TempDir t;
  fs::create_directory(t / "out");
  test::write_bytes(t / "out/keep.txt", "precious");
  auto r = test::run_awq({"dequantize", kTiny, "-o", t / "out", "-q"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not empty"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(test::read_bytes(t / "out/keep.txt"), "precious");
  EXPECT_EQ(entries(t.path()), 1u);  // nothing beside it
  r = test::run_awq({"dequantize", kTiny, "-o", t / "out", "--force", "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(fs::exists(t / "out/keep.txt"));
  EXPECT_TRUE(fs::exists(t / "out/model.safetensors"));
  EXPECT_EQ(entries(t.path()), 1u);
}

TEST(DequantizeCli, FailedRunLeavesNoOutputAndNothingBeside) {
  test::TempDir t;
  test::copy_dir(kTiny, t / "m");
  test::edit_json(t / "m/config.json", [](nlohmann::json& j) { j["quantization_config"]["group_size"] = 64; });
  const auto r = test::run_awq({"dequantize", t / "m", "-o", t / "out", "-q"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("group size 128"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(t / "out"));
  EXPECT_EQ(entries(t.path()), 1u);
}

TEST(OutputDir, ReplacesOnlyOnCommitAndCleansUpOtherwise) {
  test::TempDir t;
  fs::create_directory(t / "out");
  test::write_bytes(t / "out/old", "1");
  {
    OutputDir o(t / "out", /*force=*/true, {});
    test::write_bytes(o.file("new"), "2");
    // destroyed without commit: a failure late in the work
  }
  EXPECT_EQ(test::read_bytes(t / "out/old"), "1");
  EXPECT_EQ(entries(t.path()), 1u);
  {
    OutputDir o(t / "out", true, {});
    test::write_bytes(o.file("new"), "2");
    o.commit();
  }
  EXPECT_FALSE(fs::exists(t / "out/old"));
  EXPECT_EQ(test::read_bytes(t / "out/new"), "2");
  EXPECT_EQ(entries(t.path()), 1u);
}

TEST(OutputDir, RemovesTemporariesLeftByAKilledRun) {
  test::TempDir t;
  fs::create_directory(t / ".out.awq-tmp-999999999");  // no such pid: a run killed with -9
  test::write_bytes(t / ".out.awq-tmp-999999999/partial", "x");
  OutputDir o(t / "out", false, {});
  o.commit();
  EXPECT_FALSE(fs::exists(t / ".out.awq-tmp-999999999"));
  EXPECT_EQ(entries(t.path()), 1u);
}

TEST(InspectCli, TextAndJsonAndErrors) {
  auto r = test::run_awq({"inspect", kTiny});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("autoawq-gemm"), std::string::npos);
  EXPECT_NE(r.out.find("embeddings stored          both"), std::string::npos) << r.out;  // untied model
  r = test::run_awq({"inspect", kTiny, "--json"});
  ASSERT_EQ(r.status, 0);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "autoawq-gemm");
  EXPECT_EQ(j["bits"], 4);
  EXPECT_EQ(j["group_size"], 128);
  EXPECT_EQ(j["zero_point"], true);
  EXPECT_EQ(j["quantized_layers"].size(), 14u);
  EXPECT_NEAR(j["effective_bits_per_weight"].get<double>(), 4.0 + 16.0 / 128 + 4.0 / 128, 1e-9);
  r = test::run_awq({"inspect", "/nonexistent/model"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent/model"), std::string::npos);
}

}  // namespace
}  // namespace awq
