// `awq repair`: each fixable defect is fixed (check is clean afterwards), every tensor keeps its
// bytes, and the input is never edited.
#include <gtest/gtest.h>

#include <filesystem>

#include "awq/check.h"
#include "awq/error.h"
#include "awq/formats.h"
#include "awq/quant_linear.h"
#include "awq/model_dir.h"
#include "awq/repair.h"
#include "check/checkpoint_util.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;
using test::EditTensor;

std::string all_findings(const CheckReport& r) {
  std::string s;
  for (const auto& f : r.findings) s += severity_name(f.severity) + " " + f.code + " " + f.tensor + ": " + f.message + "\n";
  return s;
}

std::string changes(const RepairResult& r) {
  std::string s;
  for (const auto& c : r.changes) s += c + "\n";
  return s;
}

// Every tensor of `want` is in `got` with identical bytes (rename maps want-name -> got-name).
void expect_same_tensors(const std::string& want_dir, const std::string& got_dir, const std::map<std::string, std::string>& rename = {},
                         const std::set<std::string>& dropped = {}) {
  ModelDir want(want_dir), got(got_dir);
  for (const TensorView* t : want.tensors()) {
    if (dropped.count(t->name)) {
      EXPECT_EQ(got.find(t->name), nullptr) << t->name;
      continue;
    }
    auto r = rename.find(t->name);
    const TensorView* g = got.find(r == rename.end() ? t->name : r->second);
    ASSERT_NE(g, nullptr) << t->name;
    EXPECT_EQ(g->dtype, t->dtype);
    EXPECT_EQ(g->shape, t->shape);
    ASSERT_EQ(g->nbytes, t->nbytes);
    EXPECT_EQ(std::memcmp(g->data, t->data, t->nbytes), 0) << t->name;
  }
  EXPECT_EQ(got.tensors().size(), want.tensors().size() - dropped.size());
}

struct Repaired {
  test::TempDir out;
  RepairResult result;
  std::string dir() const { return out / "fixed"; }
};

std::unique_ptr<Repaired> repair(const std::string& in) {
  auto r = std::make_unique<Repaired>();
  RepairOptions opt;
  opt.out_dir = r->dir();
  opt.progress = false;
  r->result = repair_model(in, opt);
  return r;
}

TEST(Repair, RestoresEmbeddingFromLoneLmHead) {
  test::Checkpoint m("awq-gemm-tied");
  m.edit_tensors([](std::vector<EditTensor>& ts) { test::tensor(ts, "model.embed_tokens.weight").name = "lm_head.weight"; });
  ASSERT_TRUE(check_model(m.dir()).has("tied-lm-head-only"));
  const std::string before = test::read_bytes(m.file("model.safetensors"));
  auto r = repair(m.dir());
  EXPECT_NE(changes(r->result).find("restored model.embed_tokens.weight"), std::string::npos) << changes(r->result);
  const auto c = check_model(r->dir());
  EXPECT_EQ(c.count(Severity::kError), 0u) << all_findings(c);
  expect_same_tensors(test::data_path("golden/awq-gemm-tied/model"), r->dir());
  EXPECT_EQ(test::read_bytes(m.file("model.safetensors")), before);  // input untouched
}

TEST(Repair, DropsTiedDuplicate) {
  test::Checkpoint m("awq-gemm-tied");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    EditTensor h = test::tensor(ts, "model.embed_tokens.weight");
    h.name = "lm_head.weight";
    ts.push_back(h);
  });
  auto r = repair(m.dir());
  EXPECT_NE(changes(r->result).find("dropped lm_head.weight"), std::string::npos) << changes(r->result);
  EXPECT_FALSE(check_model(r->dir()).has("tied-duplicate"));
  expect_same_tensors(m.dir(), r->dir(), {}, {"lm_head.weight"});
}

TEST(Repair, AddsFormatMetadata) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>&) {}, {});
  auto r = repair(m.dir());
  EXPECT_NE(changes(r->result).find("format \"pt\""), std::string::npos) << changes(r->result);
  SafetensorsFile f(r->dir() + "/model.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(check_model(r->dir()).count(Severity::kError), 0u);
  expect_same_tensors(m.dir(), r->dir());
}

