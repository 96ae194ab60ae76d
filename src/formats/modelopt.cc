// NVIDIA ModelOpt W4A16_AWQ, Hugging Face unified export (docs/formats.md §9). Per quantized
// Linear <m> (a module whose `.weight` is U8/I8 and has a `.weight_scale` sibling):
//   <m>.weight           U8 (or I8) [N/2, K]: byte (p, k) holds row 2p in the low nibble and row
//                        2p+1 in the high nibble, 4-bit two's complement q in [−8, 7]
//   <m>.weight_scale     F32 (F16/BF16 accepted) [N, K/G] = amax/7
//   <m>.pre_quant_scale  [K], optional (model dtype): the input is multiplied by it
// Canonical form: codes u = q + 8 with ZeroMode::kSymmetric, scales as stored, and
// QuantLinear::pre_quant_scale = pre_quant_scale, so the dense value is RNE((q·s)·pqs[k]) with both
// products in f32 — exactly how dequantize_rows_ref orders them. Dense `.weight` tensors of other
// modules (embeddings, norms, lm_head, excluded layers) are left alone. W4A8_AWQ (weight_scale_2 /
// input_scale), NVFP4, FP8 and MoE [E, N/2, K] weights are refused by name.
#include "formats/common.h"
#include "formats/readers.h"

namespace awq::fmt_detail {
namespace {

const char* kLayout = "modelopt";

// Modules with a `.weight_scale` sibling and a U8/I8 `.weight`, sorted.
std::vector<std::string> quantized_modules(const ModelDir& dir) {
  std::vector<std::string> out;
  for (const auto& m : modules_with_suffix(dir, ".weight_scale")) {
    const TensorView* w = dir.find(m + ".weight");
    if (w && (w->dtype == DType::U8 || w->dtype == DType::I8)) out.push_back(m);
  }
  return out;
}

class ModelOptReader final : public FormatReader {
 public:
  // `infer_groups`: the config gave no group size, so each module's comes from its weight_scale.
  ModelOptReader(const ModelDir& dir, QuantScheme s, bool infer_groups) : dir_(dir), infer_groups_(infer_groups) {
    scheme_ = std::move(s);
    modules_ = quantized_modules(dir);
    // A packed int4 weight whose scales are missing is an error, not a dense tensor to copy.
    for (const TensorView* t : dir.tensors()) {
      const std::string& n = t->name;
      if ((t->dtype == DType::U8 || t->dtype == DType::I8) && n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 &&
          !dir.find(n.substr(0, n.size() - 7) + ".weight_scale"))
        fail(dir.path(), n.substr(0, n.size() - 7) + ".weight_scale",
             "missing: " + n + " is packed int4 (" + std::string(dtype_name(t->dtype)) +
                 ") and the modelopt layout stores a weight_scale for every packed weight");
    }
    if (modules_.empty())
      fail(dir.path(), "", "no module with a U8/I8 *.weight and a *.weight_scale sibling (the ModelOpt W4A16_AWQ layout)");
    for (const auto& m : modules_) check(m);
  }

  std::vector<std::string> module_tensors(const std::string& m) const override {
    std::vector<std::string> t = {m + ".weight", m + ".weight_scale"};
    if (dir_.find(m + ".pre_quant_scale")) t.push_back(m + ".pre_quant_scale");
    return t;
  }

  ModuleInfo check(const std::string& m) const override {
    const Dims d = shapes(m);
    return {d.n, d.k, dir_.get(m + ".weight_scale").dtype};
  }

  QuantLinear read(const std::string& m) const override {
    const Dims d = shapes(m);
    const TensorView& w = dir_.get(m + ".weight");
    const TensorView& ws = dir_.get(m + ".weight_scale");
    QuantLinear q = make_linear(m, scheme_.format, d.n, d.k, 4, d.g, d.g == d.k, d.ng);
    q.zero_mode = ZeroMode::kSymmetric;
    q.scale_dtype = ws.dtype;
    for (int64_t p = 0; p < d.n / 2; ++p)
      for (int64_t kk = 0; kk < d.k; ++kk) {
        const uint8_t b = w.data[size_t(p * d.k + kk)];
        // Two's-complement nibble t ∈ [0,15] means q = t − 16·(t ≥ 8); u = q + 8 = t ^ 8.
        q.codes[size_t((2 * p) * d.k + kk)] = uint8_t((b & 0xF) ^ 0x8);
        q.codes[size_t((2 * p + 1) * d.k + kk)] = uint8_t((b >> 4) ^ 0x8);
      }
    for (size_t i = 0; i < q.scales.size(); ++i) q.scales[i] = load_float(ws.data, ws.dtype, i);
    if (const TensorView* pqs = dir_.find(m + ".pre_quant_scale")) {
      q.pqs_dtype = pqs->dtype;
      q.pre_quant_scale = load_floats(*pqs);
    }
    read_bias(dir_, m, q);
    return q;
  }

