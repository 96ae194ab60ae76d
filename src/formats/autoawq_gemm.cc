// AutoAWQ GEMM layout (docs/formats.md §3): qweight I32 [K, N/8] packed along N with the AWQ
// interleave (nibble i holds column 8c + [0,2,4,6,1,3,5,7][i]); qzeros I32 [K/G, N/8] the same;
// scales F16/BF16 [K/G, N]. w = s·(q − z).
#include <algorithm>

#include "formats/common.h"
#include "formats/readers.h"

namespace awq::fmt_detail {
namespace {

constexpr int kAwqReverse[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // column j lives in nibble kAwqReverse[j]

class AwqGemmReader final : public SuffixReader {
 public:
  AwqGemmReader(const ModelDir& dir, QuantScheme s) : SuffixReader(dir, std::move(s), ".qweight") { check_all(); }

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
    QuantLinear q = make_linear(m, scheme_.format, d.n, d.k, 4, d.g, scheme_.group_size == -1, d.k / d.g);
    q.zero_mode = ZeroMode::kInteger;
    q.scale_dtype = sc.dtype;
    const int64_t words = d.n / 8;
    // Transpose [K][N/8 words] into codes [N][K] in 32-row tiles of K, so the reads of a tile stay
    // in cache across words and each output row gets 32 contiguous bytes.
    for (int64_t k0 = 0; k0 < d.k; k0 += 32) {
      const int64_t k1 = std::min<int64_t>(d.k, k0 + 32);
      for (int64_t c = 0; c < words; ++c)
        for (int j = 0; j < 8; ++j) {
          uint8_t* row = q.codes.data() + size_t((8 * c + j) * d.k);
          const int shift = 4 * kAwqReverse[j];
          for (int64_t kk = k0; kk < k1; ++kk) row[kk] = uint8_t((load_u32(qw, size_t(kk * words + c)) >> shift) & 0xF);
        }
    }
    q.zeros.resize(q.scales.size());
    for (int64_t g = 0; g < q.n_groups; ++g) {
      for (int64_t c = 0; c < words; ++c) {
        const uint32_t w = load_u32(qz, size_t(g * words + c));
        for (int j = 0; j < 8; ++j) q.zeros[size_t((8 * c + j) * q.n_groups + g)] = int32_t((w >> (4 * kAwqReverse[j])) & 0xF);
      }
      for (int64_t n = 0; n < d.n; ++n) q.scales[size_t(n * q.n_groups + g)] = load_float(sc.data, sc.dtype, size_t(g * d.n + n));
    }
    read_bias(dir_, m, q);
    return q;
  }

 private:
  struct Dims { int64_t n, k, g; };
  Dims shapes(const std::string& m) const {
    const std::string layout = "autoawq-gemm";
    const TensorView& qw = need(dir_, m + ".qweight", layout);
    need_dtype(qw, {DType::I32}, "qweight");
    need_rank(qw, 2, "qweight");
    const int64_t k = qw.dim(0), n = qw.dim(1) * 8;
    if (k == 0 || n == 0) bad(qw, "qweight is empty");
    const TensorView& sc = need(dir_, m + ".scales", layout);
    need_dtype(sc, {DType::F16, DType::BF16, DType::F32}, "scales");
    need_rank(sc, 2, "scales");
    if (sc.dim(1) != n)
      bad(sc, "scales has shape " + sc.shape_str() + " but qweight " + qw.shape_str() + " implies N = " + std::to_string(n) +
                  " (AutoAWQ GEMM stores scales as [K/G, N])");
    check_groups(sc, k, sc.dim(0), scheme_.group_size);
    const int64_t g = k / sc.dim(0);
    const TensorView& qz = need(dir_, m + ".qzeros", layout);
    need_dtype(qz, {DType::I32}, "qzeros");
    need_shape(qz, {k / g, n / 8}, "qzeros");
    return {n, k, g};
  }
};

}  // namespace

QuantScheme awq_scheme(const nlohmann::json* cfg, const std::string& format) {
  QuantScheme s;
  s.format = format;
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const nlohmann::json& c = cfg ? *cfg : kEmpty;
  s.bits = int(cfg_int(c, {"bits", "w_bit"}, 4));
  s.group_size = cfg_int(c, {"group_size", "q_group_size"}, 128);
  s.zero_point = cfg_bool(c, {"zero_point"}, true);
  s.version = cfg_str(c, {"version"}, "gemm");
  for (auto& ch : s.version) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  s.modules_to_not_convert = cfg_str_list(c, "modules_to_not_convert");
  if (s.bits != 4) throw Error("quantization config: bits = " + std::to_string(s.bits) + "; the " + format + " layout is 4-bit only");
  if (s.group_size == 0 || s.group_size < -1) throw Error("quantization config: invalid group_size " + std::to_string(s.group_size));
  return s;
}

std::unique_ptr<FormatReader> open_autoawq_gemm(const ModelDir& dir, const nlohmann::json* cfg) {
  QuantScheme s = awq_scheme(cfg, "autoawq-gemm");
  if (!cfg) {  // infer the group size from every module's tensors
    std::vector<std::pair<int64_t, int64_t>> kg;
    for (const auto& m : modules_with_suffix(dir, ".qweight")) {
      const TensorView* qw = dir.find(m + ".qweight");
      const TensorView* sc = dir.find(m + ".scales");
      if (qw && sc && qw->shape.size() == 2 && sc->shape.size() == 2) kg.emplace_back(qw->dim(0), sc->dim(0));
    }
    s.group_size = infer_group_size(kg);
    if (s.group_size == 0) throw Error(dir.path() + ": no quantization config, and the modules' scales imply no common group size");
    s.version = "gemm";
  }
  if (!s.zero_point) throw Error("quantization config: zero_point false is not the GEMM layout (AutoAWQ GEMM always stores qzeros)");
  return std::make_unique<AwqGemmReader>(dir, std::move(s));
}

}  // namespace awq::fmt_detail
