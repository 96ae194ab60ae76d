// Loading the runtime's weights: quantized linears through the format reader and repack (fused
// q|k|v and gate|up into one packed matrix when their quantization agrees), dense ones in place.
#include "model/weights.h"

#include <algorithm>
#include <cstring>

#include "awq/error.h"
#include "awq/model_ops.h"
#include "awq/thread_pool.h"

namespace awq::model {
namespace {

std::string shape_of(int64_t a, int64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + "]"; }

// HF tensor name -> stored tensor (identity except for layouts like TensorRT-LLM npz).
class Tensors {
 public:
  Tensors(const ModelDir& dir, const FormatReader* reader) : dir_(dir) {
    for (const TensorView* t : dir.tensors()) by_name_[reader ? reader->dense_tensor_name(t->name) : t->name] = t;
  }
  const TensorView* find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  const TensorView& get(const std::string& name, const std::string& what) const {
    const TensorView* t = find(name);
    if (!t) throw Error(dir_.path() + ": " + name + ": missing (" + what + ")");
    return *t;
  }

 private:
  const ModelDir& dir_;
  std::map<std::string, const TensorView*> by_name_;
};

void need_float(const TensorView& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
    throw Error(*t.file + ": " + t.name + ": expected F32, BF16 or F16, found " + std::string(dtype_name(t.dtype)));
}

std::vector<float> load_vector(const TensorView& t, int64_t n) {
  need_float(t);
  if (t.shape != std::vector<int64_t>{n})
    throw Error(*t.file + ": " + t.name + ": expected shape [" + std::to_string(n) + "], found " + t.shape_str());
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = load_float(t.data, t.dtype, size_t(i));
  return v;
}

Linear dense_linear(const TensorView& t, int64_t n, int64_t k) {
  need_float(t);
  if (t.shape != std::vector<int64_t>{n, k})
    throw Error(*t.file + ": " + t.name + ": expected shape " + shape_of(n, k) + ", found " + t.shape_str());
  Linear l;
  l.name = t.name;
  l.n = n;
  l.k = k;
  const size_t count = size_t(n) * size_t(k);
  const auto addr = reinterpret_cast<uintptr_t>(t.data);
  l.dtype = t.dtype;
  if (addr % dtype_size(t.dtype) == 0) {
    l.w = t.data;
  } else if (t.dtype == DType::F32) {
    l.owned_f32.resize(count);
    std::memcpy(l.owned_f32.data(), t.data, count * 4);
    l.w = l.owned_f32.data();
  } else {
    l.owned_16.resize(count);
    std::memcpy(l.owned_16.data(), t.data, count * 2);
    l.w = l.owned_16.data();
  }
  return l;
}

}  // namespace

bool same_quantization(const QuantLinear& a, const QuantLinear& b) {
  return a.k == b.k && a.bits == b.bits && a.group_size == b.group_size && a.per_channel == b.per_channel &&
         a.n_groups == b.n_groups && a.zero_mode == b.zero_mode && a.scale_dtype == b.scale_dtype &&
         a.g_idx == b.g_idx && a.pre_quant_scale == b.pre_quant_scale;
}

// Stacks the rows of linears with identical quantization (q, k, v or gate, up) into one.
QuantLinear concat_rows(std::vector<QuantLinear>& parts) {
  QuantLinear out = parts[0];
  const bool any_bias = std::any_of(parts.begin(), parts.end(), [](const QuantLinear& q) { return !q.bias.empty(); });
  if (any_bias && out.bias.empty()) out.bias.assign(size_t(out.n), 0.f);
  for (size_t i = 1; i < parts.size(); ++i) {
    const QuantLinear& p = parts[i];
    out.name += "+" + p.name;
    out.n += p.n;
    out.codes.insert(out.codes.end(), p.codes.begin(), p.codes.end());
    out.scales.insert(out.scales.end(), p.scales.begin(), p.scales.end());
    out.zeros.insert(out.zeros.end(), p.zeros.begin(), p.zeros.end());
    out.scaled_zeros.insert(out.scaled_zeros.end(), p.scaled_zeros.begin(), p.scaled_zeros.end());
    if (any_bias) {
      if (p.bias.empty()) out.bias.insert(out.bias.end(), size_t(p.n), 0.f);
      else out.bias.insert(out.bias.end(), p.bias.begin(), p.bias.end());
    }
  }
  out.validate();
  return out;
}

Linear packed_linear(const QuantLinear& q) {
  Linear l;
  l.name = q.name;
  l.n = q.n;
  l.k = q.k;
  l.packed = kernels::repack(q);
  return l;
}

void Embedding::row(int64_t id, int64_t hidden, float* dst) const {
  if (ggml) {
    dequantize_ggml(*ggml, data + size_t(id) * row_bytes, hidden, dst);
    return;
  }
  const size_t base = size_t(id) * size_t(hidden);
  for (int64_t i = 0; i < hidden; ++i) dst[i] = load_float(data, dtype, base + size_t(i));
}

namespace {

class Loader {
 public:
  Loader(const ModelConfig& cfg, const Weights& w) : cfg_(cfg), w_(w), tensors_(*w.dir, w.reader.get()) {}

