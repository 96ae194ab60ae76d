// TensorRT-LLM <= 0.7 .npz reader: the loader's own quantization re-executed on a hand-built npz
// (file scales for dense/mlp, recomputed scales and averaged pre-quant scales for q/k/v), and
// every contradiction is an awq::Error naming the member or the companion json.
#include <gtest/gtest.h>

#include "formats/tiny_model.h"

namespace awq {
namespace {

constexpr int64_t H = 16, G = 8, I = 32;  // hidden, group, intermediate

// One .npy member: little-endian, C order.
struct Npy {
  std::string name;  // without ".npy"
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

void put16(std::string& s, uint32_t v) { s += char(v & 0xff); s += char((v >> 8) & 0xff); }
void put32(std::string& s, uint32_t v) { put16(s, v & 0xffff); put16(s, v >> 16); }

std::string npy_bytes(const Npy& a) {
  std::string descr = a.dtype == DType::F16 ? "<f2" : a.dtype == DType::F32 ? "<f4" : a.dtype == DType::I32 ? "<i4" : "?";
  std::string shape;
  for (auto d : a.shape) shape += std::to_string(d) + ", ";
  if (a.shape.size() > 1) shape.resize(shape.size() - 2);
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  put16(out, uint32_t(h.size()));
  return out + h + a.bytes;
}

// A stored (uncompressed) zip, as np.savez writes it; CRCs are not checked by the reader.
void write_npz(const std::string& path, const std::vector<Npy>& arrays) {
  std::string zip, cd;
  for (const auto& a : arrays) {
    const std::string data = npy_bytes(a), name = a.name + ".npy";
    const uint32_t off = uint32_t(zip.size());
    put32(zip, 0x04034b50); put16(zip, 20); put16(zip, 0); put16(zip, 0); put16(zip, 0); put16(zip, 0);
    put32(zip, 0); put32(zip, uint32_t(data.size())); put32(zip, uint32_t(data.size()));
    put16(zip, uint32_t(name.size())); put16(zip, 0);
    zip += name + data;
    put32(cd, 0x02014b50); put16(cd, 20); put16(cd, 20); put16(cd, 0); put16(cd, 0); put16(cd, 0); put16(cd, 0);
    put32(cd, 0); put32(cd, uint32_t(data.size())); put32(cd, uint32_t(data.size()));
    put16(cd, uint32_t(name.size())); put16(cd, 0); put16(cd, 0); put16(cd, 0); put16(cd, 0); put32(cd, 0); put32(cd, off);
    cd += name;
  }
  const uint32_t cd_off = uint32_t(zip.size());
  zip += cd;
  put32(zip, 0x06054b50); put16(zip, 0); put16(zip, 0); put16(zip, uint32_t(arrays.size())); put16(zip, uint32_t(arrays.size()));
  put32(zip, uint32_t(cd.size())); put32(zip, cd_off); put16(zip, 0);
  test::write_bytes(path, zip);
}

Npy floats(const std::string& name, DType dt, std::vector<int64_t> shape, const std::vector<float>& v) {
  const auto t = test::float_tensor(name, dt, std::move(shape), v);
  return {t.name, t.dtype, t.shape, t.bytes};
}

float f16(float v) { return f16_to_f32(f32_to_f16(v)); }

// Signed code of (row, col), and the per-(row, group) exponent making amax = 7·2^-e exact.
// Column 0 of every group holds −8, so max|w| = 8·scale = amax and the q/k/v recomputation agrees.
int q_at(int64_t n, int64_t k) { return k % G == 0 ? -8 : int((n * 3 + k * 5) % 15) - 7; }
int e_at(int64_t n, int64_t g) { return 3 + int((n + g) % 3); }
float scale_at(int64_t n, int64_t g) { return 0.875f * std::ldexp(1.0f, -e_at(n, g)); }  // amax / 8
float pqs_at(const std::string& p, int64_t k) {  // p: "...:qkv:q" (q/k/v differ) or anything else
  const std::string tail = p.size() >= 6 ? p.substr(p.size() - 6) : p;
  if (tail == ":qkv:q") return 1.0f;
  if (tail == ":qkv:k") return 2.0f;
  if (tail == ":qkv:v") return 0.5f;
  return 0.5f + 0.25f * float(k % 4);
}

// A linear whose weights are exactly q·scale, with wsf = amax/7 (× `wsf_factor`).
void add_linear(std::vector<Npy>& a, const std::string& p, int64_t n, int64_t k, float wsf_factor = 1.0f) {
  std::vector<float> w, wsf, pq;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) w.push_back(float(q_at(r, c)) * scale_at(r, c / G));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < k / G; ++g) wsf.push_back(std::ldexp(1.0f, -e_at(r, g)) * wsf_factor);
  for (int64_t c = 0; c < k; ++c) pq.push_back(pqs_at(p, c));
  a.push_back(floats("_np:" + p + ":weight", DType::F16, {n, k}, w));
  a.push_back(floats("_np:" + p + ":weights_scaling_factor", DType::F32, {n, k / G}, wsf));
  a.push_back(floats("_np:" + p + ":prequant_scaling_factor", DType::F16, {k}, pq));
}

std::vector<Npy> npz_arrays(float q_wsf_factor = 1.0f) {
  std::vector<Npy> a;
  a.push_back(floats("_np:vocab_embedding:weight", DType::F16, {4, H}, std::vector<float>(4 * H, 0.5f)));
  a.push_back(floats("_np:lm_head:weight", DType::F16, {4, H}, std::vector<float>(4 * H, 0.25f)));
  a.push_back(floats("_np:final_layernorm:weight", DType::F16, {H}, std::vector<float>(H, 1.0f)));
  add_linear(a, "layers:0:attention:qkv:q", H, H, q_wsf_factor);
  add_linear(a, "layers:0:attention:qkv:k", H / 2, H);
  add_linear(a, "layers:0:attention:qkv:v", H / 2, H);
  add_linear(a, "layers:0:attention:dense", H, H);
  add_linear(a, "layers:0:mlp:fc", I, H);
  add_linear(a, "layers:0:mlp:gate", I, H);
  add_linear(a, "layers:0:mlp:proj", H, I);
  a.push_back(floats("_np:layers:0:input_layernorm:weight", DType::F16, {H}, std::vector<float>(H, 1.0f)));
  a.push_back(floats("_np:layers:0:post_layernorm:weight", DType::F16, {H}, std::vector<float>(H, 1.0f)));
  return a;
}

nlohmann::json tp1_json() {
  return {{"version", 0.4}, {"quantization", "int4_awq"}, {"awq_block_size", G}, {"dtype", "float16"}, {"tensor_parallel", 1}};
}

Npy* member(std::vector<Npy>& a, const std::string& name) {
  for (auto& x : a)
    if (x.name == name) return &x;
  return nullptr;
}

struct Fixture {
  test::TempDir tmp;
  std::string dir = tmp / "model";
  void write(const std::vector<Npy>& a, const nlohmann::json& j = tp1_json()) {
    std::filesystem::create_directories(dir);
    write_npz(dir + "/llama_tp1_rank0.npz", a);
    if (!j.is_null()) test::write_bytes(dir + "/llama_tp1.json", j.dump());
  }
};

TEST(TrtllmNpz, ReExecutesTheLoaderQuantization) {
  Fixture f;
  f.write(npz_arrays(/*q_wsf_factor=*/64.0f));  // q's stored factor is wrong: the loader ignores it
  ModelDir md(f.dir);
  auto r = open_format(md);
  ASSERT_EQ(r->scheme().format, "trtllm-npz");
  EXPECT_EQ(r->scheme().group_size, G);
  EXPECT_FALSE(r->scheme().zero_point);
  EXPECT_EQ(r->modules(), (std::vector<std::string>{"layers.0.attention.dense", "layers.0.attention.qkv.k", "layers.0.attention.qkv.q",
                                                    "layers.0.attention.qkv.v", "layers.0.mlp.fc", "layers.0.mlp.gate",
                                                    "layers.0.mlp.proj"}));
  EXPECT_EQ(r->dense_name("layers.0.mlp.fc"), "layers.0.mlp.fc.weight");
  EXPECT_EQ(r->dense_tensor_name("_np:vocab_embedding:weight"), "vocab_embedding.weight");
  const float qkv_pqs = f16(f16(f16(1.0f + 2.0f) + 0.5f) / 3.0f);
  for (const auto& [m, n, k] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
           {"layers.0.attention.dense", H, H}, {"layers.0.attention.qkv.q", H, H}, {"layers.0.attention.qkv.v", H / 2, H},
           {"layers.0.mlp.proj", H, I}}) {
    const bool qkv = m.find("qkv") != std::string::npos;
    const auto w = test::dense_f32(*r, m);
    for (int64_t row = 0; row < n; ++row)
      for (int64_t c = 0; c < k; ++c) {
        const float pqs = qkv ? qkv_pqs : f16(pqs_at(m, c));
        const float want = (float(q_at(row, c)) * f16(scale_at(row, c / G))) * pqs;  // f32 output: no final rounding
        ASSERT_EQ(w[size_t(row * k + c)], want) << m << " " << row << "," << c;
      }
  }
}

