// Value checks, one tensor or one module at a time: NaN/Inf anywhere; per quantized module the
// zero points' range (GPTQ v1: stored + 1), degenerate scales (<= 0, subnormal, AutoAWQ's clamp
// floor), groups whose codes are all one value, and layers that use little of the code range;
// dense tensors and dequantized modules that overflow fp16 (awq/value_scan.h: the same scans the
// writers refuse on).
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "awq/dtype.h"
#include "awq/model_dir.h"
#include "awq/progress.h"
#include "awq/value_scan.h"
#include "check/check_internal.h"

namespace awq::check_detail {
namespace {

std::string pos(int64_t row, int64_t col, const char* col_word) {
  return "row " + std::to_string(row) + ", " + col_word + " " + std::to_string(col);
}

bool is_embedding(const std::string& name) {
  return ends_with(name, "embed_tokens.weight") || ends_with(name, "wte.weight") || ends_with(name, "tok_embeddings.weight") ||
         ends_with(name, "word_embeddings.weight");
}

// What a non-finite value does, by the tensor's role. An embedding row is read only for its own
// token id, so it poisons the sequences that contain that token (from its position on, through
// attention), not the others; unless the embedding is also the output head (tied), where every
// position's logits include that row. Anything else (norms, biases, a head) reaches every output.
std::string nonfinite_effect(const TensorView& t, size_t bad_rows, int64_t first_row, bool tied_head) {
  if (!is_embedding(t.name) || t.shape.size() != 2)
    return "Every output through it is NaN";
  std::string s = "Only sequences containing the token id(s) of those " + std::to_string(bad_rows) + " row(s) (first: token " +
                  std::to_string(first_row) + ") are poisoned, from that token on; other sequences are unaffected";
  if (tied_head)
    s += ". But the embedding is also the output head (tied), so every position's logits include those rows and "
         "sampling breaks for every sequence";
  return s;
}

// NaN/Inf (the scanner the writers refuse on, awq/value_scan.h) and fp16 overflow in one dense
// (non-module) float tensor.
void scan_dense(const Ctx& c, const TensorView& t, bool fp16_model, bool tied_head) {
  if (!(t.dtype == DType::F16 || t.dtype == DType::BF16 || t.dtype == DType::F32)) return;
  const NonfiniteScan nf = scan_nonfinite(t);
  if (nf.any())
    c.error("nonfinite", t.name,
            nf.summary("values") + ". " + nonfinite_effect(t, nf.rows, nf.cols > 0 ? int64_t(nf.first) / nf.cols : 0, tied_head) +
                ". Fix: re-export from a good source");
  if (!fp16_model || t.dtype == DType::F16) return;
  const size_t n = size_t(t.numel());
  size_t over = 0;
  float worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const float v = std::fabs(load_float(t.data, t.dtype, i));
    if (std::isfinite(v) && !dtype_holds(v, DType::F16)) {
      ++over;
      worst = std::max(worst, v);
    }
  }
  if (over)
    c.warn("fp16-overflow", t.name,
           std::to_string(over) + " value(s) exceed fp16's range (largest |x| = " + fmt_num(worst) + ") in this " +
               std::string(dtype_name(t.dtype)) + " tensor, and config.json says torch_dtype float16: loaders cast it to inf. "
               "Fix: run in bfloat16 (vLLM awq_marlin accepts it) or rescale");
}

// First non-finite entry of a module's [n][groups] (or [k]) float array, with counts.
void scan_groups(const Ctx& c, const std::string& tensor, const NonfiniteScan& s, const std::string& what) {
  if (s.any())
    c.error("nonfinite", tensor,
            s.summary(what) + "; every weight of those groups dequantizes to NaN. Fix: requantize the layer");
}

// Dequantized weights that fp16 cannot hold: the quantized counterpart of the dense check. Fp16
// kernels (AutoAWQ, GPTQ, vLLM awq) compute s·(q − z) in the scale dtype, so with F16 scales the
// weight is Inf whatever the model dtype; with wider scales it matters when the model runs in fp16.
void check_module_range(const Ctx& c, const std::string& m, const QuantLinear& q, bool fp16_model) {
  if (q.scale_dtype != DType::F16 && !fp16_model) return;
  const MagnitudeScan ms = max_abs_dequantized(q);
  if (dtype_holds(ms.max_abs, DType::F16)) return;
  const std::string msg = "dequantized weights reach |w| = " + fmt_num(ms.max_abs) + " at output row " + std::to_string(ms.row) +
                          ", group " + std::to_string(ms.group) + ", beyond fp16's 65504: " +
                          (q.scale_dtype == DType::F16 ? "fp16 kernels (scales are F16) produce Inf there"
                                                       : "config.json says torch_dtype float16, so loaders produce Inf there") +
                          ", and awq dequantize --dtype f16 refuses it. Fix: requantize the layer, or run and dequantize in " +
                          dtypes_holding(ms.max_abs);
  if (q.scale_dtype == DType::F16) c.error("fp16-overflow", m, msg);
  else c.warn("fp16-overflow", m, msg);
}

std::string role_tensor(const FormatReader& r, const std::string& m, const char* part, const char* avoid = nullptr) {
  for (const auto& t : r.module_tensors(m)) {
    const std::string leafname = t.substr(m.size());
    if (leafname.find(part) != std::string::npos && (!avoid || leafname.find(avoid) == std::string::npos)) return t;
  }
  return m;
}

float f16_round(float x) { return f16_to_f32(f32_to_f16(x)); }

void check_zero_points(const Ctx& c, const QuantLinear& q, const std::string& zt) {
  const int32_t hi = (1 << q.bits) - 1;
  size_t bad = 0, first = SIZE_MAX;
  // GPTQ v1 stores z − 1, and the reader decodes (stored + 1) & hi as AutoGPTQ does, so a decoded 0
  // can only come from a stored nibble 15: a zero point 0 the packer wrote as −1.
  const bool v1 = c.reader->scheme().format == "gptq" && c.reader->scheme().gptq_format == "v1";
  if (q.zero_mode == ZeroMode::kInteger) {
    for (size_t i = 0; i < q.zeros.size(); ++i)
      if ((q.zeros[i] < 0 || q.zeros[i] > hi || (v1 && q.zeros[i] == 0)) && bad++ == 0) first = i;
  } else if (q.zero_mode == ZeroMode::kScaledFma) {
    for (size_t i = 0; i < q.scaled_zeros.size(); ++i) {
      const float s = q.scales[i];
      if (!(s > 0) || !std::isfinite(q.scaled_zeros[i])) continue;
      const double z = -double(q.scaled_zeros[i]) / double(s);
      if ((z < -0.5 || z > hi + 0.5) && bad++ == 0) first = i;
    }
  }
  if (!bad) return;
  const int64_t row = int64_t(first) / q.n_groups, g = int64_t(first) % q.n_groups;
  std::string val;
  if (q.zero_mode == ZeroMode::kInteger) {
    val = "zero point " + std::to_string(q.zeros[first]);
    if (v1 && q.zeros[first] == 0)
      val += " (stored nibble " + std::to_string(hi) + " + 1, masked to 0 as AutoGPTQ reads it, " + std::to_string(hi + 1) +
             " in ExLlama/vLLM: the mark of a zero point 0 that the packer wrote as -1 across the whole int32 word, "
             "which also corrupts the 7 other zero points in that word)";
    else if (v1)
      val += " (stored nibble " + std::to_string(q.zeros[first] - 1) + " + 1)";
  } else {
    val = "scaled zero " + fmt_num(q.scaled_zeros[first]) + " = -" + fmt_num(-q.scaled_zeros[first] / q.scales[first]) + " x scale";
  }
  c.error("zero-point-range", zt,
          std::to_string(bad) + " of " + std::to_string(q.n * q.n_groups) + " zero points lie outside [0, " + std::to_string(hi) +
              "]; first at output " + pos(row, g, "group") + ": " + val + ". Loaders dequantize those groups to wrong values. "
              "Fix: requantize (for GPTQ v1 with asymmetric zeros of 0, use checkpoint_format gptq_v2)");
}

void check_scales(const Ctx& c, const QuantLinear& q, const std::string& st) {
  const float tiny = q.scale_dtype == DType::F16 ? 6.103515625e-05f : std::numeric_limits<float>::min();
  const float floor_f16 = f16_round(f16_round(1e-5f) / 15.0f);  // AutoAWQ: clamp(max-min, 1e-5) / 15 in fp16
  size_t nonpos = 0, sub = 0, floor = 0, f_np = SIZE_MAX, f_sub = SIZE_MAX, f_floor = SIZE_MAX;
  for (size_t i = 0; i < q.scales.size(); ++i) {
    const float s = q.scales[i];
    if (!std::isfinite(s)) continue;
    if (s <= 0) { if (nonpos++ == 0) f_np = i; continue; }
    const bool is_floor = q.scale_dtype == DType::F16 && s == floor_f16 && q.zero_mode != ZeroMode::kSymmetric;
    if (is_floor) { if (floor++ == 0) f_floor = i; continue; }
    if (s < tiny && sub++ == 0) f_sub = i;
  }
  const size_t total = q.scales.size();
  auto at = [&](size_t i) { return pos(int64_t(i) / q.n_groups, int64_t(i) % q.n_groups, "group"); };
  if (nonpos)
    c.warn("scale-nonpositive", st,
           std::to_string(nonpos) + " of " + std::to_string(total) + " scales are <= 0; first at output " + at(f_np) + " (" +
               fmt_num(q.scales[f_np]) + "): those groups dequantize to 0 or flip sign. Legitimate only for all-zero groups");
  if (floor)
    c.warn("scale-clamp-floor", st,
           std::to_string(floor) + " of " + std::to_string(total) + " scales equal AutoAWQ's clamp floor " + fmt_num(floor_f16) +
               " (max-min clamped to 1e-5, /15); first at output " + at(f_floor) +
               ". Degenerate groups: AutoAWQ does not widen the range to include 0, so a constant group (e.g. all 0.013) "
               "dequantizes to about 1e-5. Fix: requantize those groups with a range that includes 0");
  if (sub)
    c.warn("scale-subnormal", st,
           std::to_string(sub) + " of " + std::to_string(total) + " scales are subnormal in " + std::string(dtype_name(q.scale_dtype)) +
               " (first at output " + at(f_sub) + ": " + fmt_num(q.scales[f_sub]) +
               "); kernels that flush subnormals to zero lose those groups");
}

void check_codes(const Ctx& c, const QuantLinear& q, const std::string& qt) {
  const int levels = 1 << q.bits;
  size_t constant = 0, first_c = SIZE_MAX, groups = 0;
  double span_sum = 0;
  std::vector<uint8_t> lo(size_t(q.n_groups)), hi(size_t(q.n_groups));
  std::vector<bool> used(size_t(levels), false);
  for (int64_t r = 0; r < q.n; ++r) {
    std::fill(lo.begin(), lo.end(), uint8_t(255));
    std::fill(hi.begin(), hi.end(), uint8_t(0));
    const uint8_t* code = q.codes.data() + size_t(r) * size_t(q.k);
    for (int64_t k = 0; k < q.k; ++k) {
      const size_t g = size_t(q.group_of(k));
      lo[g] = std::min(lo[g], code[k]);
      hi[g] = std::max(hi[g], code[k]);
      used[code[k] & (levels - 1)] = true;
    }
    for (int64_t g = 0; g < q.n_groups; ++g) {
      if (lo[size_t(g)] > hi[size_t(g)]) continue;  // empty group (g_idx)
      ++groups;
      span_sum += hi[size_t(g)] - lo[size_t(g)];
      if (lo[size_t(g)] == hi[size_t(g)] && constant++ == 0) first_c = size_t(r * q.n_groups + g);
    }
  }
  if (constant)
    c.warn("group-constant-codes", qt,
           std::to_string(constant) + " of " + std::to_string(groups) + " groups have every code equal (first at output " +
               pos(int64_t(first_c) / q.n_groups, int64_t(first_c) % q.n_groups, "group") +
               "): the group carries one value; fine for constant weights, suspicious otherwise");
  const size_t distinct = size_t(std::count(used.begin(), used.end(), true));
  const double mean_span = groups ? span_sum / double(groups) : 0;
  if (groups > 1 && (distinct <= size_t(levels / 4) || mean_span < (levels - 1) / 4.0))
    c.warn("codes-narrow-range", qt,
           "the layer uses " + std::to_string(distinct) + " of " + std::to_string(levels) + " code values and its groups span " +
               fmt_num(mean_span) + " of " + std::to_string(levels - 1) + " on average; a quantizer whose scales are far too large "
               "(or a wrong zero point) leaves most of the " + std::to_string(q.bits) + "-bit range unused. Fix: requantize the layer");
}

void check_module(const Ctx& c, const std::string& m, bool fp16_model) {
  QuantLinear q;
  try {
    q = c.reader->read(m);
    q.validate();
  } catch (const std::exception& e) {
    c.error("module-unreadable", m, e.what());
    return;
  }
  const std::string st = role_tensor(*c.reader, m, "scale", "zero");
  for (const auto& f : scan_nonfinite(q))
    scan_groups(c, f.role == "scales" ? st : f.role == "scaled zeros" ? role_tensor(*c.reader, m, "zero") : role_tensor(*c.reader, m, "pre_quant"),
                f.scan, f.role);
  check_module_range(c, m, q, fp16_model);
  check_zero_points(c, q, role_tensor(*c.reader, m, "zero"));
  check_scales(c, q, st);
  check_codes(c, q, role_tensor(*c.reader, m, "qweight").size() > m.size() ? role_tensor(*c.reader, m, "qweight") : role_tensor(*c.reader, m, "weight"));
}

}  // namespace

