// Helpers for the eval/compare tests (header-only).
#pragma once
#include <string>

#include "awq/dequantize_model.h"
#include "awq/formats.h"

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

}  // namespace awq::test
