// `awq dequantize FILE.gguf` (dequantize_model.h dequantize_gguf).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "awq/dequantize_model.h"
#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/gguf_arch.h"
#include "awq/model_config.h"
#include "convert/dequantize_output.h"
#include "convert/value_guard.h"

namespace awq {
using namespace convert_detail;

namespace {

// A finite value of GGUF tensor `name` (x, as stored) that `dt` cannot hold (it would be Inf):
// refused naming the first (row, column), the largest |x| and the dtypes that hold it.
[[noreturn]] void refuse_overflow(const std::string& path, const std::string& name, const std::vector<float>& x, int64_t row, int64_t col,
                                  DType dt) {
  double max_abs = 0;
  for (float v : x)
    if (std::isfinite(v)) max_abs = std::max(max_abs, double(std::fabs(v)));
  std::string to(dtype_name(dt));
  for (auto& ch : to) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  char m[32];
  std::snprintf(m, sizeof m, "%.6g", max_abs);
  fail(path, name, std::string("dequantized values reach |x| = ") + m + " (first overflow at row " + std::to_string(row) + ", column " +
                       std::to_string(col) + "), which " + to + " cannot hold (they would be written as Inf); use --dtype " +
                       dtypes_holding(max_abs));
}

}  // namespace

DequantizeResult dequantize_gguf(const std::string& path, const DequantizeOptions& opt) {
  auto file = std::make_shared<GgufFile>(path);
  const nlohmann::json config = hf_config_from_gguf(*file);
  const ModelConfig cfg = parse_model_config(config, path + " (metadata)");
  DequantizeResult res;
  res.dtype = opt.dtype.value_or(DType::F16);
  auto policy = std::make_shared<NonfinitePolicy>();
  policy->file = path;
  policy->allow = opt.allow_nonfinite;
  if (!opt.nonfinite_remedy.empty()) policy->remedy = opt.nonfinite_remedy;
  const DType dt = res.dtype;
  std::map<std::string, GgufTensorName> by_gguf;
  for (const auto& n : gguf_tensor_names(cfg)) by_gguf[n.gguf] = n;
  std::vector<OutTensor> plan;
  ResourceNeeds needs;
  needs.out_dir = opt.out_dir;
  for (const GgufTensorInfo& t : file->tensors()) {
    if (t.name == "rope_freqs.weight") continue;
    auto it = by_gguf.find(t.name);
    if (it == by_gguf.end()) fail(path, t.name, "has no Hugging Face name for " + cfg.architecture + " (not dequantized; nothing written)");
    const auto info = ggml_type_info(uint32_t(t.type));
    if (!info || !info->dequantizable) fail(path, t.name, "type " + ggml_type_name(t.type) + " is not supported (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, F16, BF16, F32 are)");
    if (t.ne.size() > 2) fail(path, t.name, "expected 1 or 2 dimensions, found " + t.shape_str());
    std::vector<int64_t> shape = t.ne.size() == 2 ? std::vector<int64_t>{t.ne[1], t.ne[0]} : std::vector<int64_t>{t.ne[0]};
    const GgufTensorName n = it->second;
    if (const uint64_t ws = uint64_t(t.numel()) * (sizeof(float) + dtype_size(dt)); ws > needs.tensor_bytes) {
      needs.tensor_bytes = ws;  // its f32 values and its output rows, at once
      needs.tensor = n.hf;
    }
    plan.push_back({{n.hf, dt, shape}, [file, &t, n, dt, shape, policy, path](SafetensorsWriter& w) {
                      std::vector<float> x(size_t(t.numel()));
                      dequantize_ggml(t.type, t.data, t.numel(), x.data());
                      const int64_t rows = shape[0], cols = shape.size() == 2 ? shape[1] : 1;
                      // NaN/Inf in what ggml's dequantization gives (a NaN/Inf f16 scale, an Inf
                      // tensor value): refused, or carried through with a warning (--allow-nonfinite).
                      // Positions are the GGUF tensor's own (rows as stored).
                      guard_nonfinite(*policy, t.name, scan_nonfinite(x, shape.size() == 2 ? cols : 0, "column"), "values");
                      std::vector<uint8_t> out(x.size() * dtype_size(dt));
                      for (int64_t r = 0; r < rows; ++r) {
                        // GGUF row r holds HF row src(r) (llama.cpp's converter permuted them).
                        const int64_t hf_row = n.permute_heads > 0 ? gguf_permuted_source_row(r, rows, n.permute_heads) : r;
                        for (int64_t c = 0; c < cols; ++c) {
                          const float v = x[size_t(r * cols + c)];
                          store_float(out.data(), dt, size_t(hf_row * cols + c), v);
                          if (std::isfinite(v) && !std::isfinite(load_float(out.data(), dt, size_t(hf_row * cols + c))))
                            refuse_overflow(path, t.name, x, r, c, dt);
                        }
                      }
                      w.append(out.data(), out.size());
                    }});
    ++res.modules;
  }
  write_dequantized(std::move(plan), path, nlohmann::ordered_json::parse(config.dump()), {}, needs, opt, res);
  res.warnings = policy->warnings;
  return res;
}

}  // namespace awq
