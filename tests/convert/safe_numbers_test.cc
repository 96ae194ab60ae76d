// Wrong numbers are never written silently (issue 15): one scanner (awq/value_scan.h) feeds
// `check`'s findings and the writers' refusals. Each class is seeded into a checkpoint made by the
// peers' tools (AutoAWQ, AutoGPTQ, llm-compressor golden files), copied and poked:
//   - a scale that makes dequantized weights overflow f16 (check names module/row/group; f16
//     output refused naming the dtypes that hold it; bf16 works);
//   - NaN/Inf in scales, norms, biases (refused naming tensor/row/group; --allow-nonfinite warns);
//   - --requantize over a NaN scale (refused; allowed, its error figures are NaN, never 0 %);
//   - a tensor in two shards, a key twice in the index (refused naming both shards; check finds it);
//   - --dtype casts every floating tensor and says what it rounded; a cast that overflows refuses;
//   - 8-bit GPTQ <-> 8-bit compressed-tensors exactly; 8-bit into a 4-bit layout re-quantizes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "awq/check.h"
#include "awq/convert.h"
#include "awq/dequantize_model.h"
#include "awq/error.h"
#include "awq/formats.h"
#include "awq/model_dir.h"
#include "check/checkpoint_util.h"
#include "formats/tiny_model.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;
using test::EditTensor;

const std::string kDown = "model.layers.0.mlp.down_proj";

const Finding* finding(const CheckReport& r, const std::string& code, const std::string& tensor = "") {
  for (const auto& f : r.findings)
    if (f.code == code && (tensor.empty() || f.tensor == tensor)) return &f;
  return nullptr;
}

std::string all(const CheckReport& r) {
  std::string s;
  for (const auto& f : r.findings) s += f.code + " " + f.tensor + ": " + f.message + "\n";
  return s;
}

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// ---- 1. f16 overflow of dequantized weights -------------------------------------------------

TEST(SafeNumbers, ScaleOverflowingF16IsFoundAndRefusedForF16Output) {
  test::Checkpoint m("awq-gemm-g128");  // AutoAWQ GEMM; down_proj scales F16 [2 groups, 128 rows]
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    auto& s = test::tensor(ts, kDown + ".scales");
    test::set_f16(s, 1 * 128 + 5, 20000.0f);  // row 5, group 1
  });
  const CheckReport r = check_model(m.dir());
  const Finding* f = finding(r, "fp16-overflow", kDown);
  ASSERT_NE(f, nullptr) << all(r);
  EXPECT_TRUE(has(f->message, "row 5, group 1")) << f->message;

  test::TempDir t;
  auto run = test::run_awq({"dequantize", m.dir(), "-o", t / "f16", "--dtype", "f16", "-q"});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(has(run.err, kDown) && has(run.err, "bf16 or f32") && has(run.err, "row 5, group 1")) << run.err;
  EXPECT_FALSE(fs::exists(t / "f16"));
  run = test::run_awq({"convert", m.dir(), "-o", t / "dense", "--to", "dense", "-q"});  // default dtype: the scales' f16
  EXPECT_EQ(run.status, 1) << run.out;
  EXPECT_FALSE(fs::exists(t / "dense"));
  run = test::run_awq({"dequantize", m.dir(), "-o", t / "bf16", "--dtype", "bf16", "-q"});
  ASSERT_EQ(run.status, 0) << run.err;
  ModelDir out(t / "bf16");
  const TensorView& w = out.get(kDown + ".weight");
  float big = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    ASSERT_TRUE(std::isfinite(load_float(w.data, w.dtype, size_t(i))));
    big = std::max(big, std::fabs(load_float(w.data, w.dtype, size_t(i))));
  }
  EXPECT_GT(big, 65504.0f);
}

TEST(SafeNumbers, CastThatOverflowsF16IsRefused) {
  test::Checkpoint m("awq-gemm-g128");
  m.edit_tensors([](std::vector<EditTensor>& ts) {
    auto& n = test::tensor(ts, "model.norm.weight");
    test::to_f32(n);
    test::set_f32(n, 7, 1.0e6f);
  });
  test::TempDir t;
  auto run = test::run_awq({"dequantize", m.dir(), "-o", t / "o", "--dtype", "f16", "-q"});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(has(run.err, "model.norm.weight") && has(run.err, "bf16 or f32") && has(run.err, "index 7")) << run.err;
  EXPECT_FALSE(fs::exists(t / "o"));
}

