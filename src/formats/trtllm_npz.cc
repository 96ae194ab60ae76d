// TensorRT-LLM <= 0.7 NGC / AMMO .npz checkpoints (docs/formats.md §10), e.g. llama_tp1_rank0.npz next
// to llama_tp1.json. Members are named "_np:<path with ':'>"; a quantized Linear <p> has
//   <p>:weight                   F16/BF16/F32 [N, K], *unquantized* (already AWQ-smoothed)
//   <p>:weights_scaling_factor   F32 (or F16) with N·K/G elements = amax/7 per (row, group)
//   <p>:prequant_scaling_factor  [K] (numel K), the AWQ input scale
// with p = layers:{i}:attention:qkv:{q|k|v}, layers:{i}:attention:dense (= HF o_proj),
// layers:{i}:mlp:fc (= gate_proj), :mlp:gate (= up_proj), :mlp:proj (= down_proj), and lm_head
// when it was quantized. Module names are the member path without "_np:" and ':' → '.', e.g.
// "layers.0.attention.qkv.q"; dense_name() = "<module>.weight"; other tensors map the same way
// ("_np:vocab_embedding:weight" → "vocab_embedding.weight").
//
// There are no stored codes: read() re-executes TensorRT-LLM 0.7's loader
// (examples/llama/weight.py load_from_awq_llama, .npz branch, for tp_size 1) so that the dense
// value is what that engine computes. G = numel(layers:0:attention:dense:weight) /
// numel(its weights_scaling_factor). rt_X(v) below = one RNE rounding of the f32 value v to dtype X;
// Tw = weight dtype, Ts = scaling-factor dtype, Tp = prequant dtype, Te = engine dtype (the
// companion json's "dtype", default float16).
//   dense / fc / gate / proj / lm_head:
//     amax = rt_Ts(wsf·7)   scale = rt_Ts(amax/8)   x = rt_Tw(w/scale)   q = clamp(rne(x), −8, 7)
//     engine scale s = rt_Te(scale), engine pqs = rt_Te(prequant)
//   attention:qkv:{q,k,v}: the stored weights_scaling_factor is ignored (reSmooth_and_get_scale):
//     amax = max|w| over the group, scale = rt_Tw(amax/8), x = rt_Tw(w/scale), q as above,
//     s = rt_Te(scale), pqs = rt_Te(rt_Tp(rt_Tp(rt_Tp(pq+pk)+pv)/3)) shared by q, k and v.
// Canonical form: codes u = q + 8, ZeroMode::kSymmetric, scales = s (scale_dtype Te),
// pre_quant_scale = pqs (pqs_dtype Te), so dense = RNE_out(f32(q·s)·pqs[k]).
// NaN in x gives q = 0 (and ±Inf clamps) instead of the undefined float→int8 cast.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>

#include "awq/dtype.h"
#include "awq/npz.h"
#include "formats/common.h"
#include "formats/readers.h"

namespace awq::fmt_detail {
namespace {

const char* kLayout = "trtllm-npz";
const std::string kPrefix = "_np:";
const std::string kWsf = ":weights_scaling_factor";

float rt(DType t, float v) {
  if (t == DType::F32) return v;
  uint8_t b[4];
  store_float(b, t, 0, v);
  return load_float(b, t, 0);
}

std::string dotted(const std::string& stored) {
  std::string s = stored.rfind(kPrefix, 0) == 0 ? stored.substr(kPrefix.size()) : stored;
  std::replace(s.begin(), s.end(), ':', '.');
  return s;
}

bool is_qkv(const std::string& prefix) {
  static const std::regex re(R"(.*:attention:qkv:[qkv]$)");
  return std::regex_match(prefix, re);
}

class TrtllmNpzReader final : public FormatReader {
 public:
  TrtllmNpzReader(const ModelDir& dir, QuantScheme s, int64_t g, DType engine) : dir_(dir), g_(g), engine_(engine) {
    scheme_ = std::move(s);
    for (const TensorView* t : dir.tensors()) {
      const std::string& n = t->name;
      if (n.rfind(kPrefix, 0) == 0 && n.size() > kWsf.size() && n.compare(n.size() - kWsf.size(), kWsf.size(), kWsf) == 0) {
        const std::string p = n.substr(0, n.size() - kWsf.size());
        prefix_[dotted(p)] = p;
        modules_.push_back(dotted(p));
      }
    }
    std::sort(modules_.begin(), modules_.end());
    if (modules_.empty()) fail(dir.path(), "", "no member named _np:*:weights_scaling_factor (TensorRT-LLM <= 0.7 AWQ .npz)");
    for (const auto& m : modules_) check(m);
  }

  std::vector<std::string> module_tensors(const std::string& m) const override {
    const std::string& p = prefix_.at(m);
    return {p + ":weight", p + kWsf, p + ":prequant_scaling_factor"};
  }

