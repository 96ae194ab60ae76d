#include "kernel_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "awq/dtype.h"

namespace awq::test {

std::string describe(const LayerSpec& s) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "n=%lld k=%lld g=%lld zm=%d exact=%d bias=%d pqs=%d f32s=%d", (long long)s.n,
                (long long)s.k, (long long)s.group, int(s.zm), s.exact, s.bias, s.pqs, s.f32_scales);
  return buf;
}

QuantLinear make_layer(const LayerSpec& s, uint32_t seed, const LayerDraws& d) {
  std::mt19937 rng(seed);
  auto uni = [&](float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); };
  QuantLinear q;
  q.name = d.name_prefix + describe(s);
  q.n = s.n;
  q.k = s.k;
  q.group_size = s.group;
  if (d.g_idx.empty()) {
    q.per_channel = s.group == s.k;
    q.n_groups = (s.k + s.group - 1) / s.group;
  } else {
    q.format = "gptq";
    q.n_groups = d.n_groups;
    q.g_idx = d.g_idx;
  }
  q.zero_mode = s.zm;
  q.scale_dtype = s.f32_scales ? DType::F32 : DType::F16;
  q.codes.resize(size_t(s.n * s.k));
  for (auto& c : q.codes) c = uint8_t(rng() % 16);
  const size_t ng = size_t(s.n * q.n_groups);
  q.scales.resize(ng);
  for (auto& v : q.scales) {
    const float u = !s.exact || d.scale_draw_always ? uni(1e-3f, 3e-2f) : 0.f;
    v = s.exact ? std::ldexp(1.f, -int(rng() % 5)) : s.f32_scales ? u : f16_to_f32(f32_to_f16(u));
  }
  if (s.zm == ZeroMode::kInteger) {
    q.zeros.resize(ng);
    for (auto& z : q.zeros) z = int32_t(rng() % d.zero_levels);
  } else if (s.zm == ZeroMode::kScaledFma) {
    q.scaled_zeros.resize(ng);
    for (size_t i = 0; i < ng; ++i) q.scaled_zeros[i] = f16_to_f32(f32_to_f16(-q.scales[i] * float(rng() % 16)));
  }
  if (s.pqs) {
    q.pre_quant_scale.resize(size_t(s.k));
    for (auto& v : q.pre_quant_scale) v = s.exact ? std::ldexp(1.f, int(rng() % 3) - 1) : uni(0.5f, 2.f);
  }
  if (s.bias) {
    q.bias.resize(size_t(s.n));
    for (auto& v : q.bias) v = s.exact ? float(int(rng() % 9) - 4) : uni(-1.f, 1.f);
  }
  q.validate();
  return q;
}

std::vector<float> make_x(const QuantLinear& q, int64_t m, bool exact, uint32_t seed, Peaks peaks) {
  std::mt19937 rng(seed);
  std::vector<float> x(size_t(m * q.k));
  if (!exact || peaks == Peaks::kNone) {
    for (auto& v : x) v = exact ? float(int(rng() % 17) - 8) : std::normal_distribution<float>(0.f, 1.f)(rng);
    return x;
  }
  std::vector<std::vector<int64_t>> cols(size_t(q.n_groups));  // each group's columns, ascending
  for (int64_t c = 0; c < q.k; ++c) cols[size_t(q.group_of(c))].push_back(c);
  std::vector<float> peak(size_t(q.k));  // this row's ±127 by column, 0 where none
  for (int64_t i = 0; i < m; ++i) {
    std::fill(peak.begin(), peak.end(), 0.f);
    for (int64_t g = 0; g < q.n_groups; ++g) {
      const auto& cg = cols[size_t(g)];
      if (cg.empty()) continue;
      const int64_t c = cg[size_t(i * 7 + g) % cg.size()];
      peak[size_t(c)] = (i + (peaks == Peaks::kInPlace ? c : g)) % 2 ? 127.f : -127.f;
    }
    for (int64_t c = 0; c < q.k; ++c) {
      float& v = x[size_t(i * q.k + c)];
      const float p = peak[size_t(c)];
      if (p == 0.f || peaks == Peaks::kOverwrite) v = float(int(rng() % 17) - 8);
      if (p != 0.f) v = p;
    }
  }
  return x;
}

std::vector<double> naive(const QuantLinear& q, const std::vector<float>& x, int64_t m) {
  std::vector<float> w(size_t(q.n * q.k));
  awq::dequantize_ref(q, DType::F32, reinterpret_cast<uint8_t*>(w.data()));
  std::vector<double> y(size_t(m * q.n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t n = 0; n < q.n; ++n) {
      double acc = q.bias.empty() ? 0.0 : q.bias[size_t(n)];
      for (int64_t c = 0; c < q.k; ++c) acc += double(x[size_t(i * q.k + c)]) * w[size_t(n * q.k + c)];
      y[size_t(i * q.n + n)] = acc;
    }
  return y;
}

GemmOutputs gemm_and_reference(const kernels::PackedLinear& p, const std::vector<float>& xf, DType xt, int64_t m,
                               DType yt, kernels::Path path, ThreadPool* pool) {
  std::vector<uint16_t> xb;
  const void* x = xf.data();
  if (xt == DType::BF16) {
    for (float v : xf) xb.push_back(f32_to_bf16(v));
    x = xb.data();
  }
  const size_t bytes = size_t(m * p.n) * dtype_size(yt);
  GemmOutputs out{std::vector<uint8_t>(bytes), std::vector<uint8_t>(bytes, 0xAB)};
  kernels::gemm_ref(p, x, xt, m, out.want.data(), yt, path);
  kernels::gemm(p, x, xt, m, out.got.data(), yt, {path, pool});
  return out;
}

ErrorStats error_stats(const std::vector<float>& y, const std::vector<float>& y_ref) {
  double num = 0, den = 0, worst = 0;
  for (size_t i = 0; i < y_ref.size(); ++i) {
    num += double(y[i] - y_ref[i]) * (y[i] - y_ref[i]);
    den += double(y_ref[i]) * y_ref[i];
    worst = std::max(worst, double(std::fabs(y[i] - y_ref[i])));
  }
  return {std::sqrt(num / den), worst, std::sqrt(den / double(y_ref.size()))};
}

std::vector<kernels::TargetInfo> runnable_targets() {
  std::vector<kernels::TargetInfo> out;
  for (const auto& t : kernels::compiled_targets())
    if (t.runnable) out.push_back(t);
  return out;
}

bool has_fma(const std::string& target) {
  return target != "SSE4" && target != "SSSE3" && target != "SCALAR" && target != "EMU128";
}

}  // namespace awq::test