// ---- 2. NaN / Inf ----------------------------------------------------------------------------

TEST(SafeNumbers, NonfiniteScaleNormAndBiasAreRefusedByDefault) {
  struct Poke {
    std::string golden, tensor;
    size_t index;
    float value;
    std::string where;
  };
  const std::vector<Poke> pokes = {
      {"awq-gemm-g128", kDown + ".scales", 1 * 128 + 3, NAN, "row 3, group 1"},  // GEMM scales [groups, N]: output row 3, group 1
      {"awq-gemm-g128", "model.norm.weight", 9, INFINITY, "index 9"},
      {"awq-gemm-g128", "model.embed_tokens.weight", 2 * 128 + 4, NAN, "row 2, column 4"},
      {"awq-gemm-bias", "", 0, NAN, ""},
      {"gptq-v1-asym-g64", "", 0, NAN, ""},
  };
  for (const auto& p : pokes) {
    test::Checkpoint m(p.golden);
    std::string tensor = p.tensor, where = p.where;
    size_t index = p.index;
    m.edit_tensors([&](std::vector<EditTensor>& ts) {
      if (tensor.empty()) {  // the first bias (awq-gemm-bias) or the first scales tensor (GPTQ)
        for (auto& e : ts)
          if (has(e.name, p.golden == "awq-gemm-bias" ? ".bias" : ".scales")) {
            tensor = e.name;
            break;
          }
        index = 0;
        where = p.golden == "awq-gemm-bias" ? "index 0" : "row 0, group 0";
      }
      test::set_f16(test::tensor(ts, tensor), index, p.value);
    });
    const CheckReport r = check_model(m.dir());
    const Finding* f = finding(r, "nonfinite", tensor);
    ASSERT_NE(f, nullptr) << p.golden << " " << tensor << "\n" << all(r);
    EXPECT_TRUE(has(f->message, where)) << f->message;

    test::TempDir t;
    for (const std::string cmd : {"dequantize", "convert"}) {
      std::vector<std::string> args = {cmd, m.dir(), "-o", t / cmd, "-q"};
      if (cmd == "convert") args.insert(args.end(), {"--to", "compressed-tensors"});
      auto run = test::run_awq(args);
      EXPECT_EQ(run.status, 1) << cmd << " " << tensor;
      EXPECT_TRUE(has(run.err, tensor) && has(run.err, where) && has(run.err, "--allow-nonfinite")) << cmd << ": " << run.err;
      EXPECT_FALSE(fs::exists(t / cmd));
      args.push_back("--allow-nonfinite");
      run = test::run_awq(args);
      EXPECT_EQ(run.status, 0) << cmd << ": " << run.err;
      EXPECT_TRUE(has(run.err, "warning: " + tensor + ":")) << cmd << ": " << run.err;
    }
  }
}

// ---- 3. --requantize over NaN ----------------------------------------------------------------

