// Loading the runtime's weights from a GGUF file (weights.h load_gguf_weights): the block types
// the 4-bit kernels hold exactly (Q4_0, Q4_1, Q4_K; gguf_linear.h) are repacked, every other type
// is dense (F32/F16/BF16 in place, the rest dequantized with ggml's arithmetic to f32), q/k rows
// that llama.cpp's converter permuted are put back in Hugging Face's order. See docs/GGUF.md.
#include <algorithm>
#include <cstring>
#include <map>

#include "awq/error.h"
#include "awq/gguf_arch.h"
#include "awq/gguf_linear.h"
#include "model/weights.h"

namespace awq::model {
namespace {

bool is_dense_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

DType dtype_of(GgmlType t) { return t == GgmlType::F32 ? DType::F32 : t == GgmlType::F16 ? DType::F16 : DType::BF16; }

// A loaded linear before grouping: quantized (kept as a QuantLinear so q|k|v can be stacked) or dense.
struct Part {
  std::optional<QuantLinear> quant;
  Linear dense;
};

class GgufLoader {
 public:
  GgufLoader(const ModelConfig& cfg, const Weights& w) : cfg_(cfg), f_(*w.gguf) {
    for (const GgufTensorName& n : gguf_tensor_names(cfg)) names_[n.hf] = n;
  }

  // Everything but the decoder layers, and the notes saying how each type is run (counted from
  // the tensor directory, so they are the same whether the layers load now or stream later).
  void load_globals(Weights& w) const {
    const TensorNames& nm = cfg_.names;
    const GgufTensorInfo& emb = get(nm.embed, "the token embeddings");
    expect_shape(emb, {cfg_.hidden, cfg_.vocab}, "vocab_size x hidden_size");
    need_dequantizable(emb);
    w.embed.data = emb.data;
    if (is_dense_type(emb.type)) {
      w.embed.dtype = dtype_of(emb.type);
    } else {
      w.embed.ggml = emb.type;
      w.embed.row_bytes = ggml_nbytes(emb.type, cfg_.hidden);
    }
    w.notes.push_back(emb.name + ": " + ggml_type_name(emb.type) + (is_dense_type(emb.type) ? ", rows read in place" : ", each row dequantized as ggml does when looked up"));
    w.final_norm = norm_vector(nm.final_norm, cfg_.hidden, 0);
    const std::string head = cfg_.tied_embeddings ? nm.embed : nm.lm_head;
    Part h = part(head, cfg_.vocab, cfg_.hidden, 0, false);
    w.lm_head = h.quant ? packed_linear(*h.quant) : std::move(h.dense);
    w.quantized = w.lm_head.packed.has_value();
    std::map<std::string, int> kernel_linears, dense_linears;
    auto count = [&](const std::string& hf) {
      const GgufTensorInfo& t = get(hf, "a linear weight");
      ++(gguf_maps_to_quant_linear(t.type) ? kernel_linears : dense_linears)[ggml_type_name(t.type)];
      w.quantized = w.quantized || gguf_maps_to_quant_linear(t.type);
    };
    count(head);
    for (int64_t i = 0; i < cfg_.layers; ++i)
      for (LayerLinear l : kAllLayerLinears) count(cfg_.linear_name(i, l) + ".weight");
    for (const auto& [type, n] : kernel_linears)
      w.notes.push_back(type + ": " + std::to_string(n) + " linear(s) on the 4-bit kernels as they are stored (groups of 32, every code kept)");
    for (const auto& [type, n] : dense_linears)
      w.notes.push_back(type + ": " + std::to_string(n) + " linear(s) " +
                         (type == "f32" || type == "f16" || type == "bf16" ? "dense, read in place or copied"
                                                                           : "dequantized as ggml does to dense f32 (the 4-bit kernels cannot hold this type)"));
  }

