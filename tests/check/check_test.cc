// `awq check`: each finding fires on a checkpoint seeded with its defect (a golden, peer-made
// model copied and edited) and every clean golden checkpoint yields no errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <memory>
#include <set>

#include "awq/check.h"
#include "awq/dtype.h"
#include "awq/formats.h"
#include "awq/model_config.h"
#include "awq/model_dir.h"
#include "check/checkpoint_util.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;
using test::EditTensor;

std::string codes(const CheckReport& r) {
  std::string s;
  for (const auto& f : r.findings) s += severity_name(f.severity) + " " + f.code + " " + f.tensor + ": " + f.message + "\n";
  return s;
}

const Finding* find(const CheckReport& r, const std::string& code) {
  for (const auto& f : r.findings)
    if (f.code == code) return &f;
  return nullptr;
}

// Expects the finding `code` with severity `sev`; returns it.
const Finding& expect_finding(const CheckReport& r, const std::string& code, Severity sev) {
  const Finding* f = find(r, code);
  if (!f) {
    ADD_FAILURE() << "no " << code << " finding; got:\n" << codes(r);
    static const Finding none{Severity::kNote, "", "", ""};
    return none;
  }
  EXPECT_EQ(f->severity, sev) << codes(r);
  return *f;
}

TEST(CheckClean, GoldenCheckpointsHaveNoErrors) {
  const auto names = format_names();
  size_t checked = 0;
  for (const auto& e : fs::directory_iterator(test::data_path("golden"))) {
    if (!fs::exists(e.path() / "meta.json")) continue;
    const auto meta = read_json_file((e.path() / "meta.json").string());
    const std::string fmtname = meta["format"].get<std::string>();
    if (std::find(names.begin(), names.end(), fmtname) == names.end()) continue;  // not readable in this build yet
    const fs::path model = e.path() / meta.value("model_dir", std::string("model"));
    const CheckReport r = check_model(model.string());
    const std::string name = e.path().filename().string();
    if (name == "gptq-v1-zero0") {  // the peer's own defect: zero point 0 packed as -1 in GPTQ v1
      EXPECT_TRUE(r.has("zero-point-range")) << codes(r);
      continue;
    }
    EXPECT_EQ(r.count(Severity::kError), 0u) << name << ":\n" << codes(r);
    EXPECT_EQ(r.format, fmtname) << name;
    ++checked;
  }
  EXPECT_GE(checked, 10u);
}

TEST(CheckValues, NanInScalesNamesRowAndGroup) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    auto& s = test::tensor(ts, "model.layers.0.self_attn.q_proj.scales");  // [K/G = 2, N = 64]
    test::set_f16(s, 1 * 64 + 5, NAN);  // group 1, output row 5
    test::set_f16(s, 1 * 64 + 6, INFINITY);
  });
  const auto r = check_model(m.dir());
  const auto& f = expect_finding(r, "nonfinite", Severity::kError);
  EXPECT_EQ(f.tensor, "model.layers.0.self_attn.q_proj.scales");
  EXPECT_NE(f.message.find("1 NaN and 1 Inf"), std::string::npos) << f.message;
  EXPECT_NE(f.message.find("row 5, group 1"), std::string::npos) << f.message;
}

TEST(CheckValues, NanInNormIsFound) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>& ts) { test::set_f16(test::tensor(ts, "model.layers.0.input_layernorm.weight"), 3, NAN); });
  const auto r = check_model(m.dir());
  const auto& f = expect_finding(r, "nonfinite", Severity::kError);
  EXPECT_EQ(f.tensor, "model.layers.0.input_layernorm.weight");
  EXPECT_NE(f.message.find("index 3"), std::string::npos) << f.message;
}

TEST(CheckValues, GptqV1ZeroPointZeroPackedAsMinusOne) {
  const auto r = check_model(test::data_path("golden/gptq-v1-zero0/model"));
  const auto& f = expect_finding(r, "zero-point-range", Severity::kError);
  EXPECT_NE(f.message.find("stored nibble 15 + 1"), std::string::npos) << f.message;
  EXPECT_NE(f.message.find("-1"), std::string::npos) << f.message;
}

TEST(CheckValues, NonPositiveAndSubnormalScales) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    test::set_f16(test::tensor(ts, "model.layers.0.mlp.up_proj.scales"), 7, -0.01f);
    test::set_f16(test::tensor(ts, "model.layers.0.mlp.gate_proj.scales"), 9, 2e-6f);
  });
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "scale-nonpositive", Severity::kWarning).tensor, "model.layers.0.mlp.up_proj.scales");
  EXPECT_EQ(expect_finding(r, "scale-subnormal", Severity::kWarning).tensor, "model.layers.0.mlp.gate_proj.scales");
  EXPECT_EQ(r.count(Severity::kError), 0u) << codes(r);
}