  ModuleInfo check(const std::string& m) const override {
    const Dims d = shapes(m);
    return {d.n, d.k, engine_};
  }

  std::string dense_tensor_name(const std::string& stored) const override { return dotted(stored); }

  QuantLinear read(const std::string& m) const override {
    const Dims d = shapes(m);
    const std::string& p = prefix_.at(m);
    const TensorView& w = dir_.get(p + ":weight");
    const TensorView& wsf = dir_.get(p + kWsf);
    const int64_t ng = d.k / g_;
    QuantLinear q = make_linear(m, scheme_.format, d.n, d.k, 4, g_, g_ == d.k, ng);
    q.zero_mode = ZeroMode::kSymmetric;
    q.scale_dtype = engine_;
    q.pqs_dtype = engine_;
    std::vector<float> scale(size_t(d.n * ng));  // the loader's scale, before the engine cast
    if (!is_qkv(p)) {
      for (size_t i = 0; i < scale.size(); ++i) {
        const float amax = rt(wsf.dtype, load_float(wsf.data, wsf.dtype, i) * 7.0f);
        scale[i] = rt(wsf.dtype, amax / 8.0f);
      }
    } else {
      for (int64_t n = 0; n < d.n; ++n)
        for (int64_t gi = 0; gi < ng; ++gi) {
          float amax = 0.0f;
          for (int64_t c = gi * g_; c < (gi + 1) * g_; ++c) {
            const float v = std::fabs(load_float(w.data, w.dtype, size_t(n * d.k + c)));
            if (v > amax || std::isnan(v)) amax = v;
          }
          scale[size_t(n * ng + gi)] = rt(w.dtype, amax / 8.0f);
        }
    }
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t c = 0; c < d.k; ++c) {
        const float s = scale[size_t(n * ng + c / g_)];
        const float x = rt(w.dtype, load_float(w.data, w.dtype, size_t(n * d.k + c)) / s);
        float r = std::isnan(x) ? 0.0f : std::nearbyint(x);  // round half to even (default FP environment)
        r = std::min(7.0f, std::max(-8.0f, r));
        q.codes[size_t(n * d.k + c)] = uint8_t(int(r) + 8);
      }
    for (size_t i = 0; i < scale.size(); ++i) q.scales[i] = rt(engine_, scale[i]);
    q.pre_quant_scale.resize(size_t(d.k));
    if (!is_qkv(p)) {
      const TensorView& pq = dir_.get(p + ":prequant_scaling_factor");
      for (int64_t c = 0; c < d.k; ++c) q.pre_quant_scale[size_t(c)] = rt(engine_, load_float(pq.data, pq.dtype, size_t(c)));
    } else {
      const std::string base = p.substr(0, p.size() - 1);  // "...:qkv:"
      const TensorView* t[3];
      for (int i = 0; i < 3; ++i) {
        t[i] = &need(dir_, base + "qkv"[i] + ":prequant_scaling_factor", kLayout);
        need_pqs(*t[i], d.k);
      }
      const DType tp = t[0]->dtype;
      for (int64_t c = 0; c < d.k; ++c) {
        float acc = rt(tp, load_float(t[0]->data, t[0]->dtype, size_t(c)) + load_float(t[1]->data, t[1]->dtype, size_t(c)));
        acc = rt(tp, acc + load_float(t[2]->data, t[2]->dtype, size_t(c)));
        q.pre_quant_scale[size_t(c)] = rt(engine_, rt(tp, acc / 3.0f));
      }
    }
    return q;
  }

 private:
  struct Dims { int64_t n, k; };

  static void need_pqs(const TensorView& t, int64_t k) {
    need_dtype(t, {DType::F16, DType::BF16, DType::F32}, "prequant_scaling_factor");
    if (t.numel() != k)
      bad(t, "prequant_scaling_factor has shape " + t.shape_str() + ", expected " + std::to_string(k) + " elements (one per input column)");
  }