  // Decoder layer i alone (safe from several threads: it only reads the file).
  LayerWeights layer(int64_t i) const {
    using L = LayerLinear;
    const TensorNames& nm = cfg_.names;
    LayerWeights lw;
    lw.attn_norm = norm_vector(ModelConfig::layer_name(nm.attn_norm, i), cfg_.hidden, 0);
    lw.mlp_norm = norm_vector(ModelConfig::layer_name(nm.mlp_norm, i), cfg_.hidden, 0);
    if (cfg_.qk_norm) {
      lw.q_norm = norm_vector(ModelConfig::layer_name(nm.q_norm, i), cfg_.head_dim, 0);
      lw.k_norm = norm_vector(ModelConfig::layer_name(nm.k_norm, i), cfg_.head_dim, 0);
    }
    lw.qkv = group(i, {L::kQ, L::kK, L::kV});
    lw.o = group(i, {L::kO});
    lw.gate_up = group(i, {L::kGate, L::kUp});
    lw.down = group(i, {L::kDown});
    return lw;
  }

 private:
  const GgufTensorInfo& get(const std::string& hf, const std::string& what) const {
    auto it = names_.find(hf);
    const GgufTensorInfo* t = it == names_.end() ? nullptr : f_.tensor(it->second.gguf);
    if (!t) fail(f_.path(), it == names_.end() ? hf : it->second.gguf, "missing (" + what + ")");
    return *t;
  }
  int64_t permute_heads(const std::string& hf) const {
    auto it = names_.find(hf);
    return it == names_.end() ? 0 : it->second.permute_heads;
  }
  void expect_shape(const GgufTensorInfo& t, std::vector<int64_t> ne, const std::string& what) const {
    if (t.ne != ne) {
      GgufTensorInfo e;
      e.ne = ne;
      fail(f_.path(), t.name, "expected shape " + e.shape_str() + " (ggml order; " + what + "), found " + t.shape_str());
    }
  }
  void need_dequantizable(const GgufTensorInfo& t) const {
    const auto info = ggml_type_info(uint32_t(t.type));
    if (!info || !info->dequantizable)
      fail(f_.path(), t.name, "type " + ggml_type_name(t.type) + " is not supported (q4_0, q4_1, q4_K, q8_0, q6_K, f16, bf16, f32 are)");
  }
  // Every element of t dequantized as ggml does, rows put back in HF order when permuted.
  std::vector<float> values(const GgufTensorInfo& t, int64_t rows, int64_t cols, int64_t heads) const {
    need_dequantizable(t);
    std::vector<float> x(size_t(rows) * size_t(cols)), out;
    dequantize_ggml(t.type, t.data, rows * cols, x.data());
    if (heads == 0) return x;
    out.resize(x.size());
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(out.data() + gguf_permuted_source_row(r, rows, heads) * cols, x.data() + r * cols, size_t(cols) * 4);
    return out;
  }

  std::vector<float> norm_vector(const std::string& hf, int64_t n, int64_t heads) const {
    const GgufTensorInfo& t = get(hf, "a norm or bias");
    expect_shape(t, {n}, "one value per channel");
    return values(t, n, 1, heads);
  }

  // Rows of a QuantLinear put back in HF order (each row carries its own groups).
  static void unpermute_rows(QuantLinear& q, int64_t heads) {
    QuantLinear src = q;
    const size_t k = size_t(q.k), g = size_t(q.n_groups);
    for (int64_t r = 0; r < q.n; ++r) {
      const size_t to = size_t(gguf_permuted_source_row(r, q.n, heads));
      std::copy_n(src.codes.begin() + ptrdiff_t(size_t(r) * k), k, q.codes.begin() + ptrdiff_t(to * k));
      std::copy_n(src.scales.begin() + ptrdiff_t(size_t(r) * g), g, q.scales.begin() + ptrdiff_t(to * g));
      if (!q.scaled_zeros.empty())
        std::copy_n(src.scaled_zeros.begin() + ptrdiff_t(size_t(r) * g), g, q.scaled_zeros.begin() + ptrdiff_t(to * g));
      if (!q.zeros.empty()) std::copy_n(src.zeros.begin() + ptrdiff_t(size_t(r) * g), g, q.zeros.begin() + ptrdiff_t(to * g));
    }
  }