TEST(CheckValues, ClampFloorAndConstantGroupsOnAutoAwqDegenerateGroups) {
  const auto r = check_model(test::data_path("golden/awq-gemm-const-group/model"));
  const auto& f = expect_finding(r, "scale-clamp-floor", Severity::kWarning);
  EXPECT_NE(f.message.find("6.557e-07"), std::string::npos) << f.message;
  expect_finding(r, "group-constant-codes", Severity::kWarning);
  EXPECT_EQ(r.count(Severity::kError), 0u) << codes(r);
}

TEST(CheckValues, NarrowCodeRange) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    auto& q = test::tensor(ts, "model.layers.0.mlp.down_proj.qweight");
    for (size_t i = 0; i < q.bytes.size() / 4; ++i) test::set_u32(q, i, i % 3 ? 0x77777777u : 0x88888888u);
  });
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "codes-narrow-range", Severity::kWarning).tensor, "model.layers.0.mlp.down_proj.qweight");
}

TEST(CheckValues, Fp16OverflowOfDenseTensor) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    auto& n = test::tensor(ts, "model.norm.weight");
    test::to_f32(n);
    test::set_f32(n, 2, 1e5f);
  });
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "fp16-overflow", Severity::kWarning).tensor, "model.norm.weight");
}

TEST(CheckTied, LmHeadOnlyIsTheAutoAwq027Bug) {
  test::Checkpoint m("awq-gemm-tied");
  m.edit_tensors([](std::vector<EditTensor>& ts) { test::tensor(ts, "model.embed_tokens.weight").name = "lm_head.weight"; });
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "tied-lm-head-only", Severity::kError).tensor, "lm_head.weight");
}

TEST(CheckTied, BothStoredIsANoteWithBytesSaved) {
  test::Checkpoint m("awq-gemm-tied");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    EditTensor h = test::tensor(ts, "model.embed_tokens.weight");
    h.name = "lm_head.weight";
    ts.push_back(h);
  });
  const auto r = check_model(m.dir());
  const auto& f = expect_finding(r, "tied-duplicate", Severity::kNote);
  EXPECT_NE(f.message.find("equal"), std::string::npos);
  EXPECT_NE(f.message.find("saves"), std::string::npos);
  EXPECT_EQ(r.count(Severity::kError), 0u) << codes(r);
}

TEST(CheckArchitecture, ConfigContradictsTensors) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c["intermediate_size"] = 192; });
  const auto r = check_model(m.dir());
  const auto& f = expect_finding(r, "config-mismatch", Severity::kError);
  EXPECT_NE(f.message.find("intermediate_size 192"), std::string::npos) << f.message;
}

TEST(CheckArchitecture, VocabAndLayerCount) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c["vocab_size"] = 300; c["num_hidden_layers"] = 2; });
  const auto r = check_model(m.dir());
  size_t n = 0;
  for (const auto& f : r.findings) n += f.code == "config-mismatch";
  EXPECT_GE(n, 3u) << codes(r);  // embed_tokens, lm_head, missing layer 1
}

TEST(CheckArchitecture, MissingAndUnexpectedTensors) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    test::erase(ts, "model.layers.0.post_attention_layernorm.weight");
    EditTensor extra = test::tensor(ts, "model.norm.weight");
    extra.name = "model.layers.0.self_attn.extra_norm.weight";
    ts.push_back(extra);
  });
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "tensor-missing", Severity::kError).tensor, "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(expect_finding(r, "tensor-unexpected", Severity::kError).tensor, "model.layers.0.self_attn.extra_norm.weight");
}