TEST(Repair, MovesLegacyQuantConfigAndNormalisesKeys) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c.erase("quantization_config"); });
  test::write_bytes(m.file("quant_config.json"), R"({"zero_point": true, "q_group_size": 32, "w_bit": 4, "version": "GEMM"})");
  auto r = repair(m.dir());
  EXPECT_FALSE(fs::exists(r->dir() + "/quant_config.json"));
  const auto cfg = read_json_file(r->dir() + "/config.json");
  const auto want = read_json_file(test::data_path("golden/awq-gemm-g32/model/config.json"))["quantization_config"];
  EXPECT_EQ(cfg["quantization_config"], want) << cfg["quantization_config"].dump();
  const auto c = check_model(r->dir());
  EXPECT_EQ(c.count(Severity::kError) + c.count(Severity::kWarning), 0u) << all_findings(c);
}

TEST(Repair, WritesMissingConfigFromTensors) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c.erase("quantization_config"); });
  auto r = repair(m.dir());
  const auto cfg = read_json_file(r->dir() + "/config.json");
  const auto want = read_json_file(test::data_path("golden/awq-gemm-g32/model/config.json"));
  EXPECT_EQ(cfg, want);  // exactly what AutoAWQ wrote
}

TEST(Repair, ReplacesContradictingVersion) {
  test::Checkpoint m("awq-gemm-g64");
  m.edit_config([](nlohmann::json& c) { c["quantization_config"]["version"] = "gemv"; });
  auto r = repair(m.dir());
  EXPECT_EQ(read_json_file(r->dir() + "/config.json")["quantization_config"]["version"], "gemm") << changes(r->result);
  EXPECT_EQ(check_model(r->dir()).count(Severity::kError), 0u);
}

TEST(Repair, LiftsNestedConfigAndRenamesLegacyKeys) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) {
    auto q = c["quantization_config"];
    q["w_bit"] = q["bits"];
    q["q_group_size"] = q["group_size"];
    q.erase("bits");
    q.erase("group_size");
    c["text_config"] = {{"quantization_config", q}};
    c.erase("quantization_config");
  });
  const auto before = check_model(m.dir());
  ASSERT_TRUE(before.has("quant-config-nested"));
  auto r = repair(m.dir());
  const auto cfg = read_json_file(r->dir() + "/config.json");
  const auto want = read_json_file(test::data_path("golden/awq-gemm-g32/model/config.json"))["quantization_config"];
  EXPECT_EQ(cfg["quantization_config"], want) << changes(r->result);
  EXPECT_FALSE(cfg["text_config"].contains("quantization_config"));
  const auto c = check_model(r->dir());
  EXPECT_EQ(c.count(Severity::kError) + c.count(Severity::kWarning), 0u) << all_findings(c);
}

TEST(Repair, CheckFindingsItFixesAreGone) {
  // Several defects at once: lone lm_head (tied), no format metadata, legacy config, broken index.
  test::Checkpoint m("awq-gemm-tied");
  m.edit_tensors([](std::vector<EditTensor>& ts) { test::tensor(ts, "model.embed_tokens.weight").name = "lm_head.weight"; }, {});
  nlohmann::json qc;
  m.edit_config([&](nlohmann::json& c) { qc = c["quantization_config"]; c.erase("quantization_config"); });
  test::write_bytes(m.file("quantize_config.json"), qc.dump());
  const auto before = check_model(m.dir());
  for (const char* code : {"tied-lm-head-only", "safetensors-format-metadata", "quant-config-legacy"}) EXPECT_TRUE(before.has(code)) << code;
  auto r = repair(m.dir());
  EXPECT_GE(r->result.changes.size(), 3u) << changes(r->result);
  const auto after = check_model(r->dir());
  EXPECT_EQ(after.count(Severity::kError) + after.count(Severity::kWarning), 0u) << all_findings(after);
  expect_same_tensors(test::data_path("golden/awq-gemm-tied/model"), r->dir());
}

TEST(Repair, RewritesTheIndex) {
  test::Checkpoint m("awq-gemm-g32");
  m.shard(3);
  test::edit_json(m.file("model.safetensors.index.json"), [](nlohmann::json& j) {
    j["weight_map"].erase("model.norm.weight");
    j["metadata"]["total_size"] = 1;
  });
  ASSERT_TRUE(check_model(m.dir()).has("index-tensor-unlisted"));
  auto r = repair(m.dir());
  EXPECT_NE(changes(r->result).find("rewrote model.safetensors.index.json"), std::string::npos) << changes(r->result);
  const auto c = check_model(r->dir());
  EXPECT_EQ(c.count(Severity::kError), 0u) << all_findings(c);
  expect_same_tensors(test::data_path("golden/awq-gemm-g32/model"), r->dir());
}