  // One linear [n][k] stored under the HF weight name `hf` (a ".weight"), with its bias.
  Part part(const std::string& hf, int64_t n, int64_t k, int64_t heads, bool has_bias) const {
    const GgufTensorInfo& t = get(hf, "a linear weight");
    expect_shape(t, {k, n}, "in_features, out_features");
    Part p;
    std::vector<float> bias;
    if (has_bias) bias = norm_vector(hf.substr(0, hf.size() - 7) + ".bias", n, heads);
    if (gguf_maps_to_quant_linear(t.type)) {
      QuantLinear q = gguf_quant_linear(t, f_.path(), hf.substr(0, hf.size() - 7));
      if (heads > 0) unpermute_rows(q, heads);
      q.bias = std::move(bias);
      q.bias_dtype = DType::F32;
      f_.release_pages(t);  // copied out: a streaming model's RSS is its layers, not the file
      p.quant = std::move(q);
      return p;
    }
    Linear& l = p.dense;
    l.name = t.name;
    l.n = n;
    l.k = k;
    l.bias = std::move(bias);
    if (is_dense_type(t.type) && heads == 0) {  // in place (GGUF data is aligned to >= 32 bytes)
      l.dtype = dtype_of(t.type);
      l.w = t.data;
      if (reinterpret_cast<uintptr_t>(t.data) % dtype_size(l.dtype) == 0) return p;
    }
    if (t.type == GgmlType::F16 || t.type == GgmlType::BF16) {  // a 16-bit copy, rows in HF order
      l.dtype = dtype_of(t.type);
      l.owned_16.resize(size_t(n) * size_t(k));
      for (int64_t r = 0; r < n; ++r)
        std::memcpy(l.owned_16.data() + (heads ? gguf_permuted_source_row(r, n, heads) : r) * k, t.data + size_t(r * k) * 2, size_t(k) * 2);
      l.w = l.owned_16.data();
      f_.release_pages(t);
      return p;
    }
    l.dtype = DType::F32;
    l.owned_f32 = values(t, n, k, heads);
    l.w = l.owned_f32.data();
    f_.release_pages(t);
    return p;
  }

  LinearGroup group(int64_t layer, std::initializer_list<LayerLinear> which) const {
    std::vector<Part> parts;
    for (LayerLinear l : which) {
      const auto [n, k] = cfg_.linear_shape(l);
      const std::string hf = cfg_.linear_name(layer, l) + ".weight";
      parts.push_back(part(hf, n, k, permute_heads(hf), cfg_.linear_has_bias(l)));
    }
    bool fuse = parts.size() > 1;
    for (const Part& p : parts) fuse = fuse && p.quant && same_quantization(*p.quant, *parts[0].quant);
    LinearGroup g;
    if (fuse) {
      std::vector<QuantLinear> qs;
      for (Part& p : parts) qs.push_back(std::move(*p.quant));
      g.parts.push_back(packed_linear(concat_rows(qs)));
    } else {
      for (Part& p : parts) g.parts.push_back(p.quant ? packed_linear(*p.quant) : std::move(p.dense));
    }
    g.k = g.parts[0].k;
    for (const auto& p : g.parts) g.n += p.n;
    return g;
  }

  const ModelConfig& cfg_;
  const GgufFile& f_;
  std::map<std::string, GgufTensorName> names_;
};

}  // namespace

Weights load_gguf_weights(std::unique_ptr<GgufFile> file, const ModelConfig& cfg, bool with_layers) {
  Weights w;
  w.gguf = std::move(file);
  const GgufLoader loader(cfg, w);
  loader.load_globals(w);
  if (with_layers)
    for (int64_t i = 0; i < cfg.layers; ++i) w.layers.push_back(loader.layer(i));
  return w;
}

LayerWeights load_gguf_layer(const Weights& w, const ModelConfig& cfg, int64_t i) { return GgufLoader(cfg, w).layer(i); }

}  // namespace awq::model
