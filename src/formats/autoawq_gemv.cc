// AutoAWQ GEMV layout (docs/formats.md §4; llm-awq 2023-09..2024-02): qweight I32 [N, K/8] packed
// along K in sequential order (nibble i of word c holds k = 8c + i); qzeros I32 [N, Wz] (nibble j
// of word c holds group 8c + j, slots past K/G are 0); scales F16 [N, 8·Wz] zero-padded past K/G.
// w = s·(q − z).
#include "formats/awq_common.h"
#include "formats/common.h"
#include "formats/readers.h"

namespace awq::fmt_detail {
namespace {

class AwqGemvReader final : public SuffixReader {
 public:
  AwqGemvReader(const ModelDir& dir, QuantScheme s) : SuffixReader(dir, std::move(s), ".qweight") { check_all(); }

  std::vector<std::string> module_tensors(const std::string& m) const override {
    return {m + ".qweight", m + ".qzeros", m + ".scales"};
  }

  ModuleInfo check(const std::string& m) const override {
    const Dims d = shapes(m);
    return {d.n, d.k, dir_.get(m + ".scales").dtype};
  }

  QuantLinear read(const std::string& m) const override {
    const Dims d = shapes(m);
    const TensorView& qw = dir_.get(m + ".qweight");
    const TensorView& qz = dir_.get(m + ".qzeros");
    const TensorView& sc = dir_.get(m + ".scales");
    const int64_t ng = d.k / d.g;
    QuantLinear q = make_linear(m, scheme_.format, d.n, d.k, 4, d.g, scheme_.group_size == -1, ng);
    q.zero_mode = ZeroMode::kInteger;
    q.scale_dtype = sc.dtype;
    q.zeros.resize(q.scales.size());
    const int64_t words = d.k / 8;
    for (int64_t n = 0; n < d.n; ++n) {
      for (int64_t c = 0; c < words; ++c) {
        const uint32_t w = load_u32(qw, size_t(n * words + c));
        for (int i = 0; i < 8; ++i) q.codes[size_t(n * d.k + 8 * c + i)] = uint8_t((w >> (4 * i)) & 0xF);
      }
      for (int64_t g = 0; g < ng; ++g) {
        const uint32_t w = load_u32(qz, size_t(n * d.wz + g / 8));
        q.zeros[size_t(n * ng + g)] = int32_t((w >> (4 * (g % 8))) & 0xF);
        q.scales[size_t(n * ng + g)] = load_float(sc.data, sc.dtype, size_t(n * 8 * d.wz + g));
      }
    }
    read_bias(dir_, m, q);
    return q;
  }

 private:
  struct Dims { int64_t n, k, g, wz; };
  Dims shapes(const std::string& m) const {
    const std::string layout = "autoawq-gemv";
    const TensorView& qw = need(dir_, m + ".qweight", layout);
    need_dtype(qw, {DType::I32}, "qweight");
    need_rank(qw, 2, "qweight");
    const int64_t n = qw.dim(0), k = qw.dim(1) * 8;
    if (k == 0 || n == 0) bad(qw, "qweight is empty");
    const int64_t g = scheme_.group_size == -1 ? k : scheme_.group_size;
    if (g <= 0 || k % g != 0)
      bad(qw, "K = " + std::to_string(k) + " is not a multiple of group_size " + std::to_string(scheme_.group_size));
    const int64_t wz = awq_zeros_width(k, g);
    if (wz <= 0) bad(qw, "group size " + std::to_string(g) + " is not one the GEMV layout supports (32, 64, >= 128)");
    const TensorView& sc = need(dir_, m + ".scales", layout);
    need_dtype(sc, {DType::F16, DType::BF16, DType::F32}, "scales");
    need_rank(sc, 2, "scales");
    if (sc.dim(0) != n || sc.dim(1) != 8 * wz)
      bad(sc, "scales has shape " + sc.shape_str() + ", expected [" + std::to_string(n) + ", " + std::to_string(8 * wz) +
                  "] for K = " + std::to_string(k) + " and group size " + std::to_string(g) +
                  " (GEMV pads to 8 x calculate_zeros_width(K, G) columns)");
    const TensorView& qz = need(dir_, m + ".qzeros", layout);
    need_dtype(qz, {DType::I32}, "qzeros");
    need_shape(qz, {n, wz}, "qzeros");
    return {n, k, g, wz};
  }
};

}  // namespace

std::unique_ptr<FormatReader> open_autoawq_gemv(const ModelDir& dir, const nlohmann::json* cfg) {
  QuantScheme s = awq_scheme(cfg, "autoawq-gemv");
  if (!cfg) {
    s.version = "gemv";
    s.group_size = infer_padded_group_size(dir, /*transposed=*/false);
  }
  if (!s.zero_point) throw Error("quantization config: zero_point false is not the GEMV layout (it always stores qzeros)");
  return std::make_unique<AwqGemvReader>(dir, std::move(s));
}

}  // namespace awq::fmt_detail
