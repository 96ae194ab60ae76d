// AutoAWQ GEMV_fast / llm-awq v3 layout (docs/formats.md §5): qweight I16 [N/4, K] with a 4-row
// interleave and k-stride 64:
//   nibble v of qweight[i][64j + 16r + w] = q[4i + r][64j + 32·(w>>3) + 8v + (w&7)];
// scales [8·Wz, N] and scaled zeros sz = RNE(−s·z) [8·Wz, N] (AutoAWQ names them `qzeros`,
// llm-awq `scaled_zeros`), rows past K/G zero. w = RNE(q·s + sz), the kernel's single fma.
#include "formats/awq_common.h"
#include "formats/common.h"
#include "formats/readers.h"

namespace awq::fmt_detail {
namespace {

class AwqGemvFastReader final : public SuffixReader {
 public:
  AwqGemvFastReader(const ModelDir& dir, QuantScheme s) : SuffixReader(dir, std::move(s), ".qweight") { check_all(); }

  std::vector<std::string> module_tensors(const std::string& m) const override {
    return {m + ".qweight", zeros_name(m), m + ".scales"};
  }

  ModuleInfo check(const std::string& m) const override {
    const Dims d = shapes(m);
    return {d.n, d.k, dir_.get(m + ".scales").dtype};
  }

  QuantLinear read(const std::string& m) const override {
    const Dims d = shapes(m);
    const TensorView& qw = dir_.get(m + ".qweight");
    const TensorView& sz = dir_.get(zeros_name(m));
    const TensorView& sc = dir_.get(m + ".scales");
    const int64_t ng = d.k / d.g;
    QuantLinear q = make_linear(m, scheme_.format, d.n, d.k, 4, d.g, scheme_.group_size == -1, ng);
    q.zero_mode = ZeroMode::kScaledFma;
    q.scale_dtype = sc.dtype;
    q.scaled_zeros.resize(q.scales.size());
    for (int64_t i = 0; i < d.n / 4; ++i)
      for (int64_t col = 0; col < d.k; ++col) {
        uint16_t w;
        std::memcpy(&w, qw.data + 2 * size_t(i * d.k + col), 2);
        const int64_t j = col / 64, r = (col % 64) / 16, ww = col % 16;
        const int64_t n = 4 * i + r;
        for (int v = 0; v < 4; ++v) {
          const int64_t k = 64 * j + 32 * (ww >> 3) + 8 * v + (ww & 7);
          q.codes[size_t(n * d.k + k)] = uint8_t((w >> (4 * v)) & 0xF);
        }
      }
    for (int64_t g = 0; g < ng; ++g)
      for (int64_t n = 0; n < d.n; ++n) {
        q.scales[size_t(n * ng + g)] = load_float(sc.data, sc.dtype, size_t(g * d.n + n));
        q.scaled_zeros[size_t(n * ng + g)] = load_float(sz.data, sz.dtype, size_t(g * d.n + n));
      }
    read_bias(dir_, m, q);
    return q;
  }

 private:
  std::string zeros_name(const std::string& m) const {
    return dir_.find(m + ".scaled_zeros") ? m + ".scaled_zeros" : m + ".qzeros";
  }
  struct Dims { int64_t n, k, g; };
  Dims shapes(const std::string& m) const {
    const std::string layout = "autoawq-gemv-fast";
    const TensorView& qw = need(dir_, m + ".qweight", layout);
    need_dtype(qw, {DType::I16}, "qweight");
    need_rank(qw, 2, "qweight");
    const int64_t n = qw.dim(0) * 4, k = qw.dim(1);
    if (k == 0 || n == 0) bad(qw, "qweight is empty");
    if (k % 64 != 0) bad(qw, "K = " + std::to_string(k) + " is not a multiple of 64 (GEMV_fast packs 64-column strides)");
    const int64_t g = scheme_.group_size == -1 ? k : scheme_.group_size;
    if (g <= 0 || k % g != 0)
      bad(qw, "K = " + std::to_string(k) + " is not a multiple of group_size " + std::to_string(scheme_.group_size));
    const int64_t wz = awq_zeros_width(k, g);
    if (wz <= 0) bad(qw, "group size " + std::to_string(g) + " is not one the GEMV_fast layout supports (32, 64, >= 128)");
    const TensorView& sc = need(dir_, m + ".scales", layout);
    need_dtype(sc, {DType::F16, DType::BF16}, "scales");
    if (sc.shape != std::vector<int64_t>{8 * wz, n})
      bad(sc, "scales has shape " + sc.shape_str() + ", expected [" + std::to_string(8 * wz) + ", " + std::to_string(n) +
                  "] for K = " + std::to_string(k) + " and group size " + std::to_string(g));
    const TensorView& sz = need(dir_, zeros_name(m), layout);
    need_dtype(sz, {sc.dtype}, "scaled zeros (" + sz.name.substr(m.size() + 1) + ")");
    need_shape(sz, sc.shape, "scaled zeros");
    return {n, k, g};
  }
};

}  // namespace

std::unique_ptr<FormatReader> open_autoawq_gemv_fast(const ModelDir& dir, const nlohmann::json* cfg) {
  QuantScheme s = awq_scheme(cfg, "autoawq-gemv-fast");
  if (!cfg) {
    s.version = "gemv_fast";
    s.group_size = infer_padded_group_size(dir, /*transposed=*/true);
  }
  if (!s.zero_point) throw Error("quantization config: zero_point false is not the GEMV_fast layout");
  return std::make_unique<AwqGemvFastReader>(dir, std::move(s));
}

}  // namespace awq::fmt_detail