TEST(TrtllmNpz, NegativeValuesThatRoundToZeroGivePositiveZero) {
  Fixture f;
  auto a = npz_arrays();
  auto& w = *member(a, "_np:layers:0:attention:dense:weight");
  store_float(reinterpret_cast<uint8_t*>(w.bytes.data()), DType::F16, 1, -0.25f * scale_at(0, 0));  // x = -0.25 -> 0
  f.write(a);
  ModelDir md(f.dir);
  auto r = open_format(md);
  const QuantLinear q = r->read("layers.0.attention.dense");
  std::vector<uint16_t> out(size_t(q.n * q.k));
  dequantize_ref(q, DType::F16, reinterpret_cast<uint8_t*>(out.data()));
  EXPECT_EQ(out[1], 0u);  // +0, as the int8 code 0 the loader stores, never -0
}

TEST(TrtllmNpz, WorksWithoutTheCompanionJson) {
  Fixture f;
  f.write(npz_arrays(), nullptr);
  ModelDir md(f.dir);
  auto r = open_format(md);
  EXPECT_EQ(r->scheme().format, "trtllm-npz");
  EXPECT_EQ(r->scheme().group_size, G);
}

TEST(TrtllmNpz, ScalingFactorContradictingGroupSizeIsNamed) {
  Fixture f;
  auto a = npz_arrays();
  *member(a, "_np:layers:0:mlp:fc:weights_scaling_factor") =
      floats("_np:layers:0:mlp:fc:weights_scaling_factor", DType::F32, {I, 1}, std::vector<float>(I, 1.0f));
  f.write(a);
  test::expect_open_error(f.dir, {"_np:layers:0:mlp:fc:weights_scaling_factor", "expected 64 = N·K/G", "group size 16"});
}

