// Hostile-input review of `awq quantize` and `awq eval`: option values refused up front as usage
// errors (exit 2) naming the reason, refusals (exit 1) that name the file and say what to do, the
// --html directory checked before the evaluation runs, and no dense model card in a quantize output.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

std::string bundled() { return test::data_path("../../models/kjv-llama"); }
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Each bad option value: exit 2, the reason on stderr, no output directory made.
TEST(QuantizeUsageCli, BadOptionValuesRefusedUpFront) {
  test::TempDir tmp;
  const std::string out = tmp / "q";
  const struct {
    std::vector<std::string> extra;
    std::string reason;
  } cases[] = {
      {{"--seqlen", "5000"}, "context of 1024"},  // the bundled model's max_position_embeddings
      {{"--samples", "0"}, "--samples 0"},
      {{"--samples", "-3"}, "--samples -3"},
      {{"--seqlen", "0"}, "--seqlen 0"},
      {{"--group-size", "0"}, "--group-size 0"},
      {{"--bits", "8"}, "--format dense"},
      {{"--format", "modelopt"}, "add --symmetric"},
      {{"--refine", "0"}, "--refine 0"},
      {{"--refine-attn", "0"}, "--refine-attn 0"},
      {{"--loss-tokens", "0"}, "--loss-tokens 0"},
      {{"--attn-loss-tokens", "-1"}, "--attn-loss-tokens -1"},
      {{"--attn-screen-tokens", "0"}, "--attn-screen-tokens 0"},
      {{"--proxy-rows", "0"}, "--proxy-rows 0"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"quantize", bundled(), "-o", out, "-q"};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    const auto r = test::run_awq(args);
    EXPECT_EQ(r.status, 2) << c.extra[0] << " " << c.extra[1] << ": " << r.err;
    EXPECT_TRUE(has(r.err, c.reason)) << c.reason << " in: " << r.err;
    EXPECT_TRUE(has(r.err, "usage error")) << r.err;
    EXPECT_FALSE(has(r.err, "too short")) << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.extra[0];
  }
}

// NaN in a tensor quantize keeps dense (the final norm): refused naming it, without suggesting
// --allow-nonfinite (an option quantize does not have).
TEST(QuantizeUsageCli, NonfiniteDenseTensorMessageFitsQuantize) {
  test::TempDir tmp;
  const std::string model = tmp / "m", out = tmp / "q";
  test::copy_dir(bundled(), model);
  test::rewrite_safetensors(model + "/model.safetensors", [](std::vector<test::EditTensor>& ts) {
    for (auto& t : ts)
      if (t.name == "model.norm.weight") {
        ASSERT_EQ(t.dtype, DType::BF16);
        t.bytes[0] = char(0xC0), t.bytes[1] = char(0x7F);  // bf16 quiet NaN, little-endian
      }
  });
  const auto r = test::run_awq({"quantize", model, "-o", out, "--method", "rtn", "-q"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "model.norm.weight")) << r.err;
  EXPECT_TRUE(has(r.err, "keeps dense")) << r.err;
  EXPECT_FALSE(has(r.err, "--allow-nonfinite")) << r.err;
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
}

// The dense model's README.md (its model card, with its perplexity) is not copied into the output.
TEST(QuantizeUsageCli, OutputHasNoDenseModelCard) {
  test::TempDir tmp;
  ASSERT_TRUE(fs::exists(bundled() + "/README.md"));
  const std::string out = tmp / "q";
  const auto r = test::run_awq({"quantize", bundled(), "-o", out, "--method", "rtn", "-q"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  EXPECT_FALSE(fs::exists(out + "/README.md"));
}

TEST(EvalUsageCli, CtxBeyondTheModelIsAUsageError) {
  const auto r = test::run_awq({"eval", bundled(), "--ctx", "5000"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_TRUE(has(r.err, "--ctx 5000") && has(r.err, "1024")) << r.err;
}

// --html into a missing or read-only directory: refused (exit 1) naming it, fast (before the
// evaluation, which on the whole eval.txt would take far longer than the refusal).
TEST(EvalUsageCli, HtmlDirectoryCheckedFirst) {
  test::TempDir tmp;
  auto r = test::run_awq({"eval", bundled(), "--html", tmp / "nodir/r.html"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "nodir") && has(r.err, "does not exist")) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  if (::geteuid() != 0) {  // root writes anywhere
    fs::create_directory(tmp / "ro");
    ::chmod((tmp / "ro").c_str(), 0555);
    r = test::run_awq({"eval", bundled(), "--html", tmp / "ro/r.html"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, "not writable") && has(r.err, "ro")) << r.err;
    ::chmod((tmp / "ro").c_str(), 0755);
  }
}

TEST(EvalUsageCli, EmptyOrBinaryTextNamesTheFile) {
  test::TempDir tmp;
  test::write_bytes(tmp / "empty.txt", "");
  auto r = test::run_awq({"eval", bundled(), "--text", tmp / "empty.txt"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "empty.txt")) << r.err;
  test::write_bytes(tmp / "blob.bin", std::string("\x7f" "ELF\x02\x01\x01\x00\xff\xfe\x80\x81\xc3\x28", 14));
  r = test::run_awq({"eval", bundled(), "--text", tmp / "blob.bin"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "blob.bin")) << r.err;
}

}  // namespace
}  // namespace awq
