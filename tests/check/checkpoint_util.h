// Test helpers for building defective checkpoints from golden ones (header-only).
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "awq/dtype.h"
#include "awq/safetensors.h"
#include "test_util.h"

namespace awq::test {

// A copy of tests/data/golden/<name>/model (or tests/data/<name> when that is a model dir) in a
// temporary directory, with editors for its tensors, config and sharding.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& golden) {
    std::string src = data_path("golden/" + golden + "/model");
    if (!std::filesystem::exists(src)) src = data_path(golden);
    copy_dir(src, dir());
  }
  std::string dir() const { return tmp_ / "m"; }
  std::string file(const std::string& n) const { return dir() + "/" + n; }
  void edit_tensors(const std::function<void(std::vector<EditTensor>&)>& fn,
                    std::map<std::string, std::string> metadata = {{"format", "pt"}}) {
    rewrite_safetensors(file("model.safetensors"), fn, std::move(metadata));
  }
  void edit_config(const std::function<void(nlohmann::json&)>& fn) { edit_json(file("config.json"), fn); }
  // Splits model.safetensors into n shards with a correct model.safetensors.index.json.
  void shard(size_t n) {
    std::vector<EditTensor> ts;
    {
      SafetensorsFile f(file("model.safetensors"));
      for (const auto& t : f.tensors())
        ts.push_back({t.name, t.dtype, t.shape, std::string(reinterpret_cast<const char*>(t.data), t.nbytes)});
    }
    nlohmann::json idx;
    uint64_t total = 0;
    for (size_t s = 0; s < n; ++s) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, n);
      std::vector<TensorSpec> specs;
      std::vector<const EditTensor*> mine;
      for (size_t i = s; i < ts.size(); i += n) {
        specs.push_back({ts[i].name, ts[i].dtype, ts[i].shape});
        mine.push_back(&ts[i]);
        idx["weight_map"][ts[i].name] = name;
        total += ts[i].bytes.size();
      }
      SafetensorsWriter w(file(name), specs);
      for (const auto* t : mine) w.append(t->bytes.data(), t->bytes.size());
      w.commit();
    }
    idx["metadata"]["total_size"] = total;
    write_bytes(file("model.safetensors.index.json"), idx.dump(2));
    std::filesystem::remove(file("model.safetensors"));
  }

 private:
  TempDir tmp_;
};

inline EditTensor& tensor(std::vector<EditTensor>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return t;
  throw std::runtime_error("test: no tensor " + name);
}
inline void erase(std::vector<EditTensor>& ts, const std::string& name) {
  std::erase_if(ts, [&](const EditTensor& t) { return t.name == name; });
}
inline void set_f16(EditTensor& t, size_t i, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(t.bytes.data() + 2 * i, &h, 2);
}
inline void set_f32(EditTensor& t, size_t i, float v) { std::memcpy(t.bytes.data() + 4 * i, &v, 4); }
inline void set_u32(EditTensor& t, size_t i, uint32_t v) { std::memcpy(t.bytes.data() + 4 * i, &v, 4); }
// Repacks a 4-bit GPTQ checkpoint's codes and zero points into the 8-bit GPTQ layout (qweight
// [K/4, N], qzeros [ng, N/4], one byte per value): the same values, now stored 8 bits wide, so
// the dense weights are unchanged and only the bit width differs.
inline void gptq_repack_8bit(std::vector<EditTensor>& ts) {
  auto u32 = [](const EditTensor& t, size_t i) {
    uint32_t w;
    std::memcpy(&w, t.bytes.data() + 4 * i, 4);
    return w;
  };
  for (auto& t : ts) {
    const bool qw = t.name.ends_with(".qweight"), qz = t.name.ends_with(".qzeros");
    if (!qw && !qz) continue;
    const int64_t rows = t.shape[0], cols = t.shape[1];
    if (qw) {  // [K/8, N] -> [K/4, N], packed along K
      std::string out(size_t(rows * 2 * cols) * 4, '\0');
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t n = 0; n < cols; ++n)
          for (int i = 0; i < 8; ++i) {
            const uint32_t v = (u32(t, size_t(r * cols + n)) >> (4 * i)) & 15u;
            const int64_t k = 8 * r + i;
            uint32_t w;
            std::memcpy(&w, out.data() + 4 * size_t((k / 4) * cols + n), 4);
            w |= v << (8 * (k % 4));
            std::memcpy(out.data() + 4 * size_t((k / 4) * cols + n), &w, 4);
          }
      t.bytes = out;
      t.shape = {rows * 2, cols};
    } else {  // [ng, N/8] -> [ng, N/4], packed along N
      std::string out(size_t(rows * cols * 2) * 4, '\0');
      for (int64_t g = 0; g < rows; ++g)
        for (int64_t c = 0; c < cols; ++c)
          for (int i = 0; i < 8; ++i) {
            const uint32_t v = (u32(t, size_t(g * cols + c)) >> (4 * i)) & 15u;
            const int64_t n = 8 * c + i;
            uint32_t w;
            std::memcpy(&w, out.data() + 4 * size_t(g * cols * 2 + n / 4), 4);
            w |= v << (8 * (n % 4));
            std::memcpy(out.data() + 4 * size_t(g * cols * 2 + n / 4), &w, 4);
          }
      t.bytes = out;
      t.shape = {rows, cols * 2};
    }
  }
}

// Repacks a symmetric 4-bit compressed-tensors checkpoint into 8 bits: weight_packed [N, K/8]
// (offset binary q + 8) becomes [N, K/4] (q + 128), the same signed codes 8 bits wide.
inline void ct_repack_8bit(std::vector<EditTensor>& ts) {
  for (auto& t : ts) {
    if (!t.name.ends_with(".weight_packed")) continue;
    const int64_t n = t.shape[0], words = t.shape[1];
    std::string out(size_t(n * words * 2) * 4, '\0');
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < words; ++c) {
        uint32_t w;
        std::memcpy(&w, t.bytes.data() + 4 * size_t(r * words + c), 4);
        for (int i = 0; i < 8; ++i) {
          const uint32_t u8 = uint32_t(int32_t((w >> (4 * i)) & 15u) - 8 + 128);
          const int64_t k = 8 * c + i;
          const size_t at = 4 * size_t(r * words * 2 + k / 4);
          uint32_t o;
          std::memcpy(&o, out.data() + at, 4);
          o |= u8 << (8 * (k % 4));
          std::memcpy(out.data() + at, &o, 4);
        }
      }
    t.bytes = out;
    t.shape[1] = words * 2;
  }
}

// Converts an F16 tensor to F32 in place.
inline void to_f32(EditTensor& t) {
  std::string out(t.bytes.size() * 2, '\0');
  for (size_t i = 0; i < t.bytes.size() / 2; ++i) {
    const float f = load_float(reinterpret_cast<const uint8_t*>(t.bytes.data()), DType::F16, i);
    std::memcpy(out.data() + 4 * i, &f, 4);
  }
  t.bytes = out;
  t.dtype = DType::F32;
}

}  // namespace awq::test