// Qwen3's dimensions are src/arch's ModelConfig's: head_dim defaults to 128 (Qwen3Config), not
// hidden_size / num_attention_heads (16 here), and q_norm/k_norm are tensors every layer must have.
TEST(CheckArchitecture, Qwen3DimensionsAndNormsComeFromModelConfig) {
  auto qwen3 = [] {
    auto m = std::make_unique<test::Checkpoint>("models/qwen3");  // 4 heads, 2 kv heads, head_dim 32, hidden 64
    fs::remove(m->file("logits.safetensors"));
    m->edit_config([](nlohmann::json& c) { c.erase("head_dim"); });
    return m;
  };
  {  // stored with head_dim 32: the config without head_dim implies 128
    const auto m = qwen3();
    const auto r = check_model(m->dir());
    const Finding* q = nullptr;
    for (const auto& f : r.findings)
      if (f.code == "config-mismatch" && f.tensor == "model.layers.0.self_attn.q_proj") q = &f;
    ASSERT_TRUE(q) << codes(r);
    EXPECT_NE(q->message.find("is [out 128, in 64] but config.json (hidden_size 64, intermediate_size 128, heads 4, kv heads 2, "
                              "head_dim 128) implies [512, 64]"), std::string::npos) << q->message;
  }
  {  // reshaped to head_dim 128 (zeros; only shapes are compared): consistent
    const auto m = qwen3();
    m->edit_tensors([](std::vector<EditTensor>& ts) {
      for (auto& t : ts) {
        const int64_t q = 4 * 128, kv = 2 * 128;
        if (t.name.ends_with("q_proj.weight")) t.shape = {q, 64};
        else if (t.name.ends_with("k_proj.weight") || t.name.ends_with("v_proj.weight")) t.shape = {kv, 64};
        else if (t.name.ends_with("o_proj.weight")) t.shape = {64, q};
        else if (t.name.ends_with("q_norm.weight") || t.name.ends_with("k_norm.weight")) t.shape = {128};
        else continue;
        t.bytes.assign(size_t(t.shape[0] * (t.shape.size() == 2 ? t.shape[1] : 1)) * dtype_size(t.dtype), '\0');
      }
      test::erase(ts, "model.layers.1.self_attn.k_norm.weight");
    });
    const auto r = check_model(m->dir());
    EXPECT_FALSE(r.has("config-mismatch")) << codes(r);
    EXPECT_EQ(expect_finding(r, "tensor-missing", Severity::kError).tensor, "model.layers.1.self_attn.k_norm.weight");
  }
}

// Architectures src/arch refuses keep every check that needs only config.json's dimensions: an
// unknown architecture name, and a known one whose config the runtime refuses (a rope scaling it
// does not implement), which also keeps the missing-tensor check.
TEST(CheckArchitecture, ArchitecturesModelConfigRefusesKeepTheirChecks) {
  const auto base = check_model(test::data_path("golden/awq-gemm-g32/model"));
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant);
    test::Checkpoint m("awq-gemm-g32");
    m.edit_config([&](nlohmann::json& c) {
      if (variant == 0) c["architectures"] = {"SomeFutureForCausalLM"};
      else c["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
      ASSERT_FALSE(decoder_dims(c, "config.json").model.has_value());
    });
    auto same = check_model(m.dir());
    EXPECT_EQ(same.count(Severity::kError), 0u) << codes(same);
    for (const char* code : {"tp-awq", "tp-awq-marlin"}) {  // the same dimensions, the same verdicts
      ASSERT_TRUE(find(same, code) && find(base, code)) << codes(same);
      EXPECT_EQ(find(same, code)->message, find(base, code)->message);
    }
    m.edit_config([](nlohmann::json& c) { c["intermediate_size"] = 192; c["vocab_size"] = 300; });
    m.edit_tensors([](std::vector<EditTensor>& ts) { test::erase(ts, "model.layers.0.post_attention_layernorm.weight"); });
    const auto r = check_model(m.dir());
    std::set<std::string> mismatched;
    for (const auto& f : r.findings)
      if (f.code == "config-mismatch") mismatched.insert(f.tensor);
    EXPECT_TRUE(mismatched.count("model.embed_tokens.weight")) << codes(r);
    EXPECT_TRUE(mismatched.count("model.layers.0.mlp.down_proj") || mismatched.count("model.layers.0.mlp.gate_proj")) << codes(r);
    EXPECT_EQ(r.has("tensor-missing"), variant == 1) << codes(r);  // names only for an architecture src/arch knows
  }
}

TEST(CheckArchitecture, LayerStoredDenseThoughConfigSaysQuantized) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    for (const char* s : {"qweight", "qzeros", "scales"}) test::erase(ts, std::string("model.layers.0.self_attn.o_proj.") + s);
    ts.push_back({"model.layers.0.self_attn.o_proj.weight", DType::F16, {64, 64}, std::string(64 * 64 * 2, '\0')});
  });
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "layer-stored-dense", Severity::kError).tensor, "model.layers.0.self_attn.o_proj");
}

TEST(CheckArchitecture, QuantizedLayerTheConfigExcludes) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c["quantization_config"]["modules_to_not_convert"] = {"down_proj"}; });
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "layer-quantized-unexpectedly", Severity::kError).tensor, "model.layers.0.mlp.down_proj");
}

TEST(CheckArchitecture, QuantizedRouterGate) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c["num_experts"] = 8; });  // a MoE config: mlp.gate is its router
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    for (auto& t : ts)
      if (t.name.rfind("model.layers.0.mlp.gate_proj.", 0) == 0) t.name.replace(0, std::string("model.layers.0.mlp.gate_proj").size(), "model.layers.0.mlp.gate");
  });
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "router-gate-quantized", Severity::kError).tensor, "model.layers.0.mlp.gate");
}