TEST(TrtllmNpz, CompanionJsonContradictionsAreNamed) {
  {
    Fixture f;
    auto j = tp1_json();
    j["awq_block_size"] = 128;
    f.write(npz_arrays(), j);
    test::expect_open_error(f.dir, {"llama_tp1.json", "awq_block_size is 128", "group size 8"});
  }
  {
    Fixture f;
    auto j = tp1_json();
    j["quantization"] = "int8_sq";
    f.write(npz_arrays(), j);
    test::expect_open_error(f.dir, {"llama_tp1.json", "\"int8_sq\"", "only int4_awq"});
  }
  {
    Fixture f;
    auto j = tp1_json();
    j["tensor_parallel"] = 2;
    f.write(npz_arrays(), j);
    test::expect_open_error(f.dir, {"llama_tp1.json", "tensor_parallel is 2"});
  }
}

TEST(TrtllmNpz, MissingMemberIsNamed) {
  Fixture f;
  auto a = npz_arrays();
  std::erase_if(a, [](const Npy& x) { return x.name == "_np:layers:0:mlp:gate:prequant_scaling_factor"; });
  f.write(a);
  test::expect_open_error(f.dir, {"_np:layers:0:mlp:gate:prequant_scaling_factor", "missing"});
}

TEST(TrtllmNpz, WrongDtypesAndShapesAreNamed) {
  {
    Fixture f;
    auto a = npz_arrays();
    auto& w = *member(a, "_np:layers:0:mlp:proj:weight");
    w.dtype = DType::I32;
    w.bytes.resize(w.bytes.size() * 2);  // 4 bytes per element now
    f.write(a);
    test::expect_open_error(f.dir, {"_np:layers:0:mlp:proj:weight", "dtype I32", "expected F16 or BF16 or F32"});
  }
  {
    Fixture f;
    auto a = npz_arrays();
    *member(a, "_np:layers:0:attention:dense:prequant_scaling_factor") =
        floats("_np:layers:0:attention:dense:prequant_scaling_factor", DType::F16, {H / 2}, std::vector<float>(H / 2, 1.0f));
    f.write(a);
    test::expect_open_error(f.dir, {"_np:layers:0:attention:dense:prequant_scaling_factor", "expected 16 elements"});
  }
}

}  // namespace
}  // namespace awq