TEST(Repair, CleanCheckpointIsCopiedUnchanged) {
  auto r = repair(test::data_path("tiny-llama-awq"));
  EXPECT_TRUE(r->result.changes.empty()) << changes(r->result);
  expect_same_tensors(test::data_path("tiny-llama-awq"), r->dir());
  EXPECT_TRUE(fs::exists(r->dir() + "/tokenizer.json"));
  EXPECT_EQ(read_json_file(r->dir() + "/config.json"), read_json_file(test::data_path("tiny-llama-awq/config.json")));
}

// Every file of `in` is in `out` with the same bytes, and nothing else is.
void expect_byte_identical_dirs(const std::string& in, const std::string& out) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(in)) {
    const std::string name = e.path().filename().string();
    ASSERT_TRUE(fs::exists(fs::path(out) / name)) << name;
    EXPECT_EQ(test::read_bytes(e.path().string()), test::read_bytes((fs::path(out) / name).string())) << name;
    ++n;
  }
  EXPECT_EQ(size_t(std::distance(fs::directory_iterator(out), fs::directory_iterator())), n);
}

TEST(Repair, NoChangeReportedMeansByteIdenticalOutput) {
  // Clean checkpoints of several peers (AutoAWQ, AutoGPTQ with its quantize_config.json beside
  // config.json, compressed-tensors, sharded): no change claimed, and none made.
  for (const char* g : {"tiny-llama-awq", "gptq-v2-asym-g64", "ct-asym-g128", "modelopt-w4a16-g128"}) {
    const std::string in = fs::exists(test::data_path(std::string("golden/") + g + "/model")) ? test::data_path(std::string("golden/") + g + "/model")
                                                                                             : test::data_path(g);
    auto r = repair(in);
    EXPECT_TRUE(r->result.changes.empty()) << g << ": " << changes(r->result);
    expect_byte_identical_dirs(in, r->dir());
  }
  test::Checkpoint sharded("awq-gemm-g32");
  sharded.shard(2);
  auto r = repair(sharded.dir());
  EXPECT_TRUE(r->result.changes.empty()) << changes(r->result);
  expect_byte_identical_dirs(sharded.dir(), r->dir());
}

TEST(Repair, ConfigLeftAsItWasIsARemarkNotAChange) {
  // A dense checkpoint (no quantized module, no quantization config): nothing repair can write.
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    std::erase_if(ts, [](const EditTensor& t) { return t.name.ends_with(".qweight") || t.name.ends_with(".qzeros") || t.name.ends_with(".scales"); });
  });
  m.edit_config([](nlohmann::json& c) { c.erase("quantization_config"); });
  auto r = repair(m.dir());
  EXPECT_TRUE(r->result.changes.empty()) << changes(r->result);
  ASSERT_FALSE(r->result.remarks.empty());
  EXPECT_NE(r->result.remarks[0].find("left quantization_config as it was"), std::string::npos) << r->result.remarks[0];
  expect_byte_identical_dirs(m.dir(), r->dir());
  test::TempDir out;
  auto cli = test::run_awq({"repair", m.dir(), "-o", out / "o", "-q"});
  EXPECT_EQ(cli.status, 0) << cli.err;
  EXPECT_NE(cli.out.find("no changes needed"), std::string::npos) << cli.out;
  EXPECT_EQ(cli.out.find("repaired:"), std::string::npos) << cli.out;
  EXPECT_EQ(cli.out.find("change"), cli.out.find("changes needed")) << cli.out;  // no "(1 change)"
}