TEST(CheckQuantConfig, Missing) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c.erase("quantization_config"); });
  const auto r = check_model(m.dir());
  const auto& f = expect_finding(r, "quant-config-missing", Severity::kError);
  EXPECT_NE(f.message.find("autoawq-gemm"), std::string::npos) << f.message;
}

TEST(CheckQuantConfig, LegacyOnly) {
  test::Checkpoint m("awq-gemm-g32");
  nlohmann::json qc;
  m.edit_config([&](nlohmann::json& c) { qc = c["quantization_config"]; c.erase("quantization_config"); });
  test::write_bytes(m.dir() + "/quant_config.json", qc.dump());
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "quant-config-legacy", Severity::kWarning).tensor, "quant_config.json");
  EXPECT_FALSE(r.has("quant-config-missing"));
}

TEST(CheckQuantConfig, SaysGemvStoresGemm) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c["quantization_config"]["version"] = "gemv"; });
  const auto r = check_model(m.dir());
  const auto& f = expect_finding(r, "quant-config-mismatch", Severity::kError);
  EXPECT_NE(f.message.find("autoawq-gemm"), std::string::npos) << f.message;
  EXPECT_EQ(r.format, "autoawq-gemm");
  EXPECT_TRUE(r.has("tp-awq"));  // the other checks still ran on the tensors
}

TEST(CheckQuantConfig, IncompleteAndLegacyKeys) {
  test::Checkpoint a("awq-gemm-g32");
  a.edit_config([](nlohmann::json& c) { c["quantization_config"].erase("zero_point"); });
  expect_finding(check_model(a.dir()), "quant-config-incomplete", Severity::kError);
  test::Checkpoint b("awq-gemm-g32");
  b.edit_config([](nlohmann::json& c) {
    auto& q = c["quantization_config"];
    q["w_bit"] = q["bits"];
    q.erase("bits");
  });
  expect_finding(check_model(b.dir()), "quant-config-legacy-keys", Severity::kWarning);
}

TEST(CheckQuantConfig, NestedInTextConfig) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) {
    c["text_config"] = {{"quantization_config", c["quantization_config"]}};
    c.erase("quantization_config");
  });
  expect_finding(check_model(m.dir()), "quant-config-nested", Severity::kWarning);
}

TEST(CheckQuantConfig, ConfigMissingAndUnreadable) {
  test::Checkpoint a("awq-gemm-g32");
  fs::remove(a.dir() + "/config.json");
  expect_finding(check_model(a.dir()), "config-missing", Severity::kError);
  test::Checkpoint b("awq-gemm-g32");
  test::write_bytes(b.dir() + "/config.json", "{\"broken\": ");
  expect_finding(check_model(b.dir()), "model-unreadable", Severity::kError);
}

TEST(CheckQuantConfig, WrongJsonTypesDoNotStopTheCheck) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c["model_type"] = 7; c["tie_word_embeddings"] = "yes"; c["hidden_size"] = "64"; });
  const auto r = check_model(m.dir());  // must not throw
  EXPECT_TRUE(r.has("tp-awq")) << codes(r);
}

TEST(CheckQuantConfig, DenseCheckpointIsNoKnownLayout) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    std::vector<EditTensor> keep;
    for (auto& t : ts)
      if (t.name.find("proj") == std::string::npos) keep.push_back(t);
    ts = keep;
  });
  expect_finding(check_model(m.dir()), "format-unreadable", Severity::kError);
}

// An 8-bit GPTQ checkpoint (the peer's gptq-v2 golden, same codes stored 8 bits wide) under a
// config that still says bits 4: the finding is the bit width, and no advice touches the weights.
void make_8bit_says_4(test::Checkpoint& m) {
  m.edit_tensors(test::gptq_repack_8bit);
  m.edit_config([](nlohmann::json& c) { c["architectures"] = {"LlamaForCausalLM"}; });
}

// No finding may advise deleting tensors that are the model's weights.
void expect_no_destructive_advice(const CheckReport& r) {
  for (const auto& f : r.findings) {
    EXPECT_EQ(f.message.find("remove them"), std::string::npos) << f.code << ": " << f.message;
    EXPECT_NE(f.code, "tensor-unexpected") << f.message;
    EXPECT_NE(f.code, "tensor-missing") << f.message;
  }
}

