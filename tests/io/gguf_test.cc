// GGUF: the reader parses files llama.cpp's gguf-py wrote, dequantizes every supported type bit
// for bit as ggml does (golden values from ggml's own code, tools/make_golden_gguf.py), rejects
// malformed files with an error naming the file and tensor, and the writer's files read back.
#include <gtest/gtest.h>

#include <cstring>

#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/gguf_blocks.h"
#include "test_util.h"

namespace awq {
namespace {

std::vector<float> dequant(const GgufTensorInfo& t) {
  std::vector<float> out(size_t(t.numel()));
  dequantize_ggml(t.type, t.data, t.numel(), out.data());
  return out;
}

class GgufGolden : public ::testing::TestWithParam<std::pair<const char*, GgmlType>> {};

TEST_P(GgufGolden, DequantizesBitForBitAsGgml) {
  const auto [file, type] = GetParam();
  GgufFile f(test::data_path(std::string("gguf/") + file));
  EXPECT_EQ(f.version(), 3u);
  for (const char* name : {"quantized", "random"}) {
    const GgufTensorInfo* t = f.tensor(name);
    const GgufTensorInfo* e = f.tensor(std::string(name) + ".expected");
    ASSERT_TRUE(t && e) << file;
    EXPECT_EQ(t->type, type);
    ASSERT_EQ(t->ne, e->ne);
    ASSERT_EQ(e->type, GgmlType::F32);
    const auto got = dequant(*t);
    size_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      uint32_t a, b;
      std::memcpy(&a, &got[i], 4);
      std::memcpy(&b, e->data + 4 * i, 4);
      if (a != b && mismatches++ < 5) ADD_FAILURE() << file << " " << name << "[" << i << "]: " << got[i] << " vs " << std::bit_cast<float>(b);
    }
    EXPECT_EQ(mismatches, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GgufGolden,
                         ::testing::Values(std::make_pair("f32.gguf", GgmlType::F32), std::make_pair("f16.gguf", GgmlType::F16),
                                           std::make_pair("bf16.gguf", GgmlType::BF16), std::make_pair("q4_0.gguf", GgmlType::Q4_0),
                                           std::make_pair("q4_1.gguf", GgmlType::Q4_1), std::make_pair("q8_0.gguf", GgmlType::Q8_0),
                                           std::make_pair("q4_k.gguf", GgmlType::Q4_K), std::make_pair("q6_k.gguf", GgmlType::Q6_K)),
                         [](const auto& info) { return ggml_type_name(info.param.second); });

TEST(GgufReader, MetadataOfEveryType) {
  GgufFile f(test::data_path("gguf/metadata.gguf"));
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.get_string("general.architecture"), "golden");
  EXPECT_EQ(f.find("t.u8")->u, 200u);
  EXPECT_EQ(f.find("t.i8")->i, -100);
  EXPECT_EQ(f.find("t.u16")->u, 60000u);
  EXPECT_EQ(f.find("t.i16")->i, -30000);
  EXPECT_EQ(f.get_int("t.u32"), 4000000000);
  EXPECT_EQ(f.get_int("t.i32"), -2000000000);
  EXPECT_FLOAT_EQ(float(f.get_float("t.f32")), 0.1f);
  EXPECT_TRUE(f.find("t.bool")->b);
  EXPECT_EQ(f.get_string("t.string"), "héllo ✓");
  EXPECT_EQ(f.find("t.u64")->u, (uint64_t(1) << 63) + 5);
  EXPECT_FALSE(f.find("t.u64")->as_int());  // does not fit int64: no silent wrap
  EXPECT_EQ(f.get_int("t.i64"), -(int64_t(1) << 62));
  EXPECT_EQ(f.get_float("t.f64"), 1e300);
  const GgufValue* a = f.find("t.arr_str");
  ASSERT_EQ(a->type, GgufType::ARRAY);
  ASSERT_EQ(a->arr.size(), 3u);
  EXPECT_EQ(a->arr[2].s, "Ġthe");
  EXPECT_EQ(f.find("t.arr_i32")->arr[1].i, -2);
  EXPECT_EQ(f.find("t.arr_f32")->arr[1].f, -1.25);
  EXPECT_EQ(f.find("t.arr_u8")->arr[2].u, 255u);
  EXPECT_FALSE(f.find("t.arr_bool")->arr[1].b);
  EXPECT_THROW(f.get_int("t.string"), Error);
  EXPECT_THROW(f.get_string("missing.key"), Error);
  ASSERT_EQ(f.tensors().size(), 3u);
  const auto* t = f.tensor("a");
  EXPECT_EQ(t->ne, (std::vector<int64_t>{64, 3}));
  EXPECT_EQ(dequant(*t)[100], 100.0f);
  EXPECT_EQ(f.tensor("b")->nbytes, 10u);
  EXPECT_EQ(f.tensor("c")->offset % 64, 0u);
  EXPECT_EQ(dequant(*f.tensor("c"))[6], 6.0f);
}

// A minimal GGUF built by hand, so each field can be broken in turn.
struct Builder {
  std::string kv, ti, data;
  uint64_t n_kv = 0, n_t = 0;
  uint32_t version = 3;
  template <class T>
  static void put(std::string& s, T v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  static void str(std::string& s, const std::string& v) {
    put<uint64_t>(s, v.size());
    s += v;
  }
  Builder& u32(const std::string& k, uint32_t v) {
    str(kv, k);
    put<uint32_t>(kv, 4);
    put<uint32_t>(kv, v);
    ++n_kv;
    return *this;
  }
  Builder& tensor(const std::string& name, std::vector<int64_t> ne, uint32_t type, uint64_t off) {
    str(ti, name);
    put<uint32_t>(ti, uint32_t(ne.size()));
    for (auto d : ne) put<int64_t>(ti, d);
    put<uint32_t>(ti, type);
    put<uint64_t>(ti, off);
    ++n_t;
    return *this;
  }
  std::string bytes(uint32_t align = 32) const {
    std::string s = "GGUF";
    put<uint32_t>(s, version);
    put<uint64_t>(s, n_t);
    put<uint64_t>(s, n_kv);
    s += kv + ti;
    s.append((align - s.size() % align) % align, '\0');
    return s + data;
  }
};

void expect_error(const std::string& bytes, std::initializer_list<const char*> parts) {
  try {
    GgufFile f("bad.gguf", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    FAIL() << "accepted a bad file";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.gguf"), std::string::npos) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

TEST(GgufReader, AcceptsHandBuiltFile) {
  Builder b;
  b.tensor("w", {32, 2}, 2, 0).tensor("v", {4}, 0, 64);
  b.data = std::string(36, '\0') + std::string(28, '\0') + std::string(16, '\0');
  const std::string bytes = b.bytes();
  GgufFile f("ok.gguf", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(f.tensor("w")->nbytes, 36u);
  EXPECT_EQ(f.tensor("v")->nbytes, 16u);
}

TEST(GgufReader, RejectsMalformedFiles) {
  expect_error("GGUX", {"magic"});
  expect_error("GG", {"magic"});
  {
    Builder b;
    b.version = 1;
    expect_error(b.bytes(), {"version 1"});
  }
  {
    Builder b;
    b.n_kv = 1000000;  // counts beyond what the file can hold
    expect_error(b.bytes(), {"metadata count"});
  }
  {
    Builder b;
    b.u32("general.alignment", 48);
    expect_error(b.bytes(), {"power of two"});
  }
  {
    Builder b;
    b.u32("k", 1).u32("k", 2);
    expect_error(b.bytes(), {"duplicate metadata key 'k'"});
  }
  {
    Builder b;
    Builder::str(b.kv, "x");
    Builder::put<uint32_t>(b.kv, 13);
    b.n_kv = 1;
    expect_error(b.bytes(), {"unknown value type 13"});
  }
  {
    Builder b;  // an array claiming 2^40 elements
    Builder::str(b.kv, "arr");
    Builder::put<uint32_t>(b.kv, 9);
    Builder::put<uint32_t>(b.kv, 4);
    Builder::put<uint64_t>(b.kv, uint64_t(1) << 40);
    b.n_kv = 1;
    expect_error(b.bytes(), {"'arr'", "cannot fit"});
  }
  {
    Builder b;  // a string longer than the file
    Builder::str(b.kv, "s");
    Builder::put<uint32_t>(b.kv, 8);
    Builder::put<uint64_t>(b.kv, 1000);
    b.n_kv = 1;
    expect_error(b.bytes(), {"'s'", "1000 bytes"});
  }
  {
    Builder b;
    b.tensor("w", {32}, 99, 0);
    b.data = std::string(64, '\0');
    expect_error(b.bytes(), {"tensor 'w'", "unknown ggml type 99"});
  }
  {
    Builder b;
    b.tensor("w", {33}, 2, 0);
    b.data = std::string(64, '\0');
    expect_error(b.bytes(), {"tensor 'w'", "multiple of q4_0"});
  }
  {
    Builder b;
    b.tensor("w", {4}, 0, 8);
    b.data = std::string(64, '\0');
    expect_error(b.bytes(), {"tensor 'w'", "alignment"});
  }
  {
    Builder b;
    b.tensor("w", {64}, 0, 0);
    b.data = std::string(100, '\0');  // 256 bytes needed
    expect_error(b.bytes(), {"tensor 'w'", "past the end"});
  }
  {
    Builder b;
    b.tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32);
    b.data = std::string(128, '\0');
    expect_error(b.bytes(), {"overlaps"});
  }
  {
    Builder b;
    b.tensor("w", {int64_t(1) << 40, int64_t(1) << 40}, 0, 0);
    expect_error(b.bytes(), {"tensor 'w'", "overflow"});
  }
  {
    Builder b;
    b.tensor("w", {-1}, 0, 0);
    expect_error(b.bytes(), {"tensor 'w'", "negative"});
  }
  {
    Builder b;
    b.tensor("w", {1, 1, 1, 1, 1}, 0, 0);
    expect_error(b.bytes(), {"tensor 'w'", "5 dimensions"});
  }
  {
    Builder b;
    b.tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32);
    b.data = std::string(64, '\0');
    expect_error(b.bytes(), {"tensor 'w'", "duplicate"});
  }
  // Every truncation of a valid file is refused (never read past the end).
  const std::string good = [] {
    Builder b;
    b.u32("general.alignment", 32).tensor("w", {32, 2}, 3, 0);
    b.data = std::string(40, '\x11');
    return b.bytes();
  }();
  for (size_t n = 0; n < good.size(); ++n) {
    const std::string cut = good.substr(0, n);
    EXPECT_THROW(GgufFile("cut.gguf", reinterpret_cast<const uint8_t*>(cut.data()), cut.size()), Error) << n;
  }
}

TEST(GgufWriter, RoundTripsThroughTheReader) {
  test::TempDir dir;
  const std::string path = dir / "out.gguf";
  std::vector<float> a(64 * 2);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i) - 3.5f;
  gguf_detail::BlockQ8_0 q{};
  q.d = 0x3c00;  // 1.0
  for (int i = 0; i < 32; ++i) q.qs[i] = int8_t(i - 16);
  {
    GgufWriter w(path, 64);
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.block_count", 2);
    w.add_f32("x.f", 0.25f);
    w.add_bool("x.b", true);
    GgufValue arr;
    arr.type = GgufType::ARRAY;
    arr.elem = GgufType::STRING;
    for (const char* s : {"<s>", "a b"}) {
      GgufValue e;
      e.type = GgufType::STRING;
      e.s = s;
      arr.arr.push_back(e);
    }
    w.add("tokenizer.ggml.tokens", arr);
    w.add_tensor("a", {64, 2}, GgmlType::F32);
    w.add_tensor("q", {32}, GgmlType::Q8_0);
    w.begin_data();
    w.append(a.data(), 100);  // in two chunks
    w.append(reinterpret_cast<const char*>(a.data()) + 100, a.size() * 4 - 100);
    w.append(&q, sizeof q);
    EXPECT_FALSE(std::filesystem::exists(path));  // not before commit
    w.commit();
  }
  GgufFile f(path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 2);
  EXPECT_EQ(f.get_float("x.f"), 0.25);
  EXPECT_EQ(f.find("tokenizer.ggml.tokens")->arr[1].s, "a b");
  EXPECT_EQ(dequant(*f.tensor("a")), a);
  const auto qv = dequant(*f.tensor("q"));
  EXPECT_EQ(qv[0], -16.0f);
  EXPECT_EQ(qv[31], 15.0f);
  // An abandoned writer leaves nothing behind.
  { GgufWriter w(dir / "gone.gguf"); }
  EXPECT_FALSE(std::filesystem::exists(dir / "gone.gguf"));
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

TEST(GgufBlocks, Q4KScalePackingRoundTrips) {
  uint8_t sc[8], m[8], packed[12];
  for (int trial = 0; trial < 64; ++trial) {
    for (int j = 0; j < 8; ++j) {
      sc[j] = uint8_t((trial * 7 + j * 13) & 63);
      m[j] = uint8_t((trial * 11 + j * 5 + 1) & 63);
    }
    gguf_detail::q4k_pack_scale_min(sc, m, packed);
    for (int j = 0; j < 8; ++j) {
      uint8_t s2, m2;
      gguf_detail::q4k_scale_min(j, packed, &s2, &m2);
      EXPECT_EQ(s2, sc[j]);
      EXPECT_EQ(m2, m[j]);
    }
  }
}

}  // namespace
}  // namespace awq
