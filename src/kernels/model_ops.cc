// SIMD versions of the decoder's hot operations (model_ops.h), compiled per Highway target like
// quant_kernels.cc. Tails shorter than a vector run the scalar formula of the reference.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "awq/dtype.h"
#include "awq/model_ops.h"
#include "awq/thread_pool.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/model_ops.cc"
#include "kernels/hwy_config.h"
// clang-format off
#include <hwy/foreach_target.h>
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on
#include "kernels/simd_common-inl.h"  // DF, VF, kL

HWY_BEFORE_NAMESPACE();
namespace awq::kernels {
namespace HWY_NAMESPACE {

// kL values from p as f32 (f16 widened exactly).
HWY_INLINE VF LoadW(const float* p) { return hn::LoadU(DF(), p); }
HWY_INLINE VF LoadW(const hwy::float16_t* p) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(DF(), hn::LoadU(dh, p));
}
inline float ScalarW(float v) { return v; }
inline float ScalarW(hwy::float16_t v) {
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  return f16_to_f32(bits);
}

template <class W>
HWY_INLINE float Dot(const float* HWY_RESTRICT a, const W* HWY_RESTRICT b, int64_t n) {
  const DF df;
  VF s0 = hn::Zero(df), s1 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 2 * int64_t(kL) <= n; i += 2 * int64_t(kL)) {
    s0 = hn::MulAdd(hn::LoadU(df, a + i), LoadW(b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(df, a + i + kL), LoadW(b + i + kL), s1);
  }
  for (; i + int64_t(kL) <= n; i += int64_t(kL)) s0 = hn::MulAdd(hn::LoadU(df, a + i), LoadW(b + i), s0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
  for (; i < n; ++i) s += a[i] * ScalarW(b[i]);
  return s;
}

// y += a·x over n values.
template <class W>
HWY_INLINE void Axpy(float a, const W* HWY_RESTRICT x, float* HWY_RESTRICT y, int64_t n) {
  const DF df;
  const VF va = hn::Set(df, a);
  int64_t i = 0;
  for (; i + int64_t(kL) <= n; i += int64_t(kL)) hn::StoreU(hn::MulAdd(va, LoadW(x + i), hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] += a * ScalarW(x[i]);
}

void RmsNormT(const float* x, const float* w, int64_t n, float eps, float* y) {
  const DF df;
  const float r = 1.0f / std::sqrt(Dot(x, x, n) / float(n) + eps);
  const VF vr = hn::Set(df, r);
  int64_t i = 0;
  for (; i + int64_t(kL) <= n; i += int64_t(kL))
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(df, x + i), vr), hn::LoadU(df, w + i)), df, y + i);
  for (; i < n; ++i) y[i] = (x[i] * r) * w[i];
}

void RopeT(float* x, int64_t heads, int64_t head_dim, const float* cs, const float* sn) {
  const DF df;
  const int64_t h = head_dim / 2;
  for (int64_t hd = 0; hd < heads; ++hd) {
    float* p = x + hd * head_dim;
    int64_t i = 0;
    for (; i + int64_t(kL) <= h; i += int64_t(kL)) {
      const VF a = hn::LoadU(df, p + i), b = hn::LoadU(df, p + h + i);
      const VF c = hn::LoadU(df, cs + i), s = hn::LoadU(df, sn + i);
      hn::StoreU(hn::Sub(hn::Mul(a, c), hn::Mul(b, s)), df, p + i);
      hn::StoreU(hn::Add(hn::Mul(b, c), hn::Mul(a, s)), df, p + h + i);
    }
    for (; i < h; ++i) {
      const float a = p[i], b = p[i + h];
      p[i] = a * cs[i] - b * sn[i];
      p[i + h] = b * cs[i] + a * sn[i];
    }
  }
}