TEST(CheckQuantConfig, EightBitTensorsUnderBits4IsTheBitWidth) {
  test::Checkpoint m("gptq-v2-asym-g64");
  make_8bit_says_4(m);
  const auto r = check_model(m.dir());
  EXPECT_EQ(r.format, "gptq");
  const auto& f = expect_finding(r, "quant-config-mismatch", Severity::kError);
  EXPECT_NE(f.message.find("the tensors hold 8-bit codes but the quantization config says bits 4"), std::string::npos) << f.message;
  EXPECT_NE(f.message.find("set bits 8"), std::string::npos) << f.message;
  expect_no_destructive_advice(r);
  {
    ModelDir md(m.dir());
    auto tensors = open_format_from_tensors(md);
    ASSERT_TRUE(tensors);
    EXPECT_EQ(tensors->scheme().bits, 8);
  }
  // Following the advice (bits 8 in the config) reads the golden's codes, zeros and scales.
  m.edit_config([](nlohmann::json& c) { c["quantization_config"]["bits"] = 8; });
  EXPECT_FALSE(check_model(m.dir()).has("quant-config-mismatch"));
  ModelDir md(m.dir()), gold(test::data_path("golden/gptq-v2-asym-g64/model"));
  auto fixed = open_format(md), want = open_format(gold);
  for (const auto& mod : want->modules()) {
    const QuantLinear a = fixed->read(mod), b = want->read(mod);
    EXPECT_EQ(a.bits, 8);
    EXPECT_EQ(a.codes, b.codes) << mod;
    EXPECT_EQ(a.zeros, b.zeros) << mod;
    EXPECT_EQ(a.scales, b.scales) << mod;
  }
}

TEST(CheckQuantConfig, UnreadableQuantizedTensorsAreNotCalledForeign) {
  test::Checkpoint m("gptq-v2-asym-g64");
  make_8bit_says_4(m);
  m.edit_tensors([](std::vector<EditTensor>& ts) {  // no layout fits without zero points
    std::erase_if(ts, [](const EditTensor& t) { return t.name.ends_with(".qzeros"); });
  });
  const auto r = check_model(m.dir());
  EXPECT_TRUE(r.has("format-unreadable") || r.has("quant-config-mismatch")) << codes(r);
  expect_no_destructive_advice(r);
}

TEST(CheckArchitecture, MoeExpertCountAgainstConfig) {
  // A Mixtral-named MoE built from the golden's MLP: 4 experts (copies of its w1/w2/w3) and a router.
  for (const char* key : {"num_local_experts", "num_experts"}) {
    test::Checkpoint m("awq-gemm-g32");
    m.edit_tensors([](std::vector<EditTensor>& ts) {
      const std::string p = "model.layers.0.mlp.";
      std::vector<EditTensor> add;
      for (const auto& t : ts) {
        if (t.name.rfind(p, 0) != 0) continue;
        const std::string rest = t.name.substr(p.size());  // gate_proj.qweight, ...
        const std::string mod = rest.substr(0, rest.find('.')), suffix = rest.substr(rest.find('.'));
        const std::string w = mod == "gate_proj" ? "w1" : mod == "up_proj" ? "w3" : "w2";
        for (int e = 0; e < 4; ++e) {
          EditTensor c = t;
          c.name = "model.layers.0.block_sparse_moe.experts." + std::to_string(e) + "." + w + suffix;
          add.push_back(c);
        }
      }
      std::erase_if(ts, [&](const EditTensor& t) { return t.name.rfind(p, 0) == 0; });
      const int64_t hidden = test::tensor(ts, "model.norm.weight").shape[0];
      add.push_back({"model.layers.0.block_sparse_moe.gate.weight", DType::F16, {4, hidden}, std::string(size_t(4 * hidden * 2), '\0')});
      for (auto& t : add) ts.push_back(t);
    });
    m.edit_config([&](nlohmann::json& c) {
      c["architectures"] = {"MixtralForCausalLM"};
      c["model_type"] = "mixtral";
      c[key] = 4;
    });
    auto ok = check_model(m.dir());
    EXPECT_FALSE(ok.has("config-mismatch")) << key << "\n" << codes(ok);
    m.edit_config([&](nlohmann::json& c) { c[key] = 8; });
    const auto r = check_model(m.dir());
    const auto& f = expect_finding(r, "config-mismatch", Severity::kError);
    EXPECT_EQ(f.tensor, "model.layers.0");
    EXPECT_NE(f.message.find(std::string(key) + " is 8 but layer 0 stores 4 expert(s)"), std::string::npos) << f.message;
  }
}

