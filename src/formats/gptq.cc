// GPTQ layout (docs/formats.md §7; AutoGPTQ / GPTQModel / optimum). Per quantized Linear <m>, with
// pf = 32/bits values per int32 word (bits 2, 4 or 8; 3-bit's word-spanning packing is refused):
//   <m>.qweight  I32 [K/pf, N]        packed along K, sequential: bits·i of qweight[r][n] = q[pf·r+i][n]
//   <m>.qzeros   I32 [ceil(K/G), N/pf] packed along N, sequential: bits·i of qzeros[g][c] = zs[g][pf·c+i]
//   <m>.scales   F16/BF16/F32 [ceil(K/G), N]
//   <m>.g_idx    I32 [K], optional: group of input column k (act-order / desc_act); else k / G
//   <m>.bias     optional, read into QuantLinear::bias, not consumed
// Zero convention (scheme.gptq_format): "v1" (checkpoint_format "gptq", the default) stores
// zs = z − 1 and we use z = (zs + 1) & (2^bits − 1), masking *after* the +1, exactly as AutoGPTQ's
// qlinear_cuda_old torch path (the class AutoGPTQ loads for desc_act=False, and the reference the
// golden files are made from). So a stored 15 — what pack() writes for a true z = 0, after which
// the −1 also sets every higher nibble of that word to 15 — reads as z = 0, right for the true
// zero. ExLlama / vLLM / Marlin and AutoGPTQ's qlinear_cuda add 1 unmasked and get z = 16 there;
// the two agree whenever no stored nibble is 15. "v2" (checkpoint_format "gptq_v2") stores z.
// Canonical form: codes = q, ZeroMode::kInteger with the zero above, w = s·(q − z) rounded once.
#include "formats/common.h"
#include "formats/readers.h"

namespace awq::fmt_detail {
namespace {

const char* kLayout = "gptq";

class GptqReader final : public SuffixReader {
 public:
  GptqReader(const ModelDir& dir, QuantScheme s) : SuffixReader(dir, std::move(s), ".qweight") { check_all(); }

  std::vector<std::string> module_tensors(const std::string& m) const override {
    std::vector<std::string> t = {m + ".qweight", m + ".qzeros", m + ".scales"};
    if (dir_.find(m + ".g_idx")) t.push_back(m + ".g_idx");
    return t;
  }

  ModuleInfo check(const std::string& m) const override {
    const Dims d = shapes(m);
    return {d.n, d.k, dir_.get(m + ".scales").dtype};
  }

  bool act_order(const std::string& m) const override {
    const Dims d = shapes(m);
    const TensorView* gi = dir_.find(m + ".g_idx");
    return gi && QuantLinear::is_act_order(load_ints(*gi), d.g);
  }