TEST(SafeNumbers, RequantizeOverNanScaleRefusesAndNeverReportsZeroError) {
  test::Checkpoint m("gptq-actorder-g64");  // AutoGPTQ act-order: --requantize into GEMM re-quantizes every module
  std::string scales;
  m.edit_tensors([&](std::vector<EditTensor>& ts) {
    for (auto& e : ts)
      if (has(e.name, ".scales")) {
        scales = e.name;
        test::set_f16(e, 0, NAN);
        break;
      }
  });
  test::TempDir t;
  auto run = test::run_awq({"convert", m.dir(), "-o", t / "a", "--to", "autoawq-gemm", "--requantize", "-q"});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(has(run.err, scales)) << run.err;
  EXPECT_FALSE(fs::exists(t / "a"));

  ModelDir dir(m.dir());
  auto reader = open_format(dir);
  ConvertOptions opt;
  opt.out_dir = t / "b";
  opt.requantize = true;
  opt.allow_nonfinite = true;
  opt.progress = false;
  const ConvertResult r = convert_model(dir, *reader, opt);
  const std::string module = scales.substr(0, scales.size() - 7);
  bool seen = false;
  for (const auto& q : r.requantized) {
    if (q.module != module) {
      EXPECT_TRUE(std::isfinite(q.rel_rms) && q.rel_rms > 0) << q.module;
      continue;
    }
    seen = true;
    EXPECT_TRUE(std::isnan(q.rel_rms)) << q.rel_rms;
    EXPECT_TRUE(std::isnan(q.max_abs)) << q.max_abs;
  }
  EXPECT_TRUE(seen);
  ASSERT_EQ(r.warnings.size(), 1u);
  run = test::run_awq({"convert", m.dir(), "-o", t / "c", "--to", "autoawq-gemm", "--requantize", "--allow-nonfinite", "-q"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(has(run.out, "not measurable")) << run.out;
  EXPECT_FALSE(has(run.out, "relative RMS 0%")) << run.out;
  // The NaN group is carried (scale NaN), not replaced by an invented constant.
  ModelDir out(t / "c");
  auto back = open_format(out);
  const QuantLinear q = back->read(module);
  EXPECT_TRUE(std::any_of(q.scales.begin(), q.scales.end(), [](float s) { return std::isnan(s); }));
}

// ---- 4. duplicates across shards and in the index --------------------------------------------

TEST(SafeNumbers, TensorInTwoShardsIsRefusedNamingBoth) {
  for (const bool same_bytes : {false, true}) {
    test::Checkpoint m("awq-gemm-g128");
    m.shard(2);
    // Copy model.norm.weight (listed for one shard) into the other shard too.
    const std::string a = "model-00001-of-00002.safetensors", b = "model-00002-of-00002.safetensors";
    std::string norm_bytes;
    std::string holder, other;
    for (const auto& [f, o] : {std::pair{a, b}, std::pair{b, a}}) {
      SafetensorsFile sf(m.file(f));
      if (const TensorView* v = sf.find("model.norm.weight")) {
        norm_bytes.assign(reinterpret_cast<const char*>(v->data), v->nbytes);
        holder = f;
        other = o;
      }
    }
    ASSERT_FALSE(holder.empty());
    test::rewrite_safetensors(m.file(other), [&](std::vector<EditTensor>& ts) {
      EditTensor e{"model.norm.weight", DType::F16, {128}, norm_bytes};
      if (!same_bytes) test::set_f16(e, 0, 3.0f);
      ts.push_back(e);
    });
    std::string err;
    try {
      ModelDir d(m.dir());
    } catch (const Error& e) {
      err = e.what();
    }
    EXPECT_TRUE(has(err, "model.norm.weight") && has(err, a) && has(err, b)) << err;
    EXPECT_TRUE(has(err, same_bytes ? "identical bytes" : "different bytes")) << err;
    test::TempDir t;
    const auto run = test::run_awq({"dequantize", m.dir(), "-o", t / "o", "-q"});
    EXPECT_EQ(run.status, 1);
    EXPECT_FALSE(fs::exists(t / "o"));
    EXPECT_TRUE(check_model(m.dir()).has("tensor-duplicate"));
  }
}

TEST(SafeNumbers, KeyListedTwiceInTheIndexIsRefusedAndFound) {
  test::Checkpoint m("awq-gemm-g128");
  m.shard(2);
  // Insert a second "model.norm.weight" entry pointing at the other shard, before the real one.
  std::string idx = test::read_bytes(m.file("model.safetensors.index.json"));
  const auto wm = idx.find("\"weight_map\": {");
  ASSERT_NE(wm, std::string::npos) << idx;
  const auto j = nlohmann::json::parse(idx);
  const std::string real = j["weight_map"]["model.norm.weight"];
  const std::string wrong = real == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  idx.insert(wm + 15, "\n    \"model.norm.weight\": \"" + wrong + "\",");
  test::write_bytes(m.file("model.safetensors.index.json"), idx);
  ASSERT_EQ(nlohmann::json::parse(idx)["weight_map"]["model.norm.weight"], real);  // parsers keep the last, silently
  std::string err;
  try {
    ModelDir d(m.dir());
  } catch (const Error& e) {
    err = e.what();
  }
  EXPECT_TRUE(has(err, "model.norm.weight") && has(err, "listed 2 times") && has(err, real) && has(err, wrong)) << err;
  const CheckReport r = check_model(m.dir());
  const Finding* f = finding(r, "index-duplicate-key", "model.norm.weight");
  ASSERT_NE(f, nullptr) << all(r);
  EXPECT_TRUE(has(f->message, real) && has(f->message, wrong)) << f->message;
  test::TempDir t;
  EXPECT_EQ(test::run_awq({"convert", m.dir(), "-o", t / "o", "--to", "gptq", "-q"}).status, 1);
  EXPECT_FALSE(fs::exists(t / "o"));
}

// ---- 5. --dtype applies to every floating tensor ---------------------------------------------

TEST(SafeNumbers, DtypeCastsEveryFloatingTensorAndSaysSo) {
  test::TempDir t;
  const std::string tiny = test::data_path("tiny-llama-awq");
  const auto run = test::run_awq({"dequantize", tiny, "-o", t / "bf", "--dtype", "bf16", "-q"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(has(run.out, "cast F16 -> BF16")) << run.out;
  EXPECT_TRUE(has(run.out, "max relative rounding")) << run.out;
  ModelDir in(tiny), out(t / "bf");
  EXPECT_EQ(out.config()["torch_dtype"], "bfloat16");
  size_t cast = 0;
  for (const TensorView* v : out.tensors()) {
    if (!is_float(v->dtype)) continue;
    EXPECT_EQ(v->dtype, DType::BF16) << v->name;
    const TensorView* src = in.find(v->name);
    if (!src || src->dtype != DType::F16) continue;
    ++cast;
    for (int64_t i = 0; i < v->numel(); ++i)  // RNE of the exact source value
      ASSERT_EQ(f32_to_bf16(load_float(src->data, src->dtype, size_t(i))), f32_to_bf16(load_float(v->data, v->dtype, size_t(i))))
          << v->name << "[" << i << "]";
  }
  EXPECT_GT(cast, 2u);  // embeddings, norms, lm_head
  EXPECT_TRUE(has(run.out, std::to_string(cast) + " tensor(s) cast F16 -> BF16")) << run.out;
}

// ---- 6. 8-bit GPTQ <-> 8-bit compressed-tensors ----------------------------------------------

// An AutoGPTQ 8-bit v1 module packed by hand as AutoGPTQ's pack() does (4 codes per int32 along K,
// qzeros 4 per int32 along N, stored z - 1) and the same module as compressed-tensors
// pack_to_int32 writes it (u = q + 128 = our code, 4 per int32 along K; zero points along N).
struct EightBit {
  static constexpr int64_t N = 16, K = 64, G = 32, NG = 2;
  static int code(int64_t n, int64_t k) { return int((n * 37 + k * 11 + 3) % 256); }
  static int zero(int64_t n, int64_t g) { return int(100 + (n * 7 + g * 13) % 50); }
  static float scale(int64_t n, int64_t g) { return 0.001953125f * float(1 + (n + 3 * g) % 8); }
  static nlohmann::json config() { return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"torch_dtype", "float16"}}; }
  static void write_gptq(const std::string& dir) {
    std::vector<int32_t> qw(size_t(K / 4 * N), 0), qz(size_t(NG * N / 4), 0), gi(static_cast<size_t>(K), 0);
    for (int64_t k = 0; k < K; ++k) {
      gi[size_t(k)] = int32_t(k / G);
      for (int64_t n = 0; n < N; ++n) qw[size_t((k / 4) * N + n)] |= int32_t(uint32_t(code(n, k)) << (8 * (k % 4)));
    }
    std::vector<float> sc;
    for (int64_t g = 0; g < NG; ++g) {
      for (int64_t n = 0; n < N; ++n) {
        qz[size_t(g * (N / 4) + n / 4)] |= int32_t(uint32_t(zero(n, g) - 1) << (8 * (n % 4)));
        sc.push_back(scale(n, g));
      }
    }
    auto cfg = config();
    cfg["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 8}, {"group_size", G}, {"desc_act", false}, {"sym", false}};
    test::write_model(dir,
                      {test::make_tensor(kDown + ".qweight", DType::I32, {K / 4, N}, qw),
                       test::make_tensor(kDown + ".qzeros", DType::I32, {NG, N / 4}, qz),
                       test::float_tensor(kDown + ".scales", DType::F16, {NG, N}, sc),
                       test::make_tensor(kDown + ".g_idx", DType::I32, {K}, gi)},
                      cfg);
  }
  // compressed-tensors' own tensors for the module (weight_packed, weight_zero_point).
  static std::vector<int32_t> ct_packed() {
    std::vector<int32_t> wp(size_t(N * K / 4), 0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) wp[size_t(n * (K / 4) + k / 4)] |= int32_t(uint32_t(code(n, k)) << (8 * (k % 4)));
    return wp;
  }
  static std::vector<int32_t> ct_zero_points() {
    std::vector<int32_t> zp(size_t(N / 4 * NG), 0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < NG; ++g) zp[size_t((n / 4) * NG + g)] |= int32_t(uint32_t(zero(n, g)) << (8 * (n % 4)));
    return zp;
  }
};

template <class T>
std::vector<T> values_of(const TensorView& v) {
  std::vector<T> out(size_t(v.nbytes / sizeof(T)));
  std::memcpy(out.data(), v.data, v.nbytes);
  return out;
}

TEST(SafeNumbers, EightBitGptqAndCompressedTensorsConvertExactly) {
  test::TempDir t;
  EightBit::write_gptq(t / "gptq8");
  auto run = test::run_awq({"convert", t / "gptq8", "-o", t / "ct8", "--to", "compressed-tensors", "-q"});
  ASSERT_EQ(run.status, 0) << run.err;
  {
    ModelDir ct(t / "ct8");
    EXPECT_EQ(ct.config()["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"], 8);
    EXPECT_EQ(values_of<int32_t>(ct.get(kDown + ".weight_packed")), EightBit::ct_packed());
    EXPECT_EQ(values_of<int32_t>(ct.get(kDown + ".weight_zero_point")), EightBit::ct_zero_points());
    auto r = open_format(ct);
    const QuantLinear q = r->read(kDown);
    for (int64_t n = 0; n < EightBit::N; ++n)
      for (int64_t k = 0; k < EightBit::K; ++k)
        ASSERT_EQ(q.codes[size_t(n * EightBit::K + k)] - q.zero_at(n, k / EightBit::G), EightBit::code(n, k) - EightBit::zero(n, k / EightBit::G));
  }
  run = test::run_awq({"convert", t / "ct8", "-o", t / "back", "--to", "gptq", "-q"});
  ASSERT_EQ(run.status, 0) << run.err;
  ModelDir a(t / "gptq8"), b(t / "back");
  for (const char* leaf : {".qweight", ".qzeros", ".scales", ".g_idx"}) {
    const TensorView &x = a.get(kDown + leaf), &y = b.get(kDown + leaf);
    ASSERT_EQ(x.shape, y.shape) << leaf;
    ASSERT_EQ(x.nbytes, y.nbytes) << leaf;
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << leaf;
  }
  EXPECT_EQ(b.config()["quantization_config"]["bits"], 8);
}

TEST(SafeNumbers, EightBitIntoAFourBitLayoutRequantizesOrRefuses) {
  test::TempDir t;
  EightBit::write_gptq(t / "gptq8");
  auto run = test::run_awq({"convert", t / "gptq8", "-o", t / "awq", "--to", "autoawq-gemm", "-q"});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(has(run.err, "8-bit") && has(run.err, "--requantize")) << run.err;
  EXPECT_FALSE(fs::exists(t / "awq"));
  ModelDir dir(t / "gptq8");
  auto reader = open_format(dir);
  ConvertOptions opt;
  opt.out_dir = t / "awq";
  opt.requantize = true;
  opt.progress = false;
  const ConvertResult r = convert_model(dir, *reader, opt);
  ASSERT_EQ(r.requantized.size(), 1u);
  EXPECT_TRUE(std::isfinite(r.requantized[0].rel_rms) && r.requantized[0].rel_rms > 0 && r.requantized[0].rel_rms < 0.2);
  ModelDir out(t / "awq");
  EXPECT_EQ(out.config()["quantization_config"]["bits"], 4);
  auto back = open_format(out);
  EXPECT_EQ(back->scheme().bits, 4);
  // The reported error is the real one: recompute it from both dequantizations.
  const auto w8 = test::dense_f32(*reader, kDown), w4 = test::dense_f32(*back, kDown);
  double num = 0, den = 0, worst = 0;
  for (size_t i = 0; i < w8.size(); ++i) {
    num += (double(w4[i]) - w8[i]) * (double(w4[i]) - w8[i]);
    den += double(w8[i]) * w8[i];
    worst = std::max(worst, std::fabs(double(w4[i]) - w8[i]));
  }
  EXPECT_NEAR(r.requantized[0].rel_rms, std::sqrt(num / den), 1e-3 * std::sqrt(num / den));
  EXPECT_NEAR(r.requantized[0].max_abs, worst, 1e-3 * worst);
}

}  // namespace
}  // namespace awq