TEST(CheckValues, InfEmbeddingRowPoisonsOnlyItsTokensUnlessTied) {
  for (bool tied : {false, true}) {
    test::Checkpoint m("awq-gemm-g32");
    m.edit_tensors([](std::vector<EditTensor>& ts) {
      auto& e = test::tensor(ts, "model.embed_tokens.weight");
      test::set_f16(e, size_t(5 * e.shape[1] + 3), std::numeric_limits<float>::infinity());
    });
    if (tied) m.edit_config([](nlohmann::json& c) { c["tie_word_embeddings"] = true; });
    const auto r = check_model(m.dir());
    const auto& f = expect_finding(r, "nonfinite", Severity::kError);
    EXPECT_EQ(f.tensor, "model.embed_tokens.weight");
    EXPECT_EQ(f.message.find("Every output through it is NaN"), std::string::npos) << f.message;
    EXPECT_NE(f.message.find("Only sequences containing the token id(s) of those 1 row(s) (first: token 5)"), std::string::npos) << f.message;
    EXPECT_EQ(f.message.find("every position's logits") != std::string::npos, tied) << f.message;
  }
}

TEST(CheckFiles, StrayTensorFilesAreNotChecked) {
  // consolidated.safetensors without metadata beside model.safetensors: transformers, awq (and
  // vLLM's index filter) ignore it; vLLM's --load-format auto would load it instead: a warning.
  test::Checkpoint m("awq-gemm-g32");
  test::write_bytes(m.file("consolidated.safetensors"), test::read_bytes(m.file("model.safetensors")));
  test::rewrite_safetensors(m.file("consolidated.safetensors"), [](std::vector<EditTensor>&) {}, {});
  auto r = check_model(m.dir());
  EXPECT_EQ(r.count(Severity::kError), 0u) << codes(r);
  EXPECT_EQ(expect_finding(r, "tensor-file-vllm-loads", Severity::kWarning).tensor, "consolidated.safetensors");
  auto cli = test::run_awq({"check", m.dir(), "-q"});
  EXPECT_EQ(cli.status, 0) << cli.out;
  // Beside an index, a file the index does not name is ignored by every loader: a note.
  fs::rename(m.file("consolidated.safetensors"), m.file("extra.safetensors"));
  m.shard(2);
  r = check_model(m.dir());
  EXPECT_EQ(r.count(Severity::kError), 0u) << codes(r);
  EXPECT_EQ(expect_finding(r, "tensor-file-ignored", Severity::kNote).tensor, "extra.safetensors");
  // A shard the index names is still checked.
  test::rewrite_safetensors(m.file("model-00001-of-00002.safetensors"), [](std::vector<EditTensor>&) {}, {});
  expect_finding(check_model(m.dir()), "safetensors-format-metadata", Severity::kError);
}

TEST(CheckTied, DifferentHeadIsAWarningToKeep) {
  test::Checkpoint m("awq-gemm-tied");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    EditTensor h = test::tensor(ts, "model.embed_tokens.weight");
    h.name = "lm_head.weight";
    test::set_f16(h, 0, 0.5f);
    ts.push_back(h);
  });
  const auto r = check_model(m.dir());
  const auto& f = expect_finding(r, "tied-head-differs", Severity::kWarning);
  EXPECT_NE(f.message.find("Keep the tensor"), std::string::npos);
}

TEST(CheckFiles, FormatMetadataMissing) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_tensors([](std::vector<EditTensor>&) {}, {});
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "safetensors-format-metadata", Severity::kError).tensor, "model.safetensors");
}

TEST(CheckFiles, TruncatedSafetensors) {
  test::Checkpoint m("awq-gemm-g32");
  const std::string b = test::read_bytes(m.dir() + "/model.safetensors");
  test::write_bytes(m.dir() + "/model.safetensors", b.substr(0, b.size() - 100));
  const auto r = check_model(m.dir());
  expect_finding(r, "safetensors-invalid", Severity::kError);
}

TEST(CheckFiles, ShardedCleanHasNoErrors) {
  test::Checkpoint m("awq-gemm-g32");
  m.shard(2);
  const auto r = check_model(m.dir());
  EXPECT_EQ(r.count(Severity::kError), 0u) << codes(r);
}

TEST(CheckFiles, IndexMissingShard) {
  test::Checkpoint m("awq-gemm-g32");
  m.shard(2);
  fs::remove(m.dir() + "/model-00002-of-00002.safetensors");
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "index-missing-shard", Severity::kError).tensor, "model-00002-of-00002.safetensors");
  EXPECT_EQ(r.count(Severity::kError), 1u) << codes(r);
}