  QuantLinear read(const std::string& m) const override {
    const Dims d = shapes(m);
    const int bits = scheme_.bits, pf = 32 / bits;
    const uint32_t mask = (1u << bits) - 1;
    const TensorView& qw = dir_.get(m + ".qweight");
    const TensorView& qz = dir_.get(m + ".qzeros");
    const TensorView& sc = dir_.get(m + ".scales");
    QuantLinear q = make_linear(m, scheme_.format, d.n, d.k, bits, d.g, scheme_.group_size == -1, d.ng);
    q.zero_mode = ZeroMode::kInteger;
    q.scale_dtype = sc.dtype;
    for (int64_t r = 0; r < d.k / pf; ++r)
      for (int64_t n = 0; n < d.n; ++n) {
        const uint32_t w = load_u32(qw, size_t(r * d.n + n));
        for (int i = 0; i < pf; ++i) q.codes[size_t(n * d.k + pf * r + i)] = uint8_t((w >> (bits * i)) & mask);
      }
    const uint32_t plus = scheme_.gptq_format == "v1" ? 1 : 0;
    q.zeros.resize(q.scales.size());
    const int64_t zw = d.n / pf;
    for (int64_t g = 0; g < d.ng; ++g)
      for (int64_t n = 0; n < d.n; ++n) {
        const uint32_t w = load_u32(qz, size_t(g * zw + n / pf));
        q.zeros[size_t(n * d.ng + g)] = int32_t((((w >> (bits * (n % pf))) & mask) + plus) & mask);
        q.scales[size_t(n * d.ng + g)] = load_float(sc.data, sc.dtype, size_t(g * d.n + n));
      }
    if (const TensorView* gi = dir_.find(m + ".g_idx")) {
      const auto v = load_ints(*gi);
      q.g_idx.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] < 0 || v[i] >= d.ng)
          bad(*gi, "g_idx[" + std::to_string(i) + "] = " + std::to_string(v[i]) + " is outside [0, " + std::to_string(d.ng) +
                       ") (scales has " + std::to_string(d.ng) + " groups)");
        q.g_idx[i] = int32_t(v[i]);
      }
    }
    read_bias(dir_, m, q);
    return q;
  }

 private:
  struct Dims { int64_t n, k, g, ng; };
  Dims shapes(const std::string& m) const {
    const int bits = scheme_.bits, pf = 32 / bits;
    const TensorView& qw = need(dir_, m + ".qweight", kLayout);
    need_dtype(qw, {DType::I32}, "qweight");
    need_rank(qw, 2, "qweight");
    const int64_t k = qw.dim(0) * pf, n = qw.dim(1);
    if (k == 0 || n == 0) bad(qw, "qweight is empty");
    const TensorView& sc = need(dir_, m + ".scales", kLayout);
    need_dtype(sc, {DType::F16, DType::BF16, DType::F32}, "scales");
    need_rank(sc, 2, "scales");
    if (sc.dim(1) != n)
      bad(sc, "scales has shape " + sc.shape_str() + " but qweight " + qw.shape_str() + " implies N = " + std::to_string(n) +
                  " (GPTQ stores qweight as [K/" + std::to_string(pf) + ", N] and scales as [ceil(K/G), N])");
    const int64_t g = scheme_.group_size == -1 ? k : scheme_.group_size;
    if (g <= 0) bad(qw, "invalid group_size " + std::to_string(scheme_.group_size));
    const int64_t ng = (k + g - 1) / g;
    if (sc.dim(0) != ng) {
      const std::string implied = sc.dim(0) > 0 ? std::to_string((k + sc.dim(0) - 1) / sc.dim(0)) : "none";
      bad(sc, "config group_size " + std::to_string(scheme_.group_size) + " and bits " + std::to_string(bits) + " imply " +
                  std::to_string(ng) + " groups for K = " + std::to_string(k) + " (qweight " + qw.shape_str() +
                  "), but scales has " + std::to_string(sc.dim(0)) + " (the tensors imply group size " + implied + ")");
    }
    if (n % pf != 0) bad(qw, "N = " + std::to_string(n) + " is not a multiple of " + std::to_string(pf) + ", so qzeros cannot be packed");
    const TensorView& qz = need(dir_, m + ".qzeros", kLayout);
    need_dtype(qz, {DType::I32}, "qzeros");
    if (qz.shape != std::vector<int64_t>{ng, n / pf})
      bad(qz, "qzeros has shape " + qz.shape_str() + ", expected [" + std::to_string(ng) + ", " + std::to_string(n / pf) +
                  "] ([ceil(K/G), N/" + std::to_string(pf) + "] at " + std::to_string(bits) + " bits)");
    if (const TensorView* gi = dir_.find(m + ".g_idx")) {
      need_dtype(*gi, {DType::I32, DType::I64}, "g_idx");
      if (gi->shape != std::vector<int64_t>{k})
        bad(*gi, "g_idx has shape " + gi->shape_str() + ", expected [" + std::to_string(k) + "] (one group index per input column, K = " +
                     std::to_string(k) + " from qweight " + qw.shape_str() + " at " + std::to_string(bits) + " bits)");
    }
    return {n, k, g, ng};
  }
};

