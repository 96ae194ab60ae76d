// `awq dequantize FILE.gguf` (dequantize_model.h dequantize_gguf).
#include <algorithm>
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

namespace awq {
using namespace convert_detail;

DequantizeResult dequantize_gguf(const std::string& path, const DequantizeOptions& opt) {
  auto file = std::make_shared<GgufFile>(path);
  const nlohmann::json config = hf_config_from_gguf(*file);
  const ModelConfig cfg = parse_model_config(config, path + " (metadata)");
  DequantizeResult res;
  res.dtype = opt.dtype.value_or(DType::F16);
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
    plan.push_back({{n.hf, dt, shape}, [file, &t, n, dt, shape](SafetensorsWriter& w) {
                      std::vector<float> x(size_t(t.numel()));
                      dequantize_ggml(t.type, t.data, t.numel(), x.data());
                      const int64_t rows = shape[0], cols = shape.size() == 2 ? shape[1] : 1;
                      std::vector<uint8_t> out(x.size() * dtype_size(dt));
                      for (int64_t r = 0; r < rows; ++r) {
                        // GGUF row r holds HF row src(r) (llama.cpp's converter permuted them).
                        const int64_t hf_row = n.permute_heads > 0 ? gguf_permuted_source_row(r, rows, n.permute_heads) : r;
                        for (int64_t c = 0; c < cols; ++c) store_float(out.data(), dt, size_t(hf_row * cols + c), x[size_t(r * cols + c)]);
                      }
                      w.append(out.data(), out.size());
                    }});
    ++res.modules;
  }
  write_dequantized(std::move(plan), path, nlohmann::ordered_json::parse(config.dump()), {}, needs, opt, res);
  return res;
}

}  // namespace awq
