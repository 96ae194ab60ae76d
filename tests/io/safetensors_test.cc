// The safetensors reader must reject every malformed file with an error naming the file (and the
// tensor where there is one), and the writer must produce files the reader (and HF) accept.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "awq/error.h"
#include "awq/safetensors.h"
#include "test_util.h"

namespace awq {
namespace {

std::string with_header(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Expects parsing `bytes` to fail with a message containing every one of `parts`.
void expect_error(const std::string& bytes, std::initializer_list<const char*> parts) {
  try {
    SafetensorsFile f("bad.safetensors", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    FAIL() << "accepted a bad file";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

TEST(SafetensorsReader, AcceptsWellFormedFile) {
  const std::string h = R"({"__metadata__":{"format":"pt"},"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})";
  const std::string bytes = with_header(h, std::string(12, '\x01'));
  SafetensorsFile f("ok", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].name, "a");  // buffer order, not header order
  EXPECT_EQ(f.find("b")->nbytes, 8u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
}

TEST(SafetensorsReader, RejectsMalformedHeaders) {
  expect_error("abc", {"too short"});
  expect_error(std::string(8, '\xff') + "{}", {"exceeds"});
  {
    std::string b = with_header(R"({"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", "xx");
    b[0] = char(0x70);  // header length past the end
    expect_error(b, {"past the end"});
  }
  expect_error(with_header("[1,2]", ""), {"start with"});
  expect_error(with_header("{\"a\":", ""), {"not valid JSON"});
  expect_error(with_header(R"({"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", "x"), {"'a'", "unknown dtype"});
  expect_error(with_header(R"({"a":{"dtype":"F16","shape":[-1],"data_offsets":[0,2]}})", "xx"), {"'a'", "negative"});
  expect_error(with_header(R"({"a":{"dtype":"F16","shape":[3],"data_offsets":[0,2]}})", "xx"), {"'a'", "needs 6"});
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,2]}})", "xx"), {"'a'", "overflow"});
  expect_error(with_header(R"({"a":{"dtype":"F16","shape":[1],"data_offsets":[2,0]}})", "xx"), {"'a'", "end < begin"});
  expect_error(with_header(R"({"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"a":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}})", "xxxx"), {"'a'", "twice"});
  expect_error(with_header(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", "xxx"), {"'b'", "overlaps"});
  expect_error(with_header(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})", "xxxxx"), {"'b'", "gap"});
  expect_error(with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "xx"), {"'a'", "truncated"});
  expect_error(with_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "xx"), {"cover"});
  expect_error(with_header(R"({"__metadata__":{"format":1}})", ""), {"__metadata__"});
  expect_error(with_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x"), {"'a'", "data_offsets"});
}

TEST(SafetensorsReader, TruncationAtEveryLengthIsAnErrorNeverACrash) {
  test::TempDir t;
  {
    SafetensorsWriter w(t / "m.safetensors", {{"x", DType::F32, {3, 5}}, {"y", DType::I32, {7}}});
    std::vector<uint8_t> buf(15 * 4 + 7 * 4, 0x5a);
    w.append(buf.data(), buf.size());
    w.commit();
  }
  const std::string full = test::read_bytes(t / "m.safetensors");
  for (size_t len = 0; len < full.size(); ++len) {
    const std::string cut = full.substr(0, len);
    EXPECT_THROW(SafetensorsFile("cut", reinterpret_cast<const uint8_t*>(cut.data()), cut.size()), Error) << len;
  }
}

TEST(SafetensorsWriter, RoundTripsAlignedWithFormatPt) {
  test::TempDir t;
  const std::string path = t / "out.safetensors";
  std::vector<uint16_t> a = {1, 2, 3};
  std::vector<int32_t> b = {-1, 7};
  {
    SafetensorsWriter w(path, {{"a", DType::F16, {3}}, {"b", DType::I32, {1, 2}}});
    w.append(a.data(), 6);
    w.append(b.data(), 8);
    w.commit();
  }
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const std::string raw = test::read_bytes(path);
  uint64_t n;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_NE(f.find("b"), nullptr);
  EXPECT_EQ(f.find("b")->shape, (std::vector<int64_t>{1, 2}));
  int32_t b1;
  std::memcpy(&b1, f.find("b")->data, 4);
  EXPECT_EQ(b1, -1);
}

TEST(SafetensorsWriter, UncommittedWriterLeavesNothing) {
  test::TempDir t;
  {
    SafetensorsWriter w(t / "x.safetensors", {{"a", DType::U8, {4}}});
    w.append("ab", 2);
  }
  EXPECT_TRUE(std::filesystem::is_empty(t.path()));
  SafetensorsWriter w(t / "y.safetensors", {{"a", DType::U8, {4}}});
  w.append("ab", 2);
  EXPECT_THROW(w.commit(), Error);  // short by two bytes
}

// A streaming reader done with a tensor drops its pages: the mapping's resident size falls from the
// whole tensor to at most its edge pages, and the bytes read back unchanged afterwards.
TEST(SafetensorsReader, ReleasePagesDropsAMappedTensorFromTheResidentSet) {
  test::TempDir t;
  const std::string path = t / "big.safetensors";
  constexpr int64_t kFloats = 2 << 20;  // 8 MiB
  {
    SafetensorsWriter w(path, {{"w", DType::F32, {kFloats}}});
    std::vector<float> v(static_cast<size_t>(kFloats));
    for (int64_t i = 0; i < kFloats; ++i) v[size_t(i)] = float(i % 1000);
    w.append(v.data(), v.size() * 4);
    w.commit();
  }
  SafetensorsFile f(path);
  const TensorView& w = f.tensors()[0];
  ASSERT_NE(w.mapping, nullptr);
  double sum = 0;
  for (int64_t i = 0; i < kFloats; ++i) sum += load_float(w.data, w.dtype, size_t(i));
  EXPECT_GE(test::mapping_rss_bytes(w.data), size_t(kFloats) * 4);
  release_pages(w);
  EXPECT_LE(test::mapping_rss_bytes(w.data), size_t(64) << 10);
  double again = 0;
  for (int64_t i = 0; i < kFloats; ++i) again += load_float(w.data, w.dtype, size_t(i));
  EXPECT_EQ(again, sum);
  // An in-memory image is owned by its caller: no mapping, nothing released.
  const std::string bytes = test::read_bytes(path);
  SafetensorsFile mem("mem.safetensors", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(mem.tensors()[0].mapping, nullptr);
}

}  // namespace
}  // namespace awq