TEST(CheckFiles, IndexTensorMissingUnlistedWrongShardAndTotal) {
  test::Checkpoint m("awq-gemm-g32");
  m.shard(2);
  test::edit_json(m.dir() + "/model.safetensors.index.json", [](nlohmann::json& j) {
    auto& wm = j["weight_map"];
    wm["model.layers.0.ghost.weight"] = "model-00001-of-00002.safetensors";  // stored nowhere
    wm.erase("model.norm.weight");                                            // stored, unlisted
    const std::string first = wm.begin().key();
    wm[first] = wm[first] == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
    j["metadata"]["total_size"] = 12345;
  });
  const auto r = check_model(m.dir());
  EXPECT_EQ(expect_finding(r, "index-tensor-missing", Severity::kError).tensor, "model.layers.0.ghost.weight");
  EXPECT_EQ(expect_finding(r, "index-tensor-unlisted", Severity::kError).tensor, "model.norm.weight");
  expect_finding(r, "index-wrong-shard", Severity::kError);
  expect_finding(r, "index-total-size", Severity::kError);
}

TEST(CheckFiles, TensorInTwoShards) {
  test::Checkpoint m("awq-gemm-g32");
  m.shard(2);
  test::rewrite_safetensors(m.dir() + "/model-00002-of-00002.safetensors", [&](std::vector<EditTensor>& ts) {
    SafetensorsFile one(m.dir() + "/model-00001-of-00002.safetensors");
    const auto& t = one.tensors().front();
    ts.push_back({t.name, t.dtype, t.shape, std::string(reinterpret_cast<const char*>(t.data), t.nbytes)});
  });
  expect_finding(check_model(m.dir()), "tensor-duplicate", Severity::kError);
}

TEST(CheckTensorParallel, NotesFromVllmRules) {
  const auto r = check_model(test::data_path("tiny-llama-awq"));
  const auto& a = expect_finding(r, "tp-awq", Severity::kNote);
  EXPECT_NE(a.message.find("accepts TP 1, 2;"), std::string::npos) << a.message;
  EXPECT_NE(a.message.find("TP 4 fails: model.layers.0.self_attn.o_proj input 256/4 = 64 is not a multiple of group size 128"),
            std::string::npos) << a.message;
  const auto& mk = expect_finding(r, "tp-awq-marlin", Severity::kNote);
  EXPECT_NE(mk.message.find("min_thread_k 128"), std::string::npos) << mk.message;
}

// Keeps the first `n` output columns of an AutoAWQ GEMM module (qweight/qzeros [.., N/8], scales [.., N]).
void narrow_awq_module(std::vector<EditTensor>& ts, const std::string& m, int64_t n) {
  for (const char* part : {"qweight", "qzeros", "scales"}) {
    EditTensor& t = test::tensor(ts, m + "." + part);
    const int64_t cols = std::string(part) == "scales" ? n : n / 8, esz = std::string(part) == "scales" ? 2 : 4;
    std::string out;
    for (int64_t r = 0; r < t.shape[0]; ++r) out += t.bytes.substr(size_t(r * t.shape[1] * esz), size_t(cols * esz));
    t.bytes = out;
    t.shape[1] = cols;
  }
}

TEST(CheckTensorParallel, FusedWidthIsCheckedAsASumAndAFailingPartIsASilentMisSplit) {
  // k_proj and v_proj cut to 24 outputs: 12 per shard at TP 2 (not a multiple of the pack factor
  // 8), while the fused qkv_proj shard (128 + 12 + 12 = 152) is; vLLM loads it and mis-splits.
  test::Checkpoint m("tiny-llama-awq");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    for (const char* p : {"k_proj", "v_proj"})
      for (int l = 0; l < 2; ++l) narrow_awq_module(ts, "model.layers." + std::to_string(l) + ".self_attn." + p, 24);
  });
  const auto r = check_model(m.dir());
  const auto& a = expect_finding(r, "tp-awq", Severity::kNote);
  EXPECT_NE(a.message.find("accepts TP 1;"), std::string::npos) << a.message;
  EXPECT_NE(a.message.find("TP 2 loads but model.layers.0.self_attn.k_proj gets 12 output columns per shard, not a multiple of 8: "
                           "vLLM checks only the fused model.layers.0.self_attn.qkv_proj (152)"),
            std::string::npos) << a.message;
}

TEST(CheckTensorParallel, PerChannelLoadsAtTp1AndTheFirstLayerBuiltIsNamed) {
  const auto r = check_model(test::data_path("golden/awq-gemm-perchannel/model"));
  const auto& a = expect_finding(r, "tp-awq", Severity::kNote);
  EXPECT_NE(a.message.find("accepts TP 1;"), std::string::npos) << a.message;
  // o_proj and down_proj both fail at TP 2; vLLM builds self_attn.o_proj before mlp.down_proj.
  EXPECT_NE(a.message.find("TP 2 fails: model.layers.0.self_attn.o_proj input 64/2 = 32 is not a multiple of the per-channel group"),
            std::string::npos) << a.message;
  const auto& mk = expect_finding(r, "tp-awq-marlin", Severity::kNote);
  EXPECT_NE(mk.message.find("accepts TP 1 in vLLM 0.20-0.23 and TP 1 in 0.24-0.34"), std::string::npos) << mk.message;
}