  bool is_quantized(const std::string& module) const {
    if (!w_.reader) return false;
    const auto& m = w_.reader->modules();
    return std::binary_search(m.begin(), m.end(), module);
  }

  // The stored tensors of a module already read: drop their pages from this process's resident
  // set (the mapping stays valid and the pages stay in the page cache), so a loaded model's RSS is
  // its packed weights, not packed weights plus the whole checkpoint file. Tensors in owned memory
  // (a decrypted sealed file) are left alone by release_pages.
  void release_pages(const std::string& module) const {
    for (const std::string& name : w_.reader->module_tensors(module))
      if (const TensorView* t = w_.dir->find(name)) awq::release_pages(*t);
  }

  QuantLinear read_quant(const std::string& module, int64_t n, int64_t k) const {
    QuantLinear q = w_.reader->read(module);
    release_pages(module);
    if (q.n != n || q.k != k)
      throw Error(w_.dir->path() + ": " + module + ": the config implies " + std::to_string(n) + " outputs x " +
                  std::to_string(k) + " inputs, the checkpoint stores " + std::to_string(q.n) + " x " +
                  std::to_string(q.k));
    return q;
  }

  // One linear, quantized or dense, with its bias when the config says it has one.
  Linear linear(const std::string& module, int64_t n, int64_t k, bool has_bias) const {
    if (is_quantized(module)) {
      QuantLinear q = read_quant(module, n, k);
      check_quant_bias(q, has_bias);
      return packed_linear(q);
    }
    Linear l = dense_linear(tensors_.get(module + ".weight", "a dense weight of " + shape_of(n, k)), n, k);
    if (has_bias) l.bias = load_vector(tensors_.get(module + ".bias", "the config says this layer has a bias"), n);
    return l;
  }

  void check_quant_bias(QuantLinear& q, bool has_bias) const {
    if (has_bias && q.bias.empty())
      throw Error(w_.dir->path() + ": " + q.name + ".bias: missing (the config says this layer has a bias)");
    if (!has_bias) q.bias.clear();  // transformers ignores a stored bias the config does not declare
  }

  LinearGroup group(int64_t layer, std::initializer_list<LayerLinear> which) const {
    LinearGroup g;
    bool all_quant = true;
    for (LayerLinear l : which) all_quant = all_quant && is_quantized(cfg_.linear_name(layer, l));
    if (all_quant && which.size() > 1) {
      std::vector<QuantLinear> qs;
      for (LayerLinear l : which) {
        const auto [n, k] = cfg_.linear_shape(l);
        qs.push_back(read_quant(cfg_.linear_name(layer, l), n, k));
        check_quant_bias(qs.back(), cfg_.linear_has_bias(l));
      }
      bool same = true;
      for (const auto& q : qs) same = same && same_quantization(q, qs[0]);
      if (same) {
        g.parts.push_back(packed_linear(concat_rows(qs)));
      } else {
        for (const auto& q : qs) g.parts.push_back(packed_linear(q));
      }
    } else {
      for (LayerLinear l : which) {
        const auto [n, k] = cfg_.linear_shape(l);
        g.parts.push_back(linear(cfg_.linear_name(layer, l), n, k, cfg_.linear_has_bias(l)));
      }
    }
    g.k = g.parts[0].k;
    for (const auto& p : g.parts) g.n += p.n;
    return g;
  }

  std::vector<float> norm(const std::string& pattern, int64_t layer, int64_t n) const {
    return load_vector(tensors_.get(ModelConfig::layer_name(pattern, layer), "a norm weight"), n);
  }

  LayerWeights layer(int64_t i) const {
    using L = LayerLinear;
    const TensorNames& nm = cfg_.names;
    LayerWeights lw;
    lw.attn_norm = norm(nm.attn_norm, i, cfg_.hidden);
    lw.mlp_norm = norm(nm.mlp_norm, i, cfg_.hidden);
    if (cfg_.qk_norm) {
      lw.q_norm = norm(nm.q_norm, i, cfg_.head_dim);
      lw.k_norm = norm(nm.k_norm, i, cfg_.head_dim);
    }
    lw.qkv = group(i, {L::kQ, L::kK, L::kV});
    lw.o = group(i, {L::kO});
    lw.gate_up = group(i, {L::kGate, L::kUp});
    lw.down = group(i, {L::kDown});
    return lw;
  }

