// `awq convert --to gguf` (convert.h convert_to_gguf): plan every tensor (name, ggml type), write
// the metadata llama.cpp's converter writes, then stream one tensor at a time: O(one tensor) of
// working memory beyond the mmap'd input.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "awq/convert.h"
#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/gguf.h"
#include "awq/gguf_arch.h"
#include "awq/model_config.h"
#include "awq/model_dir.h"
#include "awq/progress.h"
#include "convert/gguf_pack.h"
#include "convert/gguf_vocab.h"
#include "convert/pack.h"
#include "convert/value_guard.h"
#include "awq/gguf_blocks.h"

namespace fs = std::filesystem;

namespace awq {
using namespace convert_detail;

namespace {

struct Planned {
  GgufTensorName name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;
  std::string module;                 // quantized source module, else ""
  const TensorView* view = nullptr;   // dense source, else nullptr
  bool rope_freqs = false;
  std::string requant;                // why it is re-quantized ("" = exact mapping)
};

std::string fmt_g(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

GgmlType parse_dense_type(const std::string& s) {
  if (s == "f16") return GgmlType::F16;
  if (s == "bf16") return GgmlType::BF16;
  if (s == "q8_0") return GgmlType::Q8_0;
  throw Error("--dense-type must be f16, bf16 or q8_0, not \"" + s + "\"");
}

// ggml's quantize_row_q4_1_ref (ggml-quants.c), for --requantize of 4-bit modules GGUF cannot
// hold exactly: min/max per 32, d = (max − min)/15, q = min(15, (int8)((x − min)/d + 0.5)).
void quantize_q4_1_ref(const float* x, int64_t n, std::string& out) {
  for (int64_t i = 0; i < n / 32; ++i) {
    float mn = INFINITY, mx = -INFINITY;
    for (int j = 0; j < 32; ++j) {
      mn = std::min(mn, x[i * 32 + j]);
      mx = std::max(mx, x[i * 32 + j]);
    }
    const float d = (mx - mn) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
    gguf_detail::BlockQ4_1 b;
    b.d = f32_to_f16(d);
    b.m = f32_to_f16(mn);
    for (int j = 0; j < 16; ++j) {
      const float x0 = (x[i * 32 + j] - mn) * id, x1 = (x[i * 32 + 16 + j] - mn) * id;
      const uint8_t q0 = uint8_t(std::min<int>(15, int8_t(x0 + 0.5f))), q1 = uint8_t(std::min<int>(15, int8_t(x1 + 0.5f)));
      b.qs[j] = uint8_t(q0 | (q1 << 4));
    }
    out.append(reinterpret_cast<const char*>(&b), sizeof b);
  }
}

// Llama 3 rope scaling as llama.cpp's LlamaModel.generate_extra_tensors computes rope_freqs with
// torch: freqs = 1 / base ** (arange(0, dim, 2, f32) / dim), torch's f32 pow being correctly
// rounded; each freq is then a 0-d f32 tensor, so every step is f32 arithmetic, and torch computes
// `python_scalar / tensor` as reciprocal(tensor) * f32(scalar). Checked bit for bit by
// tools/verify_gguf_llamacpp.py.
std::vector<float> llama3_rope_factors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  std::vector<float> freqs;
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const float e = float(2 * i) / float(c.head_dim);
    freqs.push_back(1.0f / float(std::pow(double(float(c.rope_theta)), double(e))));
  }
  const double low_wavelen = double(s.original_max_positions) / s.low_freq_factor;
  const double high_wavelen = double(s.original_max_positions) / s.high_freq_factor;
  const float factor = float(s.factor), lf = float(s.low_freq_factor);
  const float band = float(s.high_freq_factor - s.low_freq_factor), old_len = float(s.original_max_positions);
  std::vector<float> out;
  for (float f : freqs) {
    const float wavelen = (1.0f / f) * float(2 * M_PI);
    if (double(wavelen) < high_wavelen) out.push_back(1.0f);
    else if (double(wavelen) > low_wavelen) out.push_back(factor);
    else {
      const float smooth = ((1.0f / wavelen) * old_len - lf) / band;
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return out;
}

std::vector<float> ggml_values(GgmlType t, const std::string& bytes, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_ggml(t, reinterpret_cast<const uint8_t*>(bytes.data()), n, y.data());
  return y;
}

// Why a quantized module cannot map block for block ("" when it can).
std::string requant_reason(const ModelDir& dir, const FormatReader& r, const std::string& m, const ModuleInfo& info, const QuantScheme& sc) {
  const int64_t g = sc.group_size == -1 ? info.k : sc.group_size;
  for (const auto& t : r.module_tensors(m)) {
    if (t.find("pre_quant_scale") != std::string::npos || t.find("prequant_scaling_factor") != std::string::npos)
      return "has a pre_quant_scale (ModelOpt AWQ), which GGUF cannot store";
    if (t.size() >= 5 && t.compare(t.size() - 5, 5, "g_idx") == 0) {
      const TensorView& v = dir.get(t);
      for (int64_t i = 0; i < v.numel() && i < info.k; ++i)
        if (int64_t(load_as_double(v.data, v.dtype, size_t(i))) != i / g) return "uses act-order (g_idx not k / group_size), which GGUF blocks cannot represent";
    }
  }
  if (g % 32 != 0) return "group size " + std::to_string(g) + " is not a multiple of ggml's 32-column block";
  if (sc.bits == 8 && sc.zero_point) return "asymmetric 8-bit: Q8_0 has no zero point";
  if (sc.bits != 4 && sc.bits != 8) return std::to_string(sc.bits) + "-bit codes have no GGUF block type that keeps them";
  return "";
}

// A written scale that is 0 where the source's is not collapses its group: every code dequantizes
// to one value. That happens when f16 cannot hold the scale but as 0 (below its smallest subnormal,
// 5.96e-8; Q4_0, Q4_1, Q8_0's d, Q4_K's super-block d), or, in Q4_K, when a sub-block's scale is
// below half a step of its super-block's 6-bit grid (d·sc = 0). A Q4_1 min m = −z·s that becomes 0
// is counted too (f16 underflow). Q4_K's other 6-bit rounding is its documented error, not this.
struct Underflow {
  size_t groups = 0;                // blocks (Q4_0/Q4_1/Q8_0: groups; Q4_K: 32-column sub-blocks) hit
  int64_t row = -1, group = -1;     // the first
  double value = 0;                 // the source value there
  std::string field;                // "scale", "min -z*s", "Q4_K scale d*sc"
};

float f16_field(const std::string& b, size_t at) {
  uint16_t h;
  std::memcpy(&h, b.data() + at, 2);
  return f16_to_f32(h);
}

// Reads back the scale (and min) fields of `bytes` (rows [r0, r1) of q packed as `type` by
// pack_ggml) and counts the places where a non-zero finite source scale or min was written as 0.
void scan_underflow(const QuantLinear& q, GgmlType type, const std::string& bytes, int64_t r0, int64_t r1, Underflow& u) {
  const int64_t sub = type == GgmlType::Q4_K ? 256 : 32;  // columns per block
  const size_t block = ggml_nbytes(type, sub), per_row = size_t(q.k / sub);
  auto scale_at = [&](int64_t r, int64_t c) { return q.scales[size_t(r * q.n_groups + c / q.group_size)]; };
  auto hit = [&](int64_t r, int64_t c, double v, const char* field) {
    ++u.groups;
    if (u.row < 0) u.row = r, u.group = c / q.group_size, u.value = v, u.field = field;
  };
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c0 = 0; c0 < q.k; c0 += sub) {
      const size_t at = (size_t(r - r0) * per_row + size_t(c0 / sub)) * block;
      if (type == GgmlType::Q4_K) {
        gguf_detail::BlockQ4_K b;
        std::memcpy(&b, bytes.data() + at, sizeof b);
        const float d = f16_to_f32(b.d);
        for (int j = 0; j < 8; ++j) {
          const float s = scale_at(r, c0 + 32 * j);
          uint8_t sc, m;
          gguf_detail::q4k_scale_min(j, b.scales, &sc, &m);
          if (std::isfinite(s) && s != 0 && d * float(sc) == 0) hit(r, c0 + 32 * j, s, "Q4_K scale d*sc");
        }
        continue;
      }
      if (c0 % q.group_size != 0) continue;  // the group's blocks share its scale and zero
      const float s = scale_at(r, c0);
      const int32_t z = q.zeros[size_t(r * q.n_groups + c0 / q.group_size)];
      if (!std::isfinite(s) || s == 0) continue;
      if (f16_field(bytes, at) == 0) hit(r, c0, s, "scale");
      else if (type == GgmlType::Q4_1 && z != 0 && f16_field(bytes, at + 2) == 0) hit(r, c0, -double(z) * s, "min -z*s");
    }
}

void add_arch_metadata(GgufWriter& w, const ModelConfig& c, const nlohmann::json& cfg, const std::string& name, uint32_t file_type) {
  const std::string a = gguf_arch_name(c);
  w.add_string("general.architecture", a);
  w.add_string("general.type", "model");
  w.add_string("general.name", name);
  w.add_u32(a + ".block_count", uint32_t(c.layers));
  w.add_u32(a + ".context_length", uint32_t(c.max_positions));
  w.add_u32(a + ".embedding_length", uint32_t(c.hidden));
  w.add_u32(a + ".feed_forward_length", uint32_t(c.intermediate));
  w.add_u32(a + ".attention.head_count", uint32_t(c.heads));
  w.add_u32(a + ".attention.head_count_kv", uint32_t(c.kv_heads));
  w.add_f32(a + ".rope.freq_base", float(c.rope_theta));
  w.add_f32(a + ".attention.layer_norm_rms_epsilon", float(c.rms_eps));
  // llama.cpp derives n_embd / n_head when these are absent: written whenever head_dim is explicit
  // or differs from that (Qwen3's default of 128).
  if ((cfg.contains("head_dim") && !cfg["head_dim"].is_null()) || c.head_dim * c.heads != c.hidden) {
    w.add_u32(a + ".attention.key_length", uint32_t(c.head_dim));
    w.add_u32(a + ".attention.value_length", uint32_t(c.head_dim));
  }
  w.add_u32("general.file_type", file_type);
  if (a == "llama") {
    w.add_u32(a + ".vocab_size", uint32_t(c.vocab));
    w.add_u32(a + ".rope.dimension_count", uint32_t(c.head_dim));
  }
  w.add_u32("general.quantization_version", 2);  // GGML_QNT_VERSION
}

}  // namespace

ConvertResult convert_to_gguf(const ModelDir& dir, const FormatReader* qreader, const ConvertOptions& opt) {
  ConvertResult res;
  res.from = qreader ? qreader->scheme().format : "dense";
  res.to = "gguf";
  if (opt.gguf_type != "q4_1" && opt.gguf_type != "q4_k") throw Error("--gguf-type must be q4_1 or q4_k, not \"" + opt.gguf_type + "\"");
  const GgmlType dense_type = parse_dense_type(opt.dense_type);
  const std::string out_path = opt.out_dir;
  // Never inside or over the model, a directory, a device, or an existing file without --force.
  check_output_file(out_path, opt.force, {dir.path()}, "--to gguf -o");
  const ModelConfig cfg = parse_model_config(dir.config(), dir.path() + "/config.json");
  std::map<std::string, std::string> module_of;  // HF weight name -> module
  std::set<std::string> consumed;
  if (qreader)
    for (const auto& m : qreader->modules()) {
      module_of[qreader->dense_name(m)] = m;
      for (const auto& t : qreader->module_tensors(m)) consumed.insert(t);
    }
  std::map<std::string, const TensorView*> dense;  // HF name -> stored tensor
  for (const TensorView* tv : dir.tensors())
    if (!consumed.count(tv->name)) {
      const TensorView* src = tv;
      for (const TensorView* o : opt.dense_overrides)  // quantize's folded norms (ConvertOptions)
        if (o->name == tv->name) src = o;
      dense[qreader ? qreader->dense_tensor_name(tv->name) : tv->name] = src;
    }

  // Plan.
  std::vector<Planned> plan;
  std::set<std::string> used;
  const bool want_k = opt.gguf_type == "q4_k";
  bool any_q4_0 = false, any_q4_1 = false, any_q8 = false;
  for (const GgufTensorName& n : gguf_tensor_names(cfg)) {
    Planned p;
    p.name = n;
    used.insert(n.hf);
    if (auto it = module_of.find(n.hf); it != module_of.end()) {
      const FormatReader& reader = *qreader;  // modules exist only with a reader
      const QuantScheme& sc = reader.scheme();
      p.module = it->second;
      const ModuleInfo info = reader.check(p.module);
      p.ne = {info.k, info.n};
      if (info.k % 32 != 0) fail(dir.path(), p.module, "in_features " + std::to_string(info.k) + " is not a multiple of 32: no GGUF block type fits");
      p.requant = requant_reason(dir, reader, p.module, info, sc);
      if (!p.requant.empty() && !opt.requantize) fail(dir.path(), p.module, p.requant + "; pass --requantize to re-quantize it with ggml's own rounding");
      if (!p.requant.empty()) p.type = sc.bits <= 4 ? GgmlType::Q4_1 : GgmlType::Q8_0;
      else if (sc.bits == 8) p.type = GgmlType::Q8_0;
      else if (want_k && info.k % 256 == 0) p.type = GgmlType::Q4_K;
      else {
        p.type = sc.zero_point ? GgmlType::Q4_1 : GgmlType::Q4_0;
        if (want_k) res.notes.push_back(n.gguf + ": in_features " + std::to_string(info.k) + " is not a multiple of 256, so it is " +
                                        ggml_type_name(p.type) + " (exact) instead of q4_K");
      }
    } else if (auto d = dense.find(n.hf); d != dense.end()) {
      p.view = d->second;
      const auto& s = p.view->shape;
      if (s.size() == 1) {
        p.ne = {s[0]};
        p.type = GgmlType::F32;  // norms and biases: llama.cpp's CPU ops need F32
      } else if (s.size() == 2) {
        p.ne = {s[1], s[0]};
        p.type = dense_type;
        if (dense_type == GgmlType::Q8_0 && s[1] % 32 != 0) {
          p.type = GgmlType::F16;
          res.notes.push_back(n.gguf + ": row length " + std::to_string(s[1]) + " is not a multiple of 32, so it is f16 instead of q8_0");
        }
      } else {
        fail(*p.view->file, p.view->name, "expected 1 or 2 dimensions, found " + p.view->shape_str());
      }
    } else {
      fail(dir.path(), n.hf, "missing: " + cfg.architecture + " needs it for " + n.gguf);
    }
    any_q4_0 |= p.type == GgmlType::Q4_0;
    any_q4_1 |= p.type == GgmlType::Q4_1;
    any_q8 |= p.type == GgmlType::Q8_0;
    plan.push_back(std::move(p));
    if (plan.back().name.gguf == "token_embd.weight" && cfg.rope_scaling.type == RopeScaling::Type::kLlama3) {
      Planned r;
      r.name = {"", "rope_freqs.weight"};
      r.rope_freqs = true;
      r.ne = {cfg.head_dim / 2};
      r.type = GgmlType::F32;
      plan.push_back(r);
    }
  }
  for (const auto& [name, tv] : dense)
    if (!used.count(name)) res.notes.push_back("not exported (llama.cpp does not use it): " + name);
  for (const auto& [name, m] : module_of)
    if (!used.count(name)) fail(dir.path(), m, "quantized module that " + cfg.architecture + " does not have; nothing is written");

  // LLAMA_FTYPE (llama.h): MOSTLY_Q4_K_S 14, MOSTLY_Q4_1 3, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7, MOSTLY_F16 1,
  // MOSTLY_BF16 32.
  const uint32_t file_type = module_of.empty() ? (dense_type == GgmlType::BF16 ? 32 : any_q8 ? 7 : 1)
                             : want_k          ? 14
                             : any_q4_1        ? 3
                             : any_q4_0        ? 2
                             : any_q8          ? 7
                                               : 1;
  if (!qreader) res.notes.push_back("dense checkpoint: every linear is " + ggml_type_name(dense_type) + " (--dense-type)");
  GgufWriter w(out_path);
  w.set_replace(opt.force);  // a file created while this ran is replaced only with --force too
  add_arch_metadata(w, cfg, dir.config(), fs::path(dir.path()).filename().string(), file_type);
  const auto vocab = add_gguf_vocab(dir.path(), dir.config(), cfg.vocab, w);
  if (!vocab.written) res.notes.push_back("no tokenizer.json: the GGUF has no tokenizer.ggml.* metadata (llama.cpp needs one to run it)");
  uint64_t total = 0;
  for (const auto& p : plan) {
    w.add_tensor(p.name.gguf, p.ne, p.type);
    int64_t numel = 1;
    for (int64_t d : p.ne) numel *= d;
    total += ggml_nbytes(p.type, numel);
  }
  w.begin_data();
  Progress bar("convert", total, opt.progress);
  std::map<int64_t, ConvertResult::LayerDiff> diffs;
  auto note_diff = [&](const Planned& p, double d) {
    auto& e = diffs[p.name.layer];
    e.layer = p.name.layer;
    if (d > e.max_abs || e.tensor.empty()) {
      e.max_abs = d;
      e.tensor = p.name.gguf;
    }
  };
  // Rows are produced, compared and written in chunks of about kChunk elements, so working memory
  // is O(one module's codes + one chunk) — a whole tensor only where rows must be permuted.
  constexpr int64_t kChunk = int64_t(1) << 22;
  for (const auto& p : plan) {
    const int64_t rows = p.ne.size() == 2 ? p.ne[1] : 1, cols = p.ne[0];
    const int64_t step = p.name.permute_heads > 0 ? rows : std::max<int64_t>(1, kChunk / cols);
    double worst = 0, num = 0, den = 0;
    std::string bytes;
    auto emit = [&](std::string&& b) {
      if (p.name.permute_heads > 0) bytes += b;  // permuted once complete
      else {
        w.append(b.data(), b.size());
        bar.advance(b.size());
      }
    };
    // Every value written is read back as ggml will: a NaN/Inf there is refused (nothing written),
    // naming the tensor and whether the source held it or the GGUF type cannot (f16 d/m, f16 tensors).
    auto compare = [&](const std::string& b, const float* ref, int64_t n, int64_t r0) {
      const std::vector<float> got = ggml_values(p.type, b, n);
      for (int64_t i = 0; i < n; ++i) {
        if (std::isfinite(got[size_t(i)]) || (!std::isfinite(ref[i]) && opt.allow_nonfinite)) continue;
        const std::string tensor = p.module.empty() ? (p.view ? p.view->name : p.name.gguf) : p.module;
        const std::string at = "row " + std::to_string(r0 + i / cols) + ", column " + std::to_string(i % cols);
        if (!std::isfinite(ref[i]))
          fail(dir.path(), tensor, "NaN/Inf in the source at " + at + "; refusing to write it into " + p.name.gguf +
                                       " (awq check reports it as `nonfinite`). Fix the source, or pass --allow-nonfinite to carry it through");
        fail(dir.path(), tensor, "the value " + std::to_string(ref[i]) + " at " + at + " becomes " + std::to_string(got[size_t(i)]) + " as " +
                                     ggml_type_name(p.type) + " in " + p.name.gguf +
                                     " (its f16 fields cannot hold it); nothing is written" +
                                     (p.module.empty() ? "; try --dense-type bf16" : ""));
      }
      for (int64_t i = 0; i < n; ++i) {
        const double d = double(got[size_t(i)]) - double(ref[i]);
        worst = std::max(worst, std::fabs(d));
        num += d * d;
        den += double(ref[i]) * double(ref[i]);
      }
    };
    if (p.rope_freqs) {
      emit(encode_dense(llama3_rope_factors(cfg), GgmlType::F32));
    } else if (p.view) {
      const TensorView& v = *p.view;
      if (!is_float(v.dtype) || (v.dtype != DType::F16 && v.dtype != DType::BF16 && v.dtype != DType::F32))
        fail(*v.file, v.name, "dtype " + std::string(dtype_name(v.dtype)) + " is not exported to GGUF (expected F16, BF16 or F32)");
      std::vector<float> x;
      for (int64_t r0 = 0; r0 < rows; r0 += step) {
        const int64_t r1 = std::min(rows, r0 + step);
        x.resize(size_t((r1 - r0) * cols));
        for (size_t i = 0; i < x.size(); ++i) x[i] = load_float(v.data, v.dtype, size_t(r0 * cols) + i);
        std::string b = encode_dense(x, p.type);
        compare(b, x.data(), int64_t(x.size()), r0);
        emit(std::move(b));
      }
      note_diff(p, worst);
    } else {
      const QuantLinear raw = qreader->read(p.module);
      Underflow underflow;
      QuantLinear q;
      if (p.requant.empty()) {
        q = to_integer_zeros(raw);
        q.name = p.module;
      }
      std::vector<float> ref;
      for (int64_t r0 = 0; r0 < rows; r0 += step) {
        const int64_t r1 = std::min(rows, r0 + step);
        ref.resize(size_t((r1 - r0) * cols));
        dequantize_rows_ref(raw, DType::F32, r0, r1, reinterpret_cast<uint8_t*>(ref.data()));
        std::string b;
        if (p.requant.empty()) {
          b = pack_ggml(q, p.type, r0, r1);
          scan_underflow(q, p.type, b, r0, r1, underflow);
          if (underflow.groups > 0 && !opt.allow_underflow)
            fail(dir.path(), role_tensor_name(*qreader, p.module, "scales"),
                 "the source value " + fmt_g(underflow.value) + " at row " + std::to_string(underflow.row) + ", group " +
                     std::to_string(underflow.group) + " would be written to " + p.name.gguf + " as a " + underflow.field + " of 0 (" +
                     (underflow.field == "Q4_K scale d*sc" ? "below half a step of its super-block's 6-bit scales, or f16's smallest subnormal"
                                                           : "below f16's smallest subnormal, 5.96e-8") +
                     "): that group's codes would all dequantize to one value; nothing is written. " +
                     (p.type == GgmlType::Q4_K ? "Use --gguf-type q4_1 (exact), or pass" : "Pass") +
                     " --allow-underflow to write such groups that way (one warning per tensor)");
        } else if (p.type == GgmlType::Q8_0) {
          b.assign(ggml_nbytes(p.type, int64_t(ref.size())), '\0');
          quantize_q8_0_ref(ref.data(), int64_t(ref.size()), reinterpret_cast<uint8_t*>(b.data()));
        } else {
          quantize_q4_1_ref(ref.data(), int64_t(ref.size()), b);
        }
        compare(b, ref.data(), int64_t(ref.size()), r0);
        emit(std::move(b));
      }
      note_diff(p, worst);
      if (underflow.groups > 0)
        res.warnings.push_back("warning: " + role_tensor_name(*qreader, p.module, "scales") + ": " + std::to_string(underflow.groups) +
                               " block(s) whose " + underflow.field + " is written as 0 in " + p.name.gguf + " (first at row " +
                               std::to_string(underflow.row) + ", group " + std::to_string(underflow.group) + ": source value " +
                               fmt_g(underflow.value) + "): their codes dequantize to one value (--allow-underflow)");
      if (!p.requant.empty())
        res.requantized.push_back({p.module, p.requant + " (re-quantized to " + ggml_type_name(p.type) + " with ggml's reference rounding)", worst,
                                   den > 0 ? std::sqrt(num / den) : 0.0});
      ++res.modules;
    }
    if (p.name.permute_heads > 0) {
      bytes = permute_rows(bytes, p.ne.size() == 2 ? p.ne[1] : p.ne[0], p.name.permute_heads);  // a bias: one row per element
      w.append(bytes.data(), bytes.size());
      bar.advance(bytes.size());
    }
    ++res.tensors;
  }
  bar.finish();
  w.commit();
  res.shards = 1;
  res.bytes = fs::file_size(out_path);
  for (const auto& [layer, d] : diffs) {
    res.layer_diffs.push_back(d);
    if (d.max_abs > res.max_abs_diff || res.max_diff_module.empty()) {
      res.max_abs_diff = std::max(res.max_abs_diff, d.max_abs);
      res.max_diff_module = d.tensor;
    }
  }
  if (vocab.written)
    res.notes.push_back("tokenizer: " + vocab.model + " (pre " + vocab.pre + "), " + std::to_string(vocab.tokens) + " tokens, " +
                        std::to_string(vocab.merges) + " merges, add_bos_token " + (vocab.add_bos ? "true" : "false"));
  return res;
}

}  // namespace awq