void SoftmaxT(float* x, int64_t n) {
  const DF df;
  int64_t i = 0;
  VF vmax = hn::Set(df, x[0]);
  for (; i + int64_t(kL) <= n; i += int64_t(kL)) vmax = hn::Max(vmax, hn::LoadU(df, x + i));
  float mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  const VF vm = hn::Set(df, mx);
  VF vs = hn::Zero(df);
  for (i = 0; i + int64_t(kL) <= n; i += int64_t(kL)) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vm));
    hn::StoreU(e, df, x + i);
    vs = hn::Add(vs, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, vs));
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = 1.0f / sum;
  const VF vi = hn::Set(df, inv);
  for (i = 0; i + int64_t(kL) <= n; i += int64_t(kL)) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), vi), df, x + i);
  for (; i < n; ++i) x[i] *= inv;
}

void SiluMulT(const float* gate, const float* up, int64_t n, float* out) {
  const DF df;
  const VF one = hn::Set(df, 1.0f), cap = hn::Set(df, 88.0f);
  int64_t i = 0;
  for (; i + int64_t(kL) <= n; i += int64_t(kL)) {
    const VF g = hn::LoadU(df, gate + i);
    const VF e = hn::Exp(df, hn::Min(hn::Neg(g), cap));  // exp(−g), kept finite; g/(1+e) -> −0 below
    hn::StoreU(hn::Mul(hn::Div(g, hn::Add(one, e)), hn::LoadU(df, up + i)), df, out + i);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

template <class W>
void Attention(const float* q, int64_t group, int64_t head_dim, const W* k, const W* v, int64_t kv_stride,
               int64_t n_keys, float scale, float* out, float* scratch) {
  for (int64_t j = 0; j < n_keys; ++j) {  // keys outer: each K row is read once for the group
    const W* kj = k + j * kv_stride;
    for (int64_t g = 0; g < group; ++g) scratch[g * n_keys + j] = Dot(q + g * head_dim, kj, head_dim) * scale;
  }
  for (int64_t g = 0; g < group; ++g) SoftmaxT(scratch + g * n_keys, n_keys);
  std::fill(out, out + group * head_dim, 0.0f);
  for (int64_t j = 0; j < n_keys; ++j) {
    const W* vj = v + j * kv_stride;
    for (int64_t g = 0; g < group; ++g) Axpy(scratch[g * n_keys + j], vj, out + g * head_dim, head_dim);
  }
}

void AttentionT(const float* q, int64_t group, int64_t head_dim, const float* k, const float* v, int64_t kv_stride,
                int64_t n_keys, float scale, float* out, float* scratch) {
  Attention(q, group, head_dim, k, v, kv_stride, n_keys, scale, out, scratch);
}
void AttentionF16T(const float* q, int64_t group, int64_t head_dim, const uint16_t* k, const uint16_t* v,
                   int64_t kv_stride, int64_t n_keys, float scale, float* out, float* scratch) {
  Attention(q, group, head_dim, reinterpret_cast<const hwy::float16_t*>(k), reinterpret_cast<const hwy::float16_t*>(v),
            kv_stride, n_keys, scale, out, scratch);
}

// 4 weight rows × MR activation rows over [0, kv) (a multiple of kL); y gets the sums.
template <int MR, class W>
HWY_INLINE void DenseMicro(const W* HWY_RESTRICT w, int64_t k, int64_t kv, const float* HWY_RESTRICT x,
                           float* HWY_RESTRICT y, int64_t ys, int64_t rows) {
  const DF df;
  VF acc[MR][4];
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < 4; ++r) acc[m][r] = hn::Zero(df);
  const W* wr[4];
  for (int r = 0; r < 4; ++r) wr[r] = w + std::min<int64_t>(r, rows - 1) * k;
  for (int64_t c = 0; c < kv; c += int64_t(kL)) {
    VF wv[4];
    for (int r = 0; r < 4; ++r) wv[r] = LoadW(wr[r] + c);
    for (int m = 0; m < MR; ++m) {
      const VF xv = hn::LoadU(df, x + m * k + c);
      for (int r = 0; r < 4; ++r) acc[m][r] = hn::MulAdd(wv[r], xv, acc[m][r]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < rows; ++r) y[m * ys + r] = hn::GetLane(hn::SumOfLanes(df, acc[m][r]));
}

// Weight rows per pool task of a dense GEMM (a multiple of 4, the micro-kernel's rows): 1/8 of a
// thread's share, and for a GEMV (m <= 4) at most ~256 KiB of weights, so that threads finish within
// a short task of each other (lm_head at 2 threads: 32 rows of 8 KiB, not 2000 rows of 16 MB).
inline int64_t DenseTaskRows(int64_t n, int64_t k, size_t elem_bytes, int64_t m, int threads) {
  int64_t rows = std::max<int64_t>(4, (n / (8 * threads)) / 4 * 4);
  if (m <= 4) rows = std::min(rows, std::max<int64_t>(4, int64_t((size_t(256) << 10) / (size_t(k) * elem_bytes)) / 4 * 4));
  return rows;
}

template <class W>
void Dense(const W* w, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool& pool) {
  const int64_t kv = k / int64_t(kL) * int64_t(kL);
  const int64_t rows_per_task = DenseTaskRows(n, k, sizeof(W), m, pool.size());
  const int64_t tasks = (n + rows_per_task - 1) / rows_per_task;
  pool.run(tasks, [&](int64_t task, int) HWY_ATTR {
    const int64_t n0 = task * rows_per_task, n1 = std::min(n, n0 + rows_per_task);
    for (int64_t r = n0; r < n1; r += 4) {
      const int64_t rows = std::min<int64_t>(4, n1 - r);
      int64_t mm = 0;
      for (; mm + 4 <= m; mm += 4) DenseMicro<4>(w + r * k, k, kv, x + mm * k, y + mm * n + r, n, rows);
      for (; mm < m; ++mm) DenseMicro<1>(w + r * k, k, kv, x + mm * k, y + mm * n + r, n, rows);
    }
    for (int64_t mi = 0; mi < m; ++mi)  // scalar tail columns
      for (int64_t r = n0; r < n1; ++r)
        for (int64_t c = kv; c < k; ++c) y[mi * n + r] += ScalarW(w[r * k + c]) * x[mi * k + c];
  });
}

void DenseF32T(const float* w, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool& pool) {
  Dense(w, n, k, x, m, y, pool);
}
void DenseF16T(const uint16_t* w, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool& pool) {
  Dense(reinterpret_cast<const hwy::float16_t*>(w), n, k, x, m, y, pool);
}

}  // namespace HWY_NAMESPACE
}  // namespace awq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace awq::kernels {
HWY_EXPORT(RmsNormT);
HWY_EXPORT(RopeT);
HWY_EXPORT(SoftmaxT);
HWY_EXPORT(SiluMulT);
HWY_EXPORT(AttentionT);
HWY_EXPORT(AttentionF16T);
HWY_EXPORT(DenseF32T);
HWY_EXPORT(DenseF16T);

void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y) {
  HWY_DYNAMIC_DISPATCH(RmsNormT)(x, w, n, eps, y);
}
void rope(float* x, int64_t heads, int64_t head_dim, const float* cos, const float* sin) {
  HWY_DYNAMIC_DISPATCH(RopeT)(x, heads, head_dim, cos, sin);
}
void softmax(float* x, int64_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxT)(x, n); }
void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMulT)(gate, up, n, out);
}
void attention(const float* q, int64_t group, int64_t head_dim, const float* k, const float* v, int64_t kv_stride,
               int64_t n_keys, float scale, float* out, float* scratch) {
  HWY_DYNAMIC_DISPATCH(AttentionT)(q, group, head_dim, k, v, kv_stride, n_keys, scale, out, scratch);
}
void attention_f16(const float* q, int64_t group, int64_t head_dim, const uint16_t* k, const uint16_t* v,
                   int64_t kv_stride, int64_t n_keys, float scale, float* out, float* scratch) {
  HWY_DYNAMIC_DISPATCH(AttentionF16T)(q, group, head_dim, k, v, kv_stride, n_keys, scale, out, scratch);
}
void dense_f32_gemm(const float* w, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(DenseF32T)(w, n, k, x, m, y, pool ? *pool : default_pool());
}
void dense_f16_gemm(const uint16_t* w, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(DenseF16T)(w, n, k, x, m, y, pool ? *pool : default_pool());
}
}  // namespace awq::kernels
#endif  // HWY_ONCE