  Dims shapes(const std::string& m) const {
    const auto it = prefix_.find(m);
    if (it == prefix_.end()) fail(dir_.path(), m, "not a quantized module of this checkpoint");
    const std::string& p = it->second;
    const TensorView& w = need(dir_, p + ":weight", kLayout);
    need_dtype(w, {DType::F16, DType::BF16, DType::F32}, "weight (unquantized, the loader quantizes it)");
    need_rank(w, 2, "weight");
    const int64_t n = w.dim(0), k = w.dim(1);
    if (n == 0 || k == 0) bad(w, "weight is empty");
    if (k % g_ != 0) bad(w, "K = " + std::to_string(k) + " is not a multiple of the group size " + std::to_string(g_));
    const TensorView& wsf = need(dir_, p + kWsf, kLayout);
    need_dtype(wsf, {DType::F32, DType::F16, DType::BF16}, "weights_scaling_factor");
    if (wsf.numel() != n * (k / g_)) {
      const std::string implied = wsf.numel() > 0 && (n * k) % wsf.numel() == 0 ? std::to_string(n * k / wsf.numel()) : "none";
      bad(wsf, "weights_scaling_factor has shape " + wsf.shape_str() + " (" + std::to_string(wsf.numel()) + " elements), expected " +
                   std::to_string(n * (k / g_)) + " = N·K/G for weight " + w.shape_str() + " and group size " + std::to_string(g_) +
                   " (this module implies group size " + implied + ")");
    }
    need_pqs(need(dir_, p + ":prequant_scaling_factor", kLayout), k);
    return {n, k};
  }

  const ModelDir& dir_;
  int64_t g_;
  DType engine_;
  std::map<std::string, std::string> prefix_;  // module -> "_np:..." member prefix
};

// The companion config: "<name>_tp<t>.json" for "<name>_tp<t>_rank<r>.npz"; null if absent.
nlohmann::json companion_json(const ModelDir& dir, std::string* path_out) {
  for (const auto& f : dir.npz_files()) {
    static const std::regex re(R"((.*)_rank[0-9]+\.npz$)");
    std::smatch mm;
    const std::string p = f->path();
    if (!std::regex_match(p, mm, re)) continue;
    const std::string j = mm[1].str() + ".json";
    std::error_code ec;
    if (std::filesystem::exists(j, ec)) {
      *path_out = j;
      return read_json_file(j);
    }
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<FormatReader> open_trtllm_npz(const ModelDir& dir, const nlohmann::json* /*cfg*/) {
  if (!dir.is_npz()) fail(dir.path(), "", "not a .npz checkpoint");
  QuantScheme s;
  s.format = kLayout;
  s.bits = 4;
  s.zero_point = false;
  s.version = "int4_awq";
  // Group size exactly as the loader derives it.
  const std::string dense = "_np:layers:0:attention:dense";
  const TensorView* dw = dir.find(dense + ":weight");
  const TensorView* ds = dir.find(dense + kWsf);
  if (!dw || !ds) {  // no layer-0 dense: use the first quantized member instead
    for (const TensorView* t : dir.tensors()) {
      const std::string& n = t->name;
      if (n.size() > kWsf.size() && n.compare(n.size() - kWsf.size(), kWsf.size(), kWsf) == 0 &&
          dir.find(n.substr(0, n.size() - kWsf.size()) + ":weight")) {
        ds = t;
        dw = dir.find(n.substr(0, n.size() - kWsf.size()) + ":weight");
        break;
      }
    }
  }
  if (!dw || !ds) fail(dir.path(), dense + kWsf, "missing (TensorRT-LLM <= 0.7 AWQ .npz derives the group size from it)");
  if (ds->numel() <= 0 || dw->numel() % ds->numel() != 0 || dw->shape.size() != 2 || dw->numel() / ds->numel() <= 0 ||
      dw->dim(1) % (dw->numel() / ds->numel()) != 0)
    bad(*ds, "has " + std::to_string(ds->numel()) + " elements, which does not divide " + dw->name + " " + dw->shape_str() +
                 " into whole groups along K");
  const int64_t g = dw->numel() / ds->numel();
  s.group_size = g;
  DType engine = DType::F16;
  std::string jpath;
  const nlohmann::json j = companion_json(dir, &jpath);
  if (j.is_object()) {
    const std::string quant = cfg_str(j, {"quantization"}, "int4_awq");
    if (quant != "int4_awq")
      throw Unsupported(where(jpath, "", "quantization is \"" + quant + "\"; only int4_awq .npz checkpoints are read"));
    const int64_t tp = cfg_int(j, {"tensor_parallel"}, 1);
    if (tp != 1) throw Unsupported(where(jpath, "", "tensor_parallel is " + std::to_string(tp) + "; only single-rank (tp1) .npz checkpoints are read"));
    const int64_t block = cfg_int(j, {"awq_block_size"}, g);
    if (block != g)
      fail(jpath, "", "awq_block_size is " + std::to_string(block) + ", but " + ds->name + " implies group size " + std::to_string(g) +
                          " (numel of " + dw->name + " / numel of its weights_scaling_factor)");
    const std::string dt = cfg_str(j, {"dtype"}, "float16");
    auto t = parse_torch_dtype(dt);
    if (!t) fail(jpath, "", "dtype \"" + dt + "\" is not float16, bfloat16 or float32");
    engine = *t;
  }
  return std::make_unique<TrtllmNpzReader>(dir, std::move(s), g, engine);
}

}  // namespace awq::fmt_detail
