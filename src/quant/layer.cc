#include "quant/layer.h"

#include <cmath>
#include <string>

#include "awq/error.h"
#include "awq/safetensors.h"

namespace awq::quant_detail {

std::vector<float> tensor_f32(const TensorView& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
    fail(t.file ? *t.file : "", t.name, std::string("has dtype ") + std::string(dtype_name(t.dtype)) + "; quantize reads f32, bf16 or f16");
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = load_float(t.data, t.dtype, i);
  return v;
}

namespace {

void check_finite(const TensorView& t, std::vector<float>& w, int64_t k, int64_t group_size, bool zero, size_t* zeroed) {
  for (size_t i = 0; i < w.size(); ++i) {
    if (std::isfinite(w[i])) continue;
    if (!zero) {
      const int64_t row = int64_t(i) / k, col = int64_t(i) % k;
      fail(t.file ? *t.file : "", t.name,
           "holds " + std::string(std::isnan(w[i]) ? "NaN" : "Inf") + " at row " + std::to_string(row) + ", group " +
               std::to_string(col / group_size) + " (column " + std::to_string(col) +
               "); --sanitize zero replaces non-finite weights by 0");
    }
    w[i] = 0;
    if (zeroed) ++*zeroed;
  }
}

}  // namespace

LayerTensors load_layer(const ModelDir& dir, const ModelConfig& cfg, int64_t layer, int64_t group_size,
                        bool zero_nonfinite, size_t* zeroed) {
  LayerTensors L;
  L.layer = layer;
  for (LayerLinear which : kAllLayerLinears) {
    const int i = li(which);
    const std::string name = cfg.linear_name(layer, which);
    const TensorView& t = dir.get(name + ".weight");
    const auto [n, k] = cfg.linear_shape(which);
    if (t.shape.size() != 2 || t.shape[0] != n || t.shape[1] != k)
      fail(dir.path(), t.name, "has shape " + t.shape_str() + ", config.json implies [" + std::to_string(n) + ", " + std::to_string(k) + "]");
    L.n[size_t(i)] = n;
    L.k[size_t(i)] = k;
    L.w[size_t(i)] = tensor_f32(t);
    release_pages(t);  // the f32 copy is what is used: the mapped pages leave the resident set (7B: 400 MB a layer)
    check_finite(t, L.w[size_t(i)], k, group_size, zero_nonfinite, zeroed);
    if (const TensorView* b = dir.find(name + ".bias")) L.b[size_t(i)] = tensor_f32(*b);
  }
  L.attn_norm = tensor_f32(dir.get(ModelConfig::layer_name(cfg.names.attn_norm, layer)));
  L.mlp_norm = tensor_f32(dir.get(ModelConfig::layer_name(cfg.names.mlp_norm, layer)));
  if (cfg.qk_norm) {
    L.q_norm = tensor_f32(dir.get(ModelConfig::layer_name(cfg.names.q_norm, layer)));
    L.k_norm = tensor_f32(dir.get(ModelConfig::layer_name(cfg.names.k_norm, layer)));
  }
  return L;
}

}  // namespace awq::quant_detail
