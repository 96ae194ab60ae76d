// `awq quantize` (include/awq/quantize.h): layer by layer, load the layer (f32), run AWQ on it when
// asked, quantize its linears, save the result under <OUT_DIR>.awq-progress/layer-NNNNN.safetensors;
// then write the target through convert_model from those saved layers.
#include "awq/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <array>
#include <cstring>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif
#include <sys/resource.h>

#include "awq/convert.h"
#include "awq/error.h"
#include "awq/formats.h"
#include "awq/kernels.h"
#include "awq/fsutil.h"
#include "awq/model_config.h"
#include "awq/model_dir.h"
#include "awq/safetensors.h"
#include "awq/thread_pool.h"
#include "quant/awq_forward.h"
#include "quant/awq_layer.h"
#include "quant/gptq.h"
#include "quant/group_quant.h"
#include "quant/layer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace awq {
using namespace quant_detail;

std::vector<std::vector<int32_t>> calibration_blocks(const std::vector<int32_t>& tokens, int64_t samples, int64_t seqlen) {
  std::vector<std::vector<int32_t>> out;
  if (seqlen <= 0) throw Error("--seqlen must be positive");
  for (int64_t b = 0; b < samples && (b + 1) * seqlen <= int64_t(tokens.size()); ++b)
    out.emplace_back(tokens.begin() + b * seqlen, tokens.begin() + (b + 1) * seqlen);
  return out;
}