 private:
  struct Dims { int64_t n, k, g, ng; };
  Dims shapes(const std::string& m) const {
    const TensorView& w = need(dir_, m + ".weight", kLayout);
    need_dtype(w, {DType::U8, DType::I8}, "weight (packed int4 pairs)");
    if (w.shape.size() == 3)
      bad(w, "weight has shape " + w.shape_str() + ": per-expert (MoE) packed weights [E, N/2, K] are not read");
    need_rank(w, 2, "weight");
    for (const char* w4a8 : {".weight_scale_2", ".input_scale"})
      if (const TensorView* t = dir_.find(m + w4a8))
        bad(*t, std::string("is a W4A8_AWQ tensor (") + (w4a8 + 1) + "); only W4A16_AWQ is read");
    const int64_t k = w.dim(1), n = w.dim(0) * 2;
    if (k == 0 || n == 0) bad(w, "weight is empty");
    const TensorView& ws = need(dir_, m + ".weight_scale", kLayout);
    need_dtype(ws, {DType::F32, DType::F16, DType::BF16}, "weight_scale");
    need_rank(ws, 2, "weight_scale");
    if (ws.dim(0) != n)
      bad(ws, "weight_scale has shape " + ws.shape_str() + " but weight " + w.shape_str() + " implies N = " + std::to_string(n) +
                  " (ModelOpt packs pairs of rows: weight is [N/2, K], weight_scale [N, K/G])");
    int64_t g = scheme_.group_size == -1 ? k : scheme_.group_size;
    if (infer_groups_) {
      if (ws.dim(1) <= 0 || k % ws.dim(1) != 0)
        bad(ws, "weight_scale has " + std::to_string(ws.dim(1)) + " groups, which does not divide K = " + std::to_string(k));
      g = k / ws.dim(1);
    }
    if (g <= 0 || k % g != 0)
      bad(w, "K = " + std::to_string(k) + " is not a multiple of group_size " + std::to_string(g));
    if (ws.dim(1) != k / g) {
      const std::string implied = ws.dim(1) > 0 && k % ws.dim(1) == 0 ? std::to_string(k / ws.dim(1)) : "none";
      bad(ws, "group_size " + std::to_string(scheme_.group_size) + " from the config implies " + std::to_string(k / g) +
                  " groups for K = " + std::to_string(k) + ", but weight_scale has " + std::to_string(ws.dim(1)) +
                  " (the tensors imply group size " + implied + ")");
    }
    if (const TensorView* pqs = dir_.find(m + ".pre_quant_scale")) {
      need_dtype(*pqs, {DType::F16, DType::BF16, DType::F32}, "pre_quant_scale");
      if (pqs->shape != std::vector<int64_t>{k} && pqs->shape != std::vector<int64_t>{1, k})
        bad(*pqs, "pre_quant_scale has shape " + pqs->shape_str() + ", expected [" + std::to_string(k) + "] (one per input column)");
    }
    return {n, k, g, k / g};
  }
  const ModelDir& dir_;
  bool infer_groups_;
};

}  // namespace

std::unique_ptr<FormatReader> open_modelopt(const ModelDir& dir, const nlohmann::json* cfg) {
  QuantScheme s;
  s.format = kLayout;
  s.bits = 4;
  s.zero_point = false;
  s.group_size = 0;  // 0 = not configured: inferred per module below
  s.version = "W4A16_AWQ";
  if (cfg) {
    // hf_quant_config.json nests everything under "quantization"; config.json's
    // quantization_config ({"quant_method":"modelopt","quant_algo":...}) is flat.
    const nlohmann::json& q = cfg->contains("quantization") && (*cfg)["quantization"].is_object() ? (*cfg)["quantization"] : *cfg;
    const std::string algo = cfg_str(q, {"quant_algo"}, "W4A16_AWQ");
    if (algo == "W4A8_AWQ")
      throw Error("ModelOpt quantization config: quant_algo W4A8_AWQ (int4 weights with fp8 activations and a second "
                  "weight_scale_2) is not read; only W4A16_AWQ is");
    if (algo != "W4A16_AWQ")
      throw Error("ModelOpt quantization config: quant_algo \"" + algo +
                  "\" is not read; only W4A16_AWQ (int4 weights, per-group F32 scales) is (FP8, NVFP4, NVFP4_AWQ, "
                  "W4A8_AWQ, MIXED_PRECISION are other layouts)");
    s.version = algo;
    s.group_size = cfg_int(q, {"group_size"}, 0);
    if (cfg_bool(q, {"has_zero_point"}, false))
      throw Error("ModelOpt quantization config: has_zero_point is true; W4A16_AWQ is symmetric and stores no zero points");
    s.modules_to_not_convert = cfg_str_list(q, "exclude_modules");
    if (s.modules_to_not_convert.empty()) s.modules_to_not_convert = cfg_str_list(q, "ignore");
  }
  if (s.group_size < -1) throw Error("ModelOpt quantization config: invalid group_size " + std::to_string(s.group_size));
  bool inferred = false;
  if (s.group_size == 0) {
    // No configured group size (config.json's modelopt quantization_config has none for AWQ):
    // each module's G is K / weight_scale.shape[1]; the scheme reports the smallest G among
    // modules with more than one group, or -1 when every module has a single group.
    inferred = true;
    s.group_size = -1;
    for (const auto& m : quantized_modules(dir)) {
      const TensorView* w = dir.find(m + ".weight");
      const TensorView* ws = dir.find(m + ".weight_scale");
      if (w && ws && w->shape.size() == 2 && ws->shape.size() == 2 && ws->dim(1) > 1 && w->dim(1) % ws->dim(1) == 0) {
        const int64_t g = w->dim(1) / ws->dim(1);
        if (s.group_size == -1 || g < s.group_size) s.group_size = g;
      }
    }
  }
  return std::make_unique<ModelOptReader>(dir, std::move(s), inferred);
}

}  // namespace awq::fmt_detail