TEST(Repair, EightBitTensorsUnderBits4GetTheirBitWidth) {
  test::Checkpoint m("gptq-v2-asym-g64");
  m.edit_tensors(test::gptq_repack_8bit);
  ASSERT_TRUE(check_model(m.dir()).has("quant-config-mismatch"));
  auto r = repair(m.dir());
  ASSERT_EQ(r->result.changes.size(), 1u) << changes(r->result);
  EXPECT_NE(r->result.changes[0].find("bits 4 -> 8"), std::string::npos) << changes(r->result);
  const auto qc = read_json_file(r->dir() + "/config.json")["quantization_config"];
  EXPECT_EQ(qc["bits"], 8);
  EXPECT_EQ(qc["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(qc["damp_percent"], 0.01);  // the other keys are kept
  const auto after = check_model(r->dir());
  EXPECT_EQ(after.count(Severity::kError), 0u) << all_findings(after);
  expect_same_tensors(m.dir(), r->dir());
  // The repaired checkpoint reads as the golden (v2 zero points kept: no value shifted).
  ModelDir md(r->dir()), gold(test::data_path("golden/gptq-v2-asym-g64/model"));
  auto got = open_format(md), want = open_format(gold);
  for (const auto& mod : want->modules()) {
    const QuantLinear a = got->read(mod), b = want->read(mod);
    EXPECT_EQ(a.codes, b.codes) << mod;
    EXPECT_EQ(a.zeros, b.zeros) << mod;
    EXPECT_EQ(a.scales, b.scales) << mod;
  }
}

TEST(Repair, EightBitCompressedTensorsUnderNumBits4GetTheirBitWidth) {
  test::Checkpoint m("ct-sym-g128");
  m.edit_tensors(test::ct_repack_8bit);
  const auto before = check_model(m.dir());
  const Finding* f = nullptr;
  for (const auto& x : before.findings)
    if (x.code == "quant-config-mismatch") f = &x;
  ASSERT_NE(f, nullptr) << all_findings(before);
  EXPECT_NE(f->message.find("the tensors hold 8-bit codes but the quantization config says bits 4"), std::string::npos) << f->message;
  auto r = repair(m.dir());
  ASSERT_EQ(r->result.changes.size(), 1u) << changes(r->result);
  EXPECT_NE(r->result.changes[0].find("set num_bits 8"), std::string::npos) << changes(r->result);
  EXPECT_EQ(check_model(r->dir()).count(Severity::kError), 0u) << all_findings(check_model(r->dir()));
  ModelDir md(r->dir()), gold(test::data_path("golden/ct-sym-g128/model"));
  auto got = open_format(md), want = open_format(gold);
  EXPECT_EQ(got->scheme().bits, 8);
  for (const auto& mod : want->modules()) {
    const QuantLinear a = got->read(mod), b = want->read(mod);
    ASSERT_EQ(a.codes.size(), b.codes.size()) << mod;
    for (size_t i = 0; i < a.codes.size(); ++i) ASSERT_EQ(int(a.codes[i]) - 128, int(b.codes[i]) - 8) << mod << " " << i;
    EXPECT_EQ(a.scales, b.scales) << mod;
  }
}

TEST(Repair, KeepsATiedHeadThatDiffers) {
  test::Checkpoint m("awq-gemm-tied");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    EditTensor h = test::tensor(ts, "model.embed_tokens.weight");
    h.name = "lm_head.weight";
    test::set_f16(h, 0, 0.5f);
    ts.push_back(h);
  });
  auto r = repair(m.dir());
  EXPECT_TRUE(r->result.changes.empty()) << changes(r->result);
  expect_same_tensors(m.dir(), r->dir());
}

TEST(Repair, MissingShardIsRefusedAndLeavesNothing) {
  test::Checkpoint m("awq-gemm-g32");
  m.shard(2);
  fs::remove(m.file("model-00002-of-00002.safetensors"));
  test::TempDir out;
  RepairOptions opt;
  opt.out_dir = out / "fixed";
  opt.progress = false;
  EXPECT_THROW(repair_model(m.dir(), opt), Error);
  EXPECT_FALSE(fs::exists(out / "fixed"));
  EXPECT_TRUE(fs::is_empty(out.path()));
}

TEST(RepairCli, RefusesNonEmptyOutputWithoutForce) {
  test::TempDir out;
  fs::create_directories(out / "o");
  test::write_bytes(out / "o/keep.txt", "x");
  auto r = test::run_awq({"repair", test::data_path("tiny-llama-awq"), "-o", out / "o", "-q"});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(fs::exists(out / "o/keep.txt"));
  r = test::run_awq({"repair", test::data_path("tiny-llama-awq"), "-o", out / "o", "-q", "--force"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("no changes needed"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out / "o/keep.txt"));
}

}  // namespace
}  // namespace awq