namespace {

// Flush-to-zero and denormals-are-zero (x86 MXCSR) while quantizing, restored on exit; the pool's
// threads, created after, inherit them. Peaked attention (exp of scores far below the row's
// maximum) and tiny trial products create subnormal floats, each costing a ~100-cycle microcode
// assist: on the bundled model one layer ran 2-3x longer than the others (BENCHMARKS.md). The
// values flushed (< 1.2e-38) change no stored byte there.
class FlushDenormals {
 public:
  FlushDenormals() {
#if defined(__SSE__) || defined(__x86_64__)
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
#endif
  }
  ~FlushDenormals() {
#if defined(__SSE__) || defined(__x86_64__)
    _mm_setcsr(saved_);
#endif
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_ = 0;
};

// ComputeMode::kAuto's choice (quantize.h): bf16 where AMX-BF16 runs, else f32.
Compute resolve_compute(const QuantizeOptions& o) {
  if (o.compute != ComputeMode::kAuto) return o.compute == ComputeMode::kBf16 ? Compute::kBf16 : Compute::kF32;
  return kernels::amx_bf16_available() ? Compute::kBf16 : Compute::kF32;
}

bool kept_dense(const std::string& module, const std::vector<std::string>& not_convert) {
  for (const auto& key : not_convert)
    if (module.find(key) != std::string::npos) return true;
  return false;
}

// One linear's codes [n][k], scales [n][g] (f16 values) and zeros [n][g], clip ratios applied.
struct QuantOut {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  std::vector<int32_t> zeros;
};

QuantOut quantize_linear(const LayerTensors& L, int i, int64_t group, const QParams& qp, ThreadPool& pool) {
  const int64_t n = L.n[size_t(i)], k = L.k[size_t(i)], g = k / group;
  QuantOut o;
  o.codes.resize(size_t(n * k));
  o.scales.resize(size_t(n * g));
  o.zeros.resize(size_t(n * g));
  const auto& lo = L.clip_lo[size_t(i)];
  const auto& hi = L.clip_hi[size_t(i)];
  const float* w = L.w[size_t(i)].data();
  pool.run(n, [&](int64_t r, int) {
    for (int64_t j = 0; j < g; ++j) {
      const size_t gi = size_t(r * g + j);
      const GroupQ q = quantize_group(w + r * k + j * group, group, qp, lo.empty() ? 1.0f : lo[gi], hi.empty() ? 1.0f : hi[gi],
                                      o.codes.data() + r * k + j * group);
      o.scales[gi] = q.scale;
      o.zeros[gi] = q.zero;
    }
  });
  return o;
}

QuantOut zeros_like(int64_t n, int64_t k, int64_t group) {
  QuantOut o;
  o.codes.resize(size_t(n * k));
  o.scales.resize(size_t(n * (k / group)));
  o.zeros.resize(size_t(n * (k / group)));
  return o;
}

// s·(q − z) of every weight (f32 product, as the checkpoint's readers compute it).
std::vector<float> dequantized(const QuantOut& o, int64_t n, int64_t k, int64_t group) {
  std::vector<float> w(size_t(n * k));
  const int64_t g = k / group;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const size_t gi = size_t(r * g + c / group);
      w[size_t(r * k + c)] = o.scales[gi] * float(int(o.codes[size_t(r * k + c)]) - o.zeros[gi]);
    }
  return w;
}

// Rounding::kGptq for one layer: the Gram matrices of its linears' inputs (LayerLog::grams: q/k/v,
// o, gate/up, down), the factor of each (made once, q/k/v share one), and what each linear did.
struct GptqLayer {
  std::array<std::vector<float>, 4>* grams = nullptr;
  double damp = 0.01;
  int64_t tokens = 1;
  std::array<GptqFactor, 4> factor;
  std::array<bool, 4> made{};
  struct Linear {
    std::string module;
    double loss_nearest = 0, loss = 0, lambda = 0;
    int64_t dead = 0;
    int retries = 0;
    bool kept_nearest = false;
    bool factor_f64 = false;  // the factor's precision and residual (gptq.h)
    double residual = 0;
    double cpu_seconds = 0;  // process CPU seconds of this linear's rounding (its factor included when made for it)
  };
  std::vector<Linear> linears;
  // Frees the Gram matrices and factors no linear from `i` on reads (the 7B shape's down_proj
  // factor alone is 11008² floats, 0.48 GB): at most one factor is alive at a time.
  void release_before(int i) {
    static constexpr int kLast[4] = {2, 3, 5, 6};  // the last linear of each Gram matrix's users
    for (int g = 0; g < 4; ++g)
      if (kLast[g] < i) {
        factor[size_t(g)] = GptqFactor{};
        if (grams) std::vector<float>().swap((*grams)[size_t(g)]);
      }
  }
};

// Linear i rounded with error compensation, kept only when its Gram-form output error is below
// round-to-nearest's (`near`, the same groups' clip ratios), else `near` itself.
QuantOut gptq_linear(const LayerTensors& L, int i, const std::string& module, int64_t group, const QParams& qp, QuantOut near,
                     GptqLayer& gl, ThreadPool& pool) {
  static constexpr int kGramOf[kLinears] = {0, 0, 0, 1, 2, 2, 3};
  const int gi = kGramOf[i];
  const std::vector<float>& G = (*gl.grams)[size_t(gi)];
  const int64_t n = L.n[size_t(i)], k = L.k[size_t(i)];
  const double cpu0 = process_cpu_seconds();
  if (!gl.made[size_t(gi)]) {
    gl.factor[size_t(gi)] = gptq_factor(G.data(), k, gl.damp, pool);
    gl.made[size_t(gi)] = true;
  }
  const GptqFactor& f = gl.factor[size_t(gi)];
  const auto& lo = L.clip_lo[size_t(i)];
  const auto& hi = L.clip_hi[size_t(i)];
  QuantOut o = zeros_like(n, k, group);
  gptq_quantize(L.w[size_t(i)].data(), n, k, f, group, qp, lo.empty() ? nullptr : lo.data(), hi.empty() ? nullptr : hi.data(),
                o.codes.data(), o.scales.data(), o.zeros.data(), pool);
  GptqLayer::Linear info{module, 0, 0, f.lambda, f.dead, f.retries, false, f.f64, f.residual};
  const float* w = L.w[size_t(i)].data();
  info.loss_nearest = gram_loss(dequantized(near, n, k, group).data(), w, n, k, G, gl.tokens, pool);
  info.loss = f.u.empty() ? info.loss_nearest : gram_loss(dequantized(o, n, k, group).data(), w, n, k, G, gl.tokens, pool);
  info.kept_nearest = f.u.empty() || !(info.loss < info.loss_nearest);
  info.cpu_seconds = process_cpu_seconds() - cpu0;
  gl.linears.push_back(info);
  return info.kept_nearest ? near : o;
}

struct Spec {
  TensorSpec spec;
  std::vector<uint8_t> bytes;
};

template <class T>
Spec raw(const std::string& name, DType dt, std::vector<int64_t> shape, const std::vector<T>& v) {
  Spec s{{name, dt, std::move(shape)}, {}};
  s.bytes.resize(v.size() * sizeof(T));
  std::memcpy(s.bytes.data(), v.data(), s.bytes.size());
  return s;
}

Spec as_dtype(const std::string& name, DType dt, const std::vector<float>& v) {
  Spec s{{name, dt, {int64_t(v.size())}}, {}};
  s.bytes.resize(v.size() * dtype_size(dt));
  for (size_t i = 0; i < v.size(); ++i) store_float(s.bytes.data(), dt, i, v[i]);
  return s;
}

// Saves one finished layer (atomic: SafetensorsWriter writes a temporary and renames it).
// With `rel_error` (--mixed auto) each quantized linear's (scaled) weight is saved too, as
// "<module>.weight" in the model's dtype, so a module promoted at the end can be written dense,
// and the errors go into the file's metadata ("rel_error", a JSON array in LayerLinear order).
// With `gptq` (Rounding::kGptq) each linear is rounded by gptq_linear.
void save_layer(const std::string& path, const ModelDir& dir, const ModelConfig& cfg, const LayerTensors& L, int64_t group,
                const QParams& qp, const std::array<double, kLinears>* rel_error, GptqLayer* gptq, ThreadPool& pool) {
  std::vector<Spec> specs;
  std::map<std::string, std::string> meta{{"format", "awq-progress"}};
  for (LayerLinear which : kAllLayerLinears) {
    const int i = li(which);
    if (gptq) gptq->release_before(i);
    if (L.dense[size_t(i)]) continue;
    const std::string m = cfg.linear_name(L.layer, which);
    QuantOut q = quantize_linear(L, i, group, qp, pool);
    if (gptq) q = gptq_linear(L, i, m, group, qp, std::move(q), *gptq, pool);
    const int64_t n = L.n[size_t(i)], k = L.k[size_t(i)];
    specs.push_back(raw(m + ".codes", DType::U8, {n, k}, q.codes));
    specs.push_back(raw(m + ".scales", DType::F32, {n, k / group}, q.scales));
    specs.push_back(raw(m + ".zeros", DType::I32, {n, k / group}, q.zeros));
    if (rel_error) {
      specs.push_back(as_dtype(m + ".weight", dir.get(m + ".weight").dtype, L.w[size_t(i)]));
      specs.back().spec.shape = {n, k};
    }
  }
  if (rel_error) {
    json e = json::array();
    for (double v : *rel_error) e.push_back(std::isfinite(v) ? json(v) : json());
    meta["rel_error"] = e.dump();
  }
  const auto override_of = [&](const std::string& name, const std::vector<float>& v) {
    specs.push_back(as_dtype(name, dir.get(name).dtype, v));
  };
  if (L.attn_norm_changed) override_of(ModelConfig::layer_name(cfg.names.attn_norm, L.layer), L.attn_norm);
  if (L.mlp_norm_changed) override_of(ModelConfig::layer_name(cfg.names.mlp_norm, L.layer), L.mlp_norm);
  if (L.v_bias_changed) override_of(cfg.linear_name(L.layer, LayerLinear::kV) + ".bias", L.b[size_t(li(LayerLinear::kV))]);
  std::vector<TensorSpec> ts;
  for (const auto& s : specs) ts.push_back(s.spec);
  SafetensorsWriter w(path, ts, meta);
  for (const auto& s : specs) w.append(s.bytes.data(), s.bytes.size());
  w.commit();
}

// The saved layers as a quantized checkpoint for convert_model.
class SavedReader : public FormatReader {
 public:
  // `promoted`: modules written dense from their saved weight (listed in modules_to_not_convert).
  SavedReader(const std::vector<std::unique_ptr<SafetensorsFile>>& files, const QuantizeOptions& opt, const std::set<std::string>& promoted) {
    scheme_.format = "autoawq-gemm";
    scheme_.bits = opt.bits;
    scheme_.group_size = opt.group_size;
    scheme_.zero_point = opt.zero_point;
    scheme_.version = "gemm";
    scheme_.modules_to_not_convert = opt.not_convert;
    for (const auto& m : promoted) scheme_.modules_to_not_convert.push_back(m);
    for (const auto& f : files)
      for (const auto& t : f->tensors()) {
        const std::string& nm = t.name;
        if (nm.size() > 6 && nm.compare(nm.size() - 6, 6, ".codes") == 0) {
          const std::string m = nm.substr(0, nm.size() - 6);
          if (promoted.count(m)) continue;
          modules_.push_back(m);
          codes_[m] = &t;
          scales_[m] = f->find(m + ".scales");
          zeros_[m] = f->find(m + ".zeros");
        } else if (nm.find(".codes") == std::string::npos && nm.find(".scales") == std::string::npos &&
                   nm.find(".zeros") == std::string::npos) {
          overrides_.push_back(&t);
        }
      }
    std::sort(modules_.begin(), modules_.end());
  }
  std::vector<std::string> module_tensors(const std::string& m) const override { return {m + ".weight"}; }
  ModuleInfo check(const std::string& m) const override {
    const TensorView* c = codes_.at(m);
    return {c->shape[0], c->shape[1], DType::F16};
  }
  QuantLinear read(const std::string& m) const override {
    const TensorView* c = codes_.at(m);
    const TensorView* s = scales_.at(m);
    const TensorView* z = zeros_.at(m);
    QuantLinear q;
    q.name = m;
    q.format = "autoawq-gemm";
    q.n = c->shape[0];
    q.k = c->shape[1];
    q.bits = scheme_.bits;
    q.group_size = scheme_.group_size;
    q.n_groups = s->shape[1];
    q.codes.assign(c->data, c->data + c->nbytes);
    q.zero_mode = ZeroMode::kInteger;
    q.scale_dtype = DType::F16;
    q.scales.resize(size_t(s->numel()));
    std::memcpy(q.scales.data(), s->data, s->nbytes);
    q.zeros.resize(size_t(z->numel()));
    std::memcpy(q.zeros.data(), z->data, z->nbytes);
    // Copied out: the mapped pages leave the resident set (the layer files hold one byte per code,
    // 6.5 GB on the 7B shape; kept mapped, the final write's RSS grew to 8.3 GB).
    for (const TensorView* t : {c, s, z}) release_pages(*t);
    return q;
  }
  const std::vector<const TensorView*>& overrides() const { return overrides_; }