// Bits of a config-less module from its shapes: qzeros [ng, N·bits/32] against scales [ng, N],
// else qweight [K·bits/32, N] against g_idx [K]; 4 when neither pins it down to 2, 4 or 8.
int infer_bits(const ModelDir& dir, const std::string& m) {
  const TensorView* qw = dir.find(m + ".qweight");
  const TensorView* qz = dir.find(m + ".qzeros");
  const TensorView* sc = dir.find(m + ".scales");
  const TensorView* gi = dir.find(m + ".g_idx");
  auto pick = [](int64_t packed, int64_t values) {
    for (int b : {4, 8, 2})
      if (values > 0 && packed * 32 == values * b) return b;
    return 0;
  };
  int b = 0;
  if (qz && sc && qz->shape.size() == 2 && sc->shape.size() == 2) b = pick(qz->dim(1), sc->dim(1));
  if (!b && qw && gi && qw->shape.size() == 2 && gi->shape.size() == 1) b = pick(qw->dim(0), gi->dim(0));
  return b ? b : 4;
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::unique_ptr<FormatReader> open_gptq(const ModelDir& dir, const nlohmann::json* cfg) {
  QuantScheme s;
  s.format = kLayout;
  s.version = "gptq";
  if (cfg) {
    const std::string method = lower(cfg_str(*cfg, {"quant_method"}, "gptq"));
    if (method != "gptq") throw Error("GPTQ quantization config: quant_method is \"" + method + "\", expected \"gptq\"");
    s.bits = int(cfg_int(*cfg, {"bits", "w_bit"}, 4));
    s.group_size = cfg_int(*cfg, {"group_size", "q_group_size"}, 128);
    s.zero_point = !cfg_bool(*cfg, {"sym"}, true);
    const std::string f = lower(cfg_str(*cfg, {"checkpoint_format", "format"}, "gptq"));
    if (f == "gptq") s.gptq_format = "v1";
    else if (f == "gptq_v2") s.gptq_format = "v2";
    else
      throw Error("GPTQ quantization config: checkpoint_format \"" + f + "\" is not read (known: gptq, gptq_v2; "
                  "marlin, bitblas and awq_gemm are other layouts)");
    if (cfg_bool(*cfg, {"is_marlin_format"}, false))
      throw Error("GPTQ quantization config: is_marlin_format is true; Marlin-packed GPTQ is not read");
    s.version = f;
    s.modules_to_not_convert = cfg_str_list(*cfg, "modules_to_not_convert");
  } else {
    // No config: v1; bits from the first module's shapes (see infer_bits); the group size common
    // to every module's (K, groups), else the first module's ceil(K / groups); symmetric when the
    // first module's stored zeros all equal 2^(bits-1) - 1 (4-bit: words 0x77777777).
    s.bits = 4;
    s.gptq_format = "v1";
    const auto mods = modules_with_suffix(dir, ".qweight");
    if (!mods.empty()) {
      s.bits = infer_bits(dir, mods[0]);
      const int64_t pf = 32 / s.bits;
      std::vector<std::pair<int64_t, int64_t>> kg;
      for (const auto& m : mods) {
        const TensorView* qw = dir.find(m + ".qweight");
        const TensorView* sc = dir.find(m + ".scales");
        if (qw && sc && qw->shape.size() == 2 && sc->shape.size() == 2) kg.emplace_back(qw->dim(0) * pf, sc->dim(0));
      }
      s.group_size = infer_group_size(kg);
      const TensorView* qw = dir.find(mods[0] + ".qweight");
      const TensorView* sc = dir.find(mods[0] + ".scales");
      const TensorView* qz = dir.find(mods[0] + ".qzeros");
      if (s.group_size == 0 && qw && sc && qw->shape.size() == 2 && sc->shape.size() == 2 && sc->dim(0) > 0) {
        const int64_t k = qw->dim(0) * pf;
        s.group_size = sc->dim(0) == 1 ? -1 : (k + sc->dim(0) - 1) / sc->dim(0);
      }
      if (s.group_size == 0) s.group_size = 128;
      uint32_t sym_word = 0;
      for (int i = 0; i < 32 / s.bits; ++i) sym_word |= ((1u << (s.bits - 1)) - 1) << (s.bits * i);
      bool sym = qz && qz->dtype == DType::I32;
      for (int64_t i = 0; sym && i < qz->numel(); ++i) sym = load_u32(*qz, size_t(i)) == sym_word;
      s.zero_point = !sym;
    }
  }
  if (s.bits != 2 && s.bits != 4 && s.bits != 8)
    throw Error("GPTQ quantization config: bits = " + std::to_string(s.bits) + "; only 2, 4 and 8 are read (3-bit packing spans words)");
  if (s.group_size == 0 || s.group_size < -1) throw Error("GPTQ quantization config: invalid group_size " + std::to_string(s.group_size));
  return std::make_unique<GptqReader>(dir, std::move(s));
}

}  // namespace awq::fmt_detail
