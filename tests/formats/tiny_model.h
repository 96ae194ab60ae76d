// Hand-built tiny checkpoints for the per-format reader tests: tensors from typed vectors, written
// with SafetensorsWriter into a TempDir next to a config.json, then opened like a real model.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "awq/error.h"
#include "awq/formats.h"
#include "awq/safetensors.h"
#include "test_util.h"

namespace awq::test {

template <class T>
EditTensor make_tensor(const std::string& name, DType dt, std::vector<int64_t> shape, const std::vector<T>& v) {
  EditTensor t{name, dt, std::move(shape), std::string(v.size() * sizeof(T), '\0')};
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

// f32 values stored as F16 / BF16 / F32 (values must be exactly representable for exact tests).
inline EditTensor float_tensor(const std::string& name, DType dt, std::vector<int64_t> shape, const std::vector<float>& v) {
  std::string bytes(v.size() * dtype_size(dt), '\0');
  for (size_t i = 0; i < v.size(); ++i) store_float(reinterpret_cast<uint8_t*>(bytes.data()), dt, i, v[i]);
  return {name, dt, std::move(shape), bytes};
}

inline EditTensor* find_tensor(std::vector<EditTensor>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return &t;
  return nullptr;
}

inline void drop_tensor(std::vector<EditTensor>& ts, const std::string& name) {
  std::erase_if(ts, [&](const EditTensor& t) { return t.name == name; });
}

// Writes `<dir>/<file>` (default model.safetensors) and, unless `config` is null, config.json.
inline void write_model(const std::string& dir, const std::vector<EditTensor>& ts, const nlohmann::json& config,
                        const std::string& file = "model.safetensors") {
  std::filesystem::create_directories(dir);
  std::vector<TensorSpec> specs;
  for (const auto& t : ts) specs.push_back({t.name, t.dtype, t.shape});
  SafetensorsWriter w(dir + "/" + file, specs);
  for (const auto& t : ts) w.append(t.bytes.data(), t.bytes.size());
  w.commit();
  if (!config.is_null()) write_bytes(dir + "/config.json", config.dump(2));
}

// The awq::Error message from opening `dir`, or "" when it opens.
inline std::string open_error(const std::string& dir) {
  try {
    ModelDir md(dir);
    auto r = open_format(md);
    for (const auto& m : r->modules()) r->read(m);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

// Expects opening `dir` to fail with every one of `parts` in the message.
inline void expect_open_error(const std::string& dir, std::initializer_list<std::string> parts) {
  const std::string e = open_error(dir);
  ASSERT_FALSE(e.empty()) << "opened a bad checkpoint";
  for (const auto& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "missing '" << p << "' in: " << e;
}

// Dense weight of module `m` in f32 (exact for the small values these tests use).
inline std::vector<float> dense_f32(const FormatReader& r, const std::string& m) {
  const QuantLinear q = r.read(m);
  q.validate();
  std::vector<float> out(size_t(q.n * q.k));
  dequantize_ref(q, DType::F32, reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

}  // namespace awq::test