 private:
  std::map<std::string, const TensorView*> codes_, scales_, zeros_;
  std::vector<const TensorView*> overrides_;
};

// What a saved layer depends on: resuming with anything different starts over.
json fingerprint(const ModelDir& dir, const QuantizeOptions& o, size_t blocks) {
  uint64_t h = 1469598103934665603ULL;
  for (int32_t t : o.calib_tokens) h = (h ^ uint32_t(t)) * 1099511628211ULL;
  uint64_t sz = 0;
  for (const auto* t : dir.tensors()) sz += t->nbytes;
  return {{"model", fs::weakly_canonical(dir.path()).string()}, {"model_bytes", sz}, {"method", int(o.method)},
          {"bits", o.bits}, {"group_size", o.group_size}, {"zero_point", o.zero_point}, {"not_convert", o.not_convert},
          {"sanitize", int(o.sanitize)}, {"calib_hash", std::to_string(h)}, {"blocks", blocks}, {"seqlen", o.seqlen},
          {"formula", int(o.formula)}, {"grid", o.grid}, {"fast_search", o.fast_search}, {"refine", o.refine},
          {"refine_attn", o.refine_attn}, {"attn_loss_tokens", o.attn_loss_tokens}, {"attn_screen_tokens", o.attn_screen_tokens}, {"loss_tokens", o.loss_tokens}, {"proxy_rows", o.proxy_rows}, {"identity", o.identity_candidate}, {"clip", o.clip},
          {"asym_clip", o.asym_clip}, {"mixed", o.mixed}, {"propagate", o.propagate},
          {"rounding", int(o.rounding)}, {"gptq_damp", o.gptq_damp},
          {"compute", compute_mode() == Compute::kBf16 ? "bf16" : "f32"}};
}

std::string layer_file(const fs::path& dir, int64_t i) {
  char b[64];
  std::snprintf(b, sizeof b, "layer-%05lld.safetensors", (long long)i);
  return (dir / b).string();
}

void validate(const QuantizeOptions& o, const ModelConfig& cfg, const std::string& model) {
  if (o.bits != 4 && o.bits != 8) throw Error("--bits must be 4 or 8");
  if (o.bits == 8 && o.format != "dense")
    throw Error("--bits 8: the convert targets are 4-bit layouts; use --format dense for an 8-bit fake-quantized checkpoint");
  const auto targets = convert_targets();
  if (std::find(targets.begin(), targets.end(), o.format) == targets.end()) throw Error("--format " + o.format + ": unknown target");
  if (o.group_size <= 0) throw Error("--group-size must be positive");
  for (LayerLinear w : kAllLayerLinears)
    if (cfg.linear_shape(w).second % o.group_size != 0)
      throw Error(model + ": in_features " + std::to_string(cfg.linear_shape(w).second) + " of " + cfg.linear_name(0, w) +
                  " is not a multiple of --group-size " + std::to_string(o.group_size));
  if (o.method == QuantMethod::kAwq && o.grid < 1) throw Error("--grid must be at least 1");
  if (o.refine < 1 || o.refine_attn < 1) throw Error("--refine and --refine-attn must be at least 1");
  if (o.loss_tokens < 1 || o.attn_loss_tokens < 1 || o.attn_screen_tokens < 1 || o.proxy_rows < 1)
    throw Error("--loss-tokens, --attn-loss-tokens, --attn-screen-tokens and --proxy-rows must be at least 1");
  if (!(o.gptq_damp >= 0 && std::isfinite(o.gptq_damp))) throw Error("--gptq-damp must be a finite number >= 0");
  if (o.mixed && !(o.budget_bpw > 0 && std::isfinite(o.budget_bpw))) throw Error("--budget must be a positive number of bits per weight");
}

// Layer i as the output checkpoint will compute it: weights s·(q − z) from the saved codes, scales
// and zeros, norms and v bias from the saved (dtype-rounded) overrides; linears without codes keep
// the model's weights. Used for error propagation, identically for a fresh and a resumed layer.
LayerTensors stored_layer(const ModelDir& dir, const ModelConfig& cfg, int64_t i, const SafetensorsFile& saved, const QuantizeOptions& opt) {
  LayerTensors L = load_layer(dir, cfg, i, opt.group_size, opt.sanitize == SanitizePolicy::kZero, nullptr);
  for (LayerLinear which : kAllLayerLinears) {
    const std::string m = cfg.linear_name(i, which);
    const TensorView* c = saved.find(m + ".codes");
    if (!c) continue;
    const int li_ = li(which);
    const int64_t n = L.n[size_t(li_)], k = L.k[size_t(li_)], ng = k / opt.group_size;
    const std::vector<float> sc = tensor_f32(*saved.find(m + ".scales"));
    const TensorView* z = saved.find(m + ".zeros");
    std::vector<int32_t> zeros(size_t(z->numel()));
    std::memcpy(zeros.data(), z->data, z->nbytes);
    auto& w = L.w[size_t(li_)];
    for (int64_t r = 0; r < n; ++r)
      for (int64_t col = 0; col < k; ++col) {
        const size_t g = size_t(r * ng + col / opt.group_size);
        w[size_t(r * k + col)] = sc[g] * float(int(c->data[r * k + col]) - zeros[g]);
      }
  }
  const auto over = [&](const std::string& name, std::vector<float>& v) {
    if (const TensorView* t = saved.find(name)) v = tensor_f32(*t);
  };
  over(ModelConfig::layer_name(cfg.names.attn_norm, i), L.attn_norm);
  over(ModelConfig::layer_name(cfg.names.mlp_norm, i), L.mlp_norm);
  over(cfg.linear_name(i, LayerLinear::kV) + ".bias", L.b[size_t(li(LayerLinear::kV))]);
  return L;
}

// --mixed auto: the saved relative errors of every quantized linear, most sensitive first; each is
// kept dense (its saved scaled weight written in the model's dtype) while the bits per weight of
// all decoder linears stay within the budget. A quantized weight costs bits + (16 + bits)/group
// (f16 scale and a packed zero per group); a dense one its dtype's width.
std::set<std::string> choose_promotions(const std::vector<std::unique_ptr<SafetensorsFile>>& files, const ModelDir& dir, const ModelConfig& cfg,
                                        const QuantizeOptions& opt, QuantizeResult& res) {
  struct Mod {
    ModuleSensitivity s;
    double dense_bits = 16;
  };
  std::vector<Mod> mods;
  double weights = 0, bits = 0;
  const double qbits = double(opt.bits) + (16.0 + double(opt.bits)) / double(opt.group_size);
  for (int64_t i = 0; i < cfg.layers; ++i) {
    const SafetensorsFile& f = *files[size_t(i)];
    const auto it = f.metadata().find("rel_error");
    if (it == f.metadata().end()) throw Error(f.path() + ": saved layer has no rel_error (made without --mixed auto)");
    const json e = json::parse(it->second);
    for (LayerLinear which : kAllLayerLinears) {
      const std::string m = cfg.linear_name(i, which);
      const TensorView& w = dir.get(m + ".weight");
      const double nw = double(w.numel()), db = 8.0 * double(dtype_size(w.dtype));
      weights += nw;
      if (kept_dense(m, opt.not_convert) || e.at(size_t(li(which))).is_null()) {
        bits += nw * db;
        continue;
      }
      bits += nw * qbits;
      mods.push_back({{m, e.at(size_t(li(which))).get<double>(), int64_t(nw), false}, db});
    }
  }
  std::stable_sort(mods.begin(), mods.end(), [](const Mod& a, const Mod& b) { return a.s.rel_error > b.s.rel_error; });
  res.bpw_quantized = weights > 0 ? bits / weights : 0;
  res.bpw_quantized_module = qbits;
  std::set<std::string> promoted;
  for (Mod& m : mods) {
    const double extra = double(m.s.weights) * (m.dense_bits - qbits);
    if (bits + extra <= opt.budget_bpw * weights) {
      bits += extra;
      m.s.promoted = true;
      promoted.insert(m.s.module);
    }
    res.sensitivity.push_back(m.s);
  }
  res.bpw_final = weights > 0 ? bits / weights : 0;
  if (res.bpw_quantized > opt.budget_bpw)
    res.warnings.push_back("--budget " + std::to_string(opt.budget_bpw) + " is below the all-quantized " + std::to_string(res.bpw_quantized) +
                           " bits per weight: nothing promoted");
  return promoted;
}

}  // namespace

