// Scalar references of the decoder's hot operations (model_ops.h), kept forever, and the RoPE
// cos/sin table (computed once per model, not hot).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "awq/dtype.h"
#include "awq/model_ops.h"

namespace awq::kernels {

void rms_norm_ref(const float* x, const float* w, int64_t n, float eps, float* y) {
  float ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float r = 1.0f / std::sqrt(ss / float(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * r) * w[i];
}

void rope_ref(float* x, int64_t heads, int64_t head_dim, const float* cos, const float* sin) {
  const int64_t h = head_dim / 2;
  for (int64_t hd = 0; hd < heads; ++hd) {
    float* p = x + hd * head_dim;
    for (int64_t i = 0; i < h; ++i) {
      const float a = p[i], b = p[i + h];
      p[i] = a * cos[i] - b * sin[i];
      p[i + h] = b * cos[i] + a * sin[i];
    }
  }
}

void softmax_ref(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul_ref(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void attention_ref(const float* q, int64_t group, int64_t head_dim, const float* k, const float* v,
                   int64_t kv_stride, int64_t n_keys, float scale, float* out, float* scratch) {
  for (int64_t g = 0; g < group; ++g) {
    const float* qg = q + g * head_dim;
    float* s = scratch + g * n_keys;
    for (int64_t j = 0; j < n_keys; ++j) {
      float d = 0;
      for (int64_t i = 0; i < head_dim; ++i) d += qg[i] * k[j * kv_stride + i];
      s[j] = d * scale;
    }
    softmax_ref(s, n_keys);
    float* o = out + g * head_dim;
    std::fill(o, o + head_dim, 0.0f);
    for (int64_t j = 0; j < n_keys; ++j)
      for (int64_t i = 0; i < head_dim; ++i) o[i] += s[j] * v[j * kv_stride + i];
  }
}

void attention_f16_ref(const float* q, int64_t group, int64_t head_dim, const uint16_t* k, const uint16_t* v,
                       int64_t kv_stride, int64_t n_keys, float scale, float* out, float* scratch) {
  std::vector<float> kf(size_t(n_keys * head_dim)), vf(size_t(n_keys * head_dim));
  for (int64_t j = 0; j < n_keys; ++j)
    for (int64_t i = 0; i < head_dim; ++i) {
      kf[size_t(j * head_dim + i)] = f16_to_f32(k[j * kv_stride + i]);
      vf[size_t(j * head_dim + i)] = f16_to_f32(v[j * kv_stride + i]);
    }
  attention_ref(q, group, head_dim, kf.data(), vf.data(), head_dim, n_keys, scale, out, scratch);
}

void causal_attention_bf16_ref(const float* q, int64_t q_stride, int64_t group, int64_t head_dim, const float* k, const float* v,
                               int64_t kv_stride, int64_t len, int64_t window, float scale, float* out, int64_t out_stride) {
  const auto bf = [](float x) { return bf16_to_f32(f32_to_bf16(x)); };
  std::vector<float> p(static_cast<size_t>(len));
  for (int64_t i = 0; i < len; ++i) {
    const int64_t start = window > 0 ? std::max<int64_t>(0, i + 1 - window) : 0;
    for (int64_t g = 0; g < group; ++g) {
      const float* qi = q + i * q_stride + g * head_dim;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = start; j <= i; ++j) {
        float s = 0;
        for (int64_t d = 0; d < head_dim; ++d) s += bf(qi[d]) * bf(k[j * kv_stride + d]);
        p[size_t(j)] = scale * s;
        mx = std::max(mx, p[size_t(j)]);
      }
      float sum = 0;
      for (int64_t j = start; j <= i; ++j) sum += (p[size_t(j)] = bf(std::exp(p[size_t(j)] - mx)));
      const float inv = 1.0f / sum;
      float* o = out + i * out_stride + g * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) {
        float acc = 0;
        for (int64_t j = start; j <= i; ++j) acc += p[size_t(j)] * bf(v[j * kv_stride + d]);
        o[d] = acc * inv;
      }
    }
  }
}

void kv_to_f16(const float* x, int64_t n, uint16_t* dst) {
  constexpr float kMax = 65504.f;  // the largest finite f16
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const bool finite = std::isfinite(v);  // NaN and ±inf pass through as themselves
    dst[i] = f32_to_f16(finite && v > kMax ? kMax : finite && v < -kMax ? -kMax : v);
  }
}

void dense_f32_gemm_ref(const float* w, int64_t n, int64_t k, const float* x, int64_t m, float* y) {
  for (int64_t mi = 0; mi < m; ++mi)
    for (int64_t r = 0; r < n; ++r) {
      float acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += x[mi * k + c] * w[r * k + c];
      y[mi * n + r] = acc;
    }
}

void dense_f16_gemm_ref(const uint16_t* w, int64_t n, int64_t k, const float* x, int64_t m, float* y) {
  for (int64_t mi = 0; mi < m; ++mi)
    for (int64_t r = 0; r < n; ++r) {
      float acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += x[mi * k + c] * f16_to_f32(w[r * k + c]);
      y[mi * n + r] = acc;
    }
}

RopeTable make_rope_table(const std::vector<float>& inv, int64_t positions) {
  RopeTable t;
  t.half = int64_t(inv.size());
  t.positions = positions;
  t.cos_.resize(size_t(positions * t.half));
  t.sin_.resize(size_t(positions * t.half));
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < t.half; ++i) {
      const float a = float(p) * inv[size_t(i)];  // f32 product, as transformers' matmul
      t.cos_[size_t(p * t.half + i)] = std::cos(a);
      t.sin_[size_t(p * t.half + i)] = std::sin(a);
    }
  return t;
}

}  // namespace awq::kernels
