// Helpers for the eval/compare tests (header-only).
#pragma once
#include <cstring>
#include <stdexcept>
#include <string>

#include "awq/dequantize_model.h"
#include "awq/dtype.h"
#include "awq/formats.h"
#include "test_util.h"

namespace awq::test {

// Writes MODEL's own exact f32 dequantization to `out_dir` (a dense REF for compare/eval) and
// returns `out_dir`.
inline std::string dense_reference(const std::string& model, const std::string& out_dir) {
  ModelDir dir(model);
  auto reader = open_format(dir);
  DequantizeOptions opt;
  opt.out_dir = out_dir;
  opt.dtype = DType::F32;
  opt.progress = false;
  dequantize_model(dir, *reader, opt);
  return out_dir;
}

// Multiplies every f16 value of `module`.scales in the safetensors file by `factor` (a damaged
// layer: a constant-factor scale error). Throws when the tensor is missing or not F16.
inline void multiply_scales(const std::string& safetensors_file, const std::string& module, float factor) {
  bool found = false;
  rewrite_safetensors(safetensors_file, [&](std::vector<EditTensor>& ts) {
    for (EditTensor& t : ts) {
      if (t.name != module + ".scales") continue;
      if (t.dtype != DType::F16) throw std::runtime_error("test: " + t.name + " is not F16");
      for (size_t i = 0; i + 1 < t.bytes.size(); i += 2) {
        uint16_t h;
        std::memcpy(&h, &t.bytes[i], 2);
        h = f32_to_f16(factor * f16_to_f32(h));
        std::memcpy(&t.bytes[i], &h, 2);
      }
      found = true;
    }
  });
  if (!found) throw std::runtime_error("test: no tensor " + module + ".scales in " + safetensors_file);
}

}  // namespace awq::test