  // Everything but the layers into `w` (the loader's own Weights, written only here).
  void load_globals(Weights& w) const {
    const TensorNames& nm = cfg_.names;
    const TensorView& embed = tensors_.get(nm.embed, "the token embeddings");
    need_float(embed);
    if (embed.shape != std::vector<int64_t>{cfg_.vocab, cfg_.hidden})
      throw Error(*embed.file + ": " + embed.name + ": expected shape " + shape_of(cfg_.vocab, cfg_.hidden) +
                  " (vocab_size x hidden_size), found " + embed.shape_str());
    w.embed.data = embed.data;
    w.embed.dtype = embed.dtype;
    w.final_norm = load_vector(tensors_.get(nm.final_norm, "the final norm"), cfg_.hidden);
    const std::string head_module = nm.lm_head.substr(0, nm.lm_head.size() - std::string(".weight").size());
    if (is_quantized(head_module)) {
      w.lm_head = packed_linear(read_quant(head_module, cfg_.vocab, cfg_.hidden));
    } else if (cfg_.tied_embeddings) {
      w.lm_head = dense_linear(embed, cfg_.vocab, cfg_.hidden);
    } else {
      w.lm_head = dense_linear(tensors_.get(nm.lm_head, "tie_word_embeddings is false"), cfg_.vocab, cfg_.hidden);
    }
    // Quantized: any linear is 4-bit (known from the reader's module list, without loading layers).
    w.quantized = w.lm_head.packed.has_value();
    for (int64_t i = 0; i < cfg_.layers && !w.quantized; ++i)
      for (LayerLinear l : {LayerLinear::kQ, LayerLinear::kK, LayerLinear::kV, LayerLinear::kO, LayerLinear::kGate,
                            LayerLinear::kUp, LayerLinear::kDown})
        w.quantized = w.quantized || is_quantized(cfg_.linear_name(i, l));
  }

 private:
  const ModelConfig& cfg_;
  const Weights& w_;
  Tensors tensors_;
};

}  // namespace

void Linear::apply(const float* x, int64_t m, float* y, kernels::Path path, ThreadPool& parallel,
                   double serial_scale) const {
  // Below ~256 KiB of weight traffic (× rows) a parallel region's wake-up and join cost more than
  // the product: run it on the calling thread (a pool of one runs its tasks inline).
  static ThreadPool inline_pool(1);
  ThreadPool& pool = double(weight_bytes()) * double(m) < double(kMinParallelBytes) * serial_scale ? inline_pool : parallel;
  if (packed) {
    kernels::gemm(*packed, x, DType::F32, m, y, DType::F32, {path, &pool});
    return;
  }
  if (dtype == DType::BF16) {
    kernels::dense_bf16_gemm(static_cast<const uint16_t*>(w), n, k, x, m, y, &pool);
  } else if (dtype == DType::F16) {
    kernels::dense_f16_gemm(static_cast<const uint16_t*>(w), n, k, x, m, y, &pool);
  } else {
    kernels::dense_f32_gemm(static_cast<const float*>(w), n, k, x, m, y, &pool);
  }
  if (!bias.empty())
    for (int64_t r = 0; r < m; ++r)
      for (int64_t i = 0; i < n; ++i) y[r * n + i] += bias[size_t(i)];
}

size_t Linear::weight_bytes() const {
  if (packed) return packed->weight_bytes();
  return size_t(n) * size_t(k) * dtype_size(dtype);
}

void LinearGroup::apply(const float* x, int64_t m, float* y, float* tmp, kernels::Path path, ThreadPool& pool,
                        double serial_scale) const {
  if (parts.size() == 1) {
    parts[0].apply(x, m, y, path, pool, serial_scale);
    return;
  }
  int64_t col = 0;
  for (const Linear& p : parts) {
    p.apply(x, m, tmp, path, pool, serial_scale);
    for (int64_t r = 0; r < m; ++r) std::memcpy(y + r * n + col, tmp + r * p.n, size_t(p.n) * sizeof(float));
    col += p.n;
  }
}

Weights load_weights(const std::string& path, const ModelConfig& cfg, bool with_layers) {
  Weights w;
  w.dir = std::make_unique<ModelDir>(path);
  if (!w.dir->quant_config().is_null() || w.dir->hf_quant_config().is_object()) w.reader = open_format(*w.dir);
  Loader loader(cfg, w);
  loader.load_globals(w);
  if (with_layers)
    for (int64_t i = 0; i < cfg.layers; ++i) w.layers.push_back(loader.layer(i));
  return w;
}

LayerWeights load_layer(const Weights& w, const ModelConfig& cfg, int64_t i) {
  return w.gguf ? load_gguf_layer(w, cfg, i) : Loader(cfg, w).layer(i);
}

size_t layer_bytes(const LayerWeights& l) {
  size_t b = (l.attn_norm.size() + l.mlp_norm.size() + l.q_norm.size() + l.k_norm.size()) * sizeof(float);
  for (const LinearGroup* g : {&l.qkv, &l.o, &l.gate_up, &l.down})
    for (const auto& p : g->parts) b += p.weight_bytes() + p.bias.size() * sizeof(float);
  return b;
}

}  // namespace awq::model