TEST(CheckTensorParallel, MarlinFallbackIsPerLayerAndDependsOnTheVllmVersion) {
  const auto r = check_model(test::data_path("golden/awq-gemm-g32/model"));
  const auto& mk = expect_finding(r, "tp-awq-marlin", Severity::kNote);
  EXPECT_NE(mk.message.find("TP 1 in 0.20-0.23: 4 of 4 layers fall back to the awq kernel (first built: "
                            "model.layers.0.self_attn.qkv_proj: input_size_per_partition 64 is not divisible by min_thread_k 128), "
                            "in 0.24-0.34: Marlin takes every layer"),
            std::string::npos) << mk.message;
}

TEST(CheckTensorParallel, NoZeroPointNeverSelectsMarlin) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c["quantization_config"]["zero_point"] = false; });
  const auto r = check_model(m.dir(), {.numeric = false});
  const auto& mk = expect_finding(r, "tp-awq-marlin", Severity::kNote);
  EXPECT_NE(mk.message.find("never picks Marlin for this checkpoint (zero_point false"), std::string::npos) << mk.message;
}

TEST(CheckTensorParallel, Bf16ConfigNotesTheFp16OnlyAwqKernel) {
  test::Checkpoint m("awq-gemm-g32");
  m.edit_config([](nlohmann::json& c) { c["torch_dtype"] = "bfloat16"; });
  const auto r = check_model(m.dir());
  expect_finding(r, "dtype-risk", Severity::kNote);
  EXPECT_EQ(r.count(Severity::kError), 0u);
}

TEST(CheckTensorParallel, GemvLayoutsWarnThatVllmCannotLoadThem) {
  const auto r = check_model(test::data_path("golden/awq-gemv-g128/model"));
  expect_finding(r, "vllm-unsupported-layout", Severity::kWarning);
  EXPECT_EQ(r.count(Severity::kError), 0u);
}

TEST(CheckCli, ExitStatusAndJson) {
  auto ok = test::run_awq({"check", test::data_path("tiny-llama-awq"), "--json"});
  EXPECT_EQ(ok.status, 0) << ok.err;
  const auto j = nlohmann::json::parse(ok.out);
  ASSERT_TRUE(j["findings"].is_array());
  for (const auto& f : j["findings"]) {
    EXPECT_TRUE(f.contains("severity") && f.contains("code") && f.contains("tensor") && f.contains("message"));
  }
  auto bad = test::run_awq({"check", test::data_path("golden/gptq-v1-zero0/model")});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("zero-point-range"), std::string::npos) << bad.out;
  test::TempDir t;
  auto none = test::run_awq({"check", t / "does-not-exist"});
  EXPECT_EQ(none.status, 2);
  auto empty = test::run_awq({"check", t.path().string()});
  EXPECT_EQ(empty.status, 2);
}

// `awq quantize --format dense` writes a dense checkpoint (no quantization config, every tensor
// floating point): check reports it as dense and runs what applies instead of failing with
// format-unreadable; a NaN in one of its weights is still found and named.
TEST(CheckDense, QuantizeDenseOutputIsCheckedAsADenseModel) {
  test::TempDir tmp;
  const std::string out = tmp / "dense";
  const auto q = test::run_awq({"quantize", test::data_path("../../models/kjv-llama"), "-o", out, "--method", "rtn",
                                "--format", "dense", "--threads", "1"});
  ASSERT_EQ(q.status, 0) << q.err;
  const auto r = check_model(out);
  EXPECT_EQ(r.format, "dense");
  EXPECT_EQ(r.count(Severity::kError), 0u) << codes(r);
  EXPECT_FALSE(r.has("format-unreadable")) << codes(r);
  expect_finding(r, "dense-checkpoint", Severity::kNote);
  const std::string target = "model.layers.1.mlp.down_proj.weight";
  test::rewrite_safetensors(out + "/model.safetensors", [&](std::vector<EditTensor>& ts) {
    EditTensor& t = test::tensor(ts, target);
    if (t.dtype == DType::F32) {
      test::set_f32(t, 7, NAN);
    } else if (t.dtype == DType::F16) {
      test::set_f16(t, 7, NAN);
    } else {
      ASSERT_EQ(t.dtype, DType::BF16);
      const uint16_t nan = 0x7fc0;
      std::memcpy(t.bytes.data() + 2 * 7, &nan, 2);
    }
  });
  const auto bad = check_model(out);
  EXPECT_EQ(bad.format, "dense");
  EXPECT_EQ(expect_finding(bad, "nonfinite", Severity::kError).tensor, target);
}

}  // namespace
}  // namespace awq