void check_values(const Ctx& c) {
  std::set<std::string> consumed;
  if (c.reader)
    for (const auto& m : c.reader->modules())
      for (const auto& t : c.reader->module_tensors(m)) consumed.insert(t);
  const auto& cfg = c.dir->config();
  const bool fp16_model = cfg.contains("torch_dtype") && cfg["torch_dtype"] == "float16";
  // Tied: loaders use the embedding as the output head too (a stored lm_head.weight is ignored).
  bool tied_head = cfg.value("model_type", std::string()).rfind("gemma", 0) == 0;
  if (cfg.contains("tie_word_embeddings") && cfg["tie_word_embeddings"].is_boolean()) tied_head = cfg["tie_word_embeddings"].get<bool>();
  uint64_t total = 0;
  for (const TensorView* t : c.dir->tensors()) total += t->nbytes;
  Progress bar("check", total, c.progress);
  for (const TensorView* t : c.dir->tensors())
    if (!consumed.count(t->name)) {
      scan_dense(c, *t, fp16_model, tied_head);
      bar.advance(t->nbytes);
    }
  if (c.reader)
    for (const auto& m : c.reader->modules()) {
      check_module(c, m, fp16_model);
      for (const auto& tn : c.reader->module_tensors(m))
        if (const TensorView* t = c.dir->find(tn)) bar.advance(t->nbytes);
    }
  bar.finish();
}

}  // namespace awq::check_detail