QuantizeResult quantize_model(const std::string& model_dir, const QuantizeOptions& opt, const QuantizeProgress& on_layer) {
  QuantizeResult res;
  ModelDir dir(model_dir);
  if (!dir.quant_config().is_null()) throw Error(model_dir + ": already quantized (" + dir.quant_config_source() + "); quantize reads a dense checkpoint");
  const ModelConfig cfg = parse_model_config(dir.config(), (fs::path(model_dir) / "config.json").string());
  validate(opt, cfg, model_dir);
  // Nothing this run writes or removes may touch what it reads: OUT_DIR, the saved progress (removed
  // when it does not match) and the appended log.
  std::vector<std::string> inputs{model_dir};
  inputs.insert(inputs.end(), opt.inputs.begin(), opt.inputs.end());
  refuse_output_overlapping_inputs(opt.out_dir, inputs);
  refuse_output_overlapping_inputs(progress_dir_for(opt.out_dir).string(), inputs);
  if (!opt.log_file.empty()) refuse_output_overlapping_inputs(opt.log_file, inputs);
  if (!opt.force && fs::is_directory(opt.out_dir) && !fs::is_empty(opt.out_dir))
    throw Error(opt.out_dir + ": exists and is not empty (use --force to replace it)");
  if (opt.mixed) {  // a budget that keeps every linear dense leaves nothing to quantize (and no readable checkpoint)
    double weights = 0, bits = 0;
    for (int64_t i = 0; i < cfg.layers; ++i)
      for (LayerLinear which : kAllLayerLinears) {
        const TensorView& w = dir.get(cfg.linear_name(i, which) + ".weight");
        weights += double(w.numel());
        bits += double(w.numel()) * 8.0 * double(dtype_size(w.dtype));
      }
    if (opt.budget_bpw >= bits / weights)
      throw Error("--budget " + std::to_string(opt.budget_bpw) + " bits per weight keeps every linear dense (" + std::to_string(bits / weights) +
                  " bits per weight): nothing would be quantized");
  }
  const FlushDenormals ftz;  // before the pool: its threads inherit the mode
  const ComputeScope compute(resolve_compute(opt));
  ThreadPool pool(opt.threads);
  const QParams qp{opt.bits, opt.zero_point};
  const bool awq = opt.method == QuantMethod::kAwq;
  const bool gptq = opt.rounding == Rounding::kGptq || (opt.rounding == Rounding::kAuto && awq), calibrated = awq || opt.mixed || gptq;

  std::vector<std::vector<int32_t>> blocks;
  Activations act;
  if (calibrated) {
    blocks = calibration_blocks(opt.calib_tokens, opt.samples, opt.seqlen);
    if (blocks.empty())
      throw Error("calibration text too short: " + std::to_string(opt.calib_tokens.size()) + " tokens, fewer than one block of " +
                  std::to_string(opt.seqlen));
    if (int64_t(blocks.size()) < opt.samples)
      res.warnings.push_back("calibration text gives " + std::to_string(blocks.size()) + " blocks of " + std::to_string(opt.seqlen) +
                             " tokens, fewer than the " + std::to_string(opt.samples) + " asked for");
    act = embed_blocks(dir, cfg, blocks);
  }
  res.blocks = blocks.size();

  // Saved progress: reused when it was made with the same model, options and calibration.
  const fs::path prog = progress_dir_for(opt.out_dir);
  QuantizeOptions resolved = opt;
  resolved.rounding = gptq ? Rounding::kGptq : Rounding::kNearest;
  const json fp = fingerprint(dir, resolved, blocks.size());
  const fs::path state = prog / "state.json";
  if (fs::exists(prog)) {
    bool same = false;
    try {
      same = fs::exists(state) && read_json_file(state.string()) == fp;
    } catch (const Error&) {
    }
    if (!same) fs::remove_all(prog);
  }
  fs::create_directories(prog);
  if (!fs::exists(state)) write_file_atomic(state.string(), fp.dump(2));

  std::unique_ptr<std::ofstream> log;
  if (!opt.log_file.empty()) {
    log = std::make_unique<std::ofstream>(opt.log_file, std::ios::app);
    if (!*log) throw Error(opt.log_file + ": cannot open the log for writing");
  }
  AwqParams ap;
  ap.q = qp;
  ap.group_size = opt.group_size;
  ap.formula = opt.formula;
  ap.grid = opt.grid;
  ap.mode = opt.fast_search ? SearchMode::kFast : SearchMode::kFull;
  ap.refine = opt.refine;
  ap.refine_attn = opt.refine_attn;
  ap.loss_tokens = opt.loss_tokens;
  ap.attn_loss_tokens = opt.attn_loss_tokens;
  ap.attn_screen_tokens = opt.attn_screen_tokens;
  ap.proxy_rows = opt.proxy_rows;
  ap.identity = opt.identity_candidate;
  ap.search = awq;
  ap.clip = awq && opt.clip;
  ap.asym_clip = opt.asym_clip;
  ap.sensitivity = opt.mixed;
  ap.keep_grams = gptq;
  ap.seq_len = opt.seqlen;

  // The layer inputs' buffers: kept from layer to layer (their pages reused, not faulted in and
  // zeroed again) when they are small; above kKeepInputsBytes (the 7B shape: 3.4 GB) each is freed
  // as soon as awq_layer has used it, so the search does not hold them all.
  constexpr double kKeepInputsBytes = double(1 << 30);
  const bool keep_inputs = 4.0 * double(act.blocks * act.len) *
                               double(3 * cfg.hidden + cfg.heads * cfg.head_dim + cfg.intermediate) <= kKeepInputsBytes;
  LayerInputs in;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < cfg.layers; ++i) {
    const std::string file = layer_file(prog, i);
    const bool done = fs::exists(file);
    if (done && !calibrated) {
      ++res.resumed_layers;
      continue;
    }
    LayerTensors L = load_layer(dir, cfg, i, opt.group_size, opt.sanitize == SanitizePolicy::kZero, &res.sanitized);
    for (LayerLinear w : kAllLayerLinears) L.dense[size_t(li(w))] = kept_dense(cfg.linear_name(i, w), opt.not_convert);
    double ratio = 0;
    LayerLog lg;
    std::vector<float> x_in;  // this layer's input, kept for error propagation
    if (calibrated) {
      if (opt.propagate) x_in = act.x;
      const auto tf = std::chrono::steady_clock::now();
      const double cpu_f = process_cpu_seconds();
      layer_forward(cfg, L, act, done ? nullptr : &in, pool);
      const double forward_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - tf).count();
      const double forward_cpu = process_cpu_seconds() - cpu_f;  // without propagation the next layer sees the dense output
      if (done) {
        if (opt.propagate) {
          act.x = x_in;
          layer_forward(cfg, stored_layer(dir, cfg, i, SafetensorsFile(file), opt), act, nullptr, pool);
        }
        ++res.resumed_layers;
        continue;
      }
      const auto ts = std::chrono::steady_clock::now();
      const double cpu_s = process_cpu_seconds();
      lg = keep_inputs ? awq_layer(cfg, L, in, act.blocks * act.len, ap, pool) : awq_layer(cfg, L, std::move(in), act.blocks * act.len, ap, pool);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
      const double search_cpu = process_cpu_seconds() - cpu_s;
      double before = 0, after = 0;
      for (const auto& g : lg.groups) {
        before += g.loss_rtn;
        after += g.loss_best;
        json trials = json::array();  // [kind, α, loss, proxy] per candidate (null: not computed)
        for (const auto& t : g.trials)
          trials.push_back({t.kind, t.alpha, std::isfinite(t.loss) ? json(t.loss) : json(), std::isfinite(t.proxy) ? json(t.proxy) : json()});
        if (log)
          *log << json{{"layer", i}, {"group", g.group}, {"choice", g.choice}, {"alpha", g.alpha}, {"loss_rtn", g.loss_rtn},
                       {"loss", g.loss_best}, {"evaluated", g.evaluated}, {"seconds", g.seconds}, {"cpu_seconds", g.cpu_seconds},
                       {"trials", trials}}.dump()
               << "\n";
      }
      for (const auto& c : lg.clips)
        if (log)
          *log << json{{"layer", i}, {"clip", c.linear}, {"loss_before", c.loss_before}, {"loss_after", c.loss_after},
                       {"mean_ratio", c.mean_ratio}}.dump() << "\n";
      if (log) {
        *log << json{{"layer", i}, {"compute", compute_mode() == Compute::kBf16 ? "bf16" : "f32"}, {"seconds", secs},
                     {"forward_seconds", forward_secs}, {"gram_seconds", lg.gram_seconds}, {"gram_cpu_seconds", lg.gram_cpu_seconds},
                     {"forward_cpu_seconds", forward_cpu},
                     {"cpu_seconds", search_cpu},
                     {"clip_seconds", lg.clip_seconds}}.dump() << "\n";
        log->flush();
      }
      ratio = before > 0 ? after / before : 0;
    }
    GptqLayer gl;
    gl.grams = &lg.grams;
    gl.damp = opt.gptq_damp;
    gl.tokens = act.blocks * act.len;
    const auto save_t0 = std::chrono::steady_clock::now();
    const double save_cpu0 = process_cpu_seconds();
    save_layer(file, dir, cfg, L, opt.group_size, qp, opt.mixed ? &lg.rel_error : nullptr, gptq ? &gl : nullptr, pool);
    if (log)  // rounding (nearest, GPTQ and its guard) and writing the layer
      *log << json{{"layer", i}, {"save_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - save_t0).count()},
                   {"save_cpu_seconds", process_cpu_seconds() - save_cpu0}}.dump() << "\n";
    for (const auto& g : gl.linears) {
      ++res.gptq_linears;
      res.gptq_kept_nearest += g.kept_nearest;
      if (log)
        *log << json{{"layer", i}, {"gptq", g.module}, {"loss_nearest", g.loss_nearest}, {"loss", g.loss}, {"lambda", g.lambda},
                     {"dead_columns", g.dead}, {"damp_retries", g.retries}, {"kept_nearest", g.kept_nearest},
                     {"factor", g.factor_f64 ? "f64" : "f32"}, {"residual", g.residual}, {"cpu_seconds", g.cpu_seconds}}.dump() << "\n";
    }
    if (log) log->flush();
    if (calibrated && opt.propagate) {  // the next layer's input: this layer as stored, on this layer's input
      act.x = x_in;
      layer_forward(cfg, stored_layer(dir, cfg, i, SafetensorsFile(file), opt), act, nullptr, pool);
    }
    ++res.layers;
    if (on_layer)
      on_layer(i + 1, cfg.layers, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), ratio);
  }

  std::vector<std::unique_ptr<SafetensorsFile>> files;
  for (int64_t i = 0; i < cfg.layers; ++i) files.push_back(std::make_unique<SafetensorsFile>(layer_file(prog, i)));
  std::set<std::string> promoted;
  if (opt.mixed) promoted = choose_promotions(files, dir, cfg, opt, res);
  SavedReader reader(files, opt, promoted);
  res.modules = reader.modules().size();
  ConvertOptions co;
  co.out_dir = opt.out_dir;
  co.to = opt.format;
  co.force = opt.force;
  co.progress = opt.progress;
  co.max_shard_bytes = opt.max_shard_bytes;
  co.dense_overrides = reader.overrides();
  // The dense model's card (README.md) describes the dense model, not this output: left out.
  co.skip_auxiliary = {"README.md"};
  co.nonfinite_remedy =
      "The model itself holds NaN/Inf in this tensor, which quantize keeps dense (--sanitize applies only to the quantized "
      "linears); fix the source model";
  convert_model(dir, reader, co);
  files.clear();
  fs::remove_all(prog);
  return res;
}

}  // namespace awq
