// GPTQ rounding (see gptq.h). The inverse factor U comes from one Cholesky factorisation of the
// index-reversed matrix: with J the reversal, J·H·J = L·Lᵀ (L lower) gives H = R·Rᵀ with R = J·L·J
// upper, so H⁻¹ = R⁻ᵀ·R⁻¹ and U = R⁻¹ = J·L⁻¹·J (upper, positive diagonal: the Cholesky factor
// GPTQ's reference obtains with cholesky → cholesky_inverse → cholesky(upper)).
//
// Arithmetic: every product term is one fused multiply-add (x ← fma(−a, b, x), a single rounding),
// subtracted one at a time in ascending order of the summation index, in the straightforward (_ref)
// functions and in the blocked ones alike; the blocking only changes which entries are computed
// when, and on which thread. So the fast path gives the _ref's bits (the tests check it) for any
// thread count. The SIMD kernels (sub_product, axpy_neg) are compiled per Highway target; a target
// without a native FMA runs their scalar std::fma loop, the same arithmetic.
// Precision: the factor in f32 when its residual allows, else f64; U kept in f32; the sweep in f32
// (see gptq.h).
#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "awq/thread_pool.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/gptq.cc"
// clang-format off
#include <hwy/foreach_target.h>
#include <hwy/highway.h>
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace awq::quant_detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_NATIVE_FMA
#if HWY_TARGET <= HWY_AVX3 && HWY_ARCH_X86
constexpr int kMR = 6, kNV = 4;  // 24 accumulators of 32 registers; 4 vectors: 32 f64 or 64 f32 columns
#else
constexpr int kMR = 4, kNV = 2;  // 8 accumulators of 16 registers
#endif
constexpr int64_t kDepthChunk = 128;  // summation indices per pass
constexpr int64_t kColChunk = 512;    // columns per pass: B's chunk stays in cache across all rows

// C[0..MR)[0..NV·lanes) −= Σ_{m0 ≤ m < m1} A[·][m]·B[m][·], held in registers across the m loop.
template <class T, int MR, int NV>
HWY_INLINE void Micro(T* C, int64_t ldc, const T* A, int64_t lda, const T* B, int64_t ldb, int64_t m0, int64_t m1) {
  const hn::ScalableTag<T> d;
  constexpr size_t L = hn::MaxLanes(hn::ScalableTag<T>());
  using V = hn::Vec<hn::ScalableTag<T>>;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = hn::LoadU(d, C + i * ldc + v * int64_t(L));
  for (int64_t m = m0; m < m1; ++m) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = hn::LoadU(d, B + m * ldb + v * int64_t(L));
    for (int i = 0; i < MR; ++i) {
      const V a = hn::Set(d, A[i * lda + m]);
      for (int v = 0; v < NV; ++v) acc[i][v] = hn::NegMulAdd(a, b[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) hn::StoreU(acc[i][v], d, C + i * ldc + v * int64_t(L));
}

// MR rows, columns [c0, c1) of C, summation [m0, m1): full vector tiles, then the scalar rest.
template <class T, int MR>
HWY_INLINE void RowTile(T* C, int64_t ldc, const T* A, int64_t lda, const T* B, int64_t ldb, int64_t c0, int64_t c1, int64_t m0,
                        int64_t m1) {
  constexpr int64_t L = int64_t(hn::MaxLanes(hn::ScalableTag<T>()));
  int64_t c = c0;
  for (; c + kNV * L <= c1; c += kNV * L) Micro<T, MR, kNV>(C + c, ldc, A, lda, B + c, ldb, m0, m1);
  for (; c + L <= c1; c += L) Micro<T, MR, 1>(C + c, ldc, A, lda, B + c, ldb, m0, m1);
  for (int i = 0; i < MR; ++i)
    for (int64_t cc = c; cc < c1; ++cc) {
      T x = C[i * ldc + cc];
      for (int64_t m = m0; m < m1; ++m) x = std::fma(-A[i * lda + m], B[m * ldb + cc], x);
      C[i * ldc + cc] = x;
    }
}
#endif

// C[r][c] −= Σ_{m<depth} A[r][m]·B[m][c] (r < rows, c < cols), each term one fused multiply-add,
// in ascending m whatever the tiling.
template <class T>
HWY_INLINE void SubProductImpl(T* C, int64_t ldc, const T* A, int64_t lda, const T* B, int64_t ldb, int64_t rows, int64_t cols,
                               int64_t depth) {
#if HWY_NATIVE_FMA
  // A chunk of B rows strided in memory (ldb > the chunk's width) is first copied to a contiguous
  // buffer: each row of it is read once per row tile, and a new page per row would cost a TLB miss.
  thread_local std::vector<T> packed;
  for (int64_t c0 = 0; c0 < cols; c0 += kColChunk) {
    const int64_t c1 = std::min(cols, c0 + kColChunk), cw = c1 - c0;
    for (int64_t m0 = 0; m0 < depth; m0 += kDepthChunk) {
      const int64_t m1 = std::min(depth, m0 + kDepthChunk);
      const T* b = B + c0;
      int64_t bs = ldb, mb = m0, me = m1;
      if (ldb > cw && rows > kMR) {
        packed.resize(size_t((m1 - m0) * cw));
        for (int64_t m = m0; m < m1; ++m) std::copy(B + m * ldb + c0, B + m * ldb + c1, packed.data() + (m - m0) * cw);
        b = packed.data();
        bs = cw;
        mb = 0;
        me = m1 - m0;
      }
      const int64_t da = m0 - mb;  // A's column of b's row 0
      int64_t r = 0;
      for (; r + kMR <= rows; r += kMR) RowTile<T, kMR>(C + r * ldc + c0, ldc, A + r * lda + da, lda, b, bs, 0, cw, mb, me);
      if (kMR > 4)
        for (; r + 4 <= rows; r += 4) RowTile<T, 4>(C + r * ldc + c0, ldc, A + r * lda + da, lda, b, bs, 0, cw, mb, me);
      for (; r < rows; ++r) RowTile<T, 1>(C + r * ldc + c0, ldc, A + r * lda + da, lda, b, bs, 0, cw, mb, me);
    }
  }
#else
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t m = 0; m < depth; ++m) {
      const T a = A[r * lda + m];
      for (int64_t c = 0; c < cols; ++c) C[r * ldc + c] = std::fma(-a, B[m * ldb + c], C[r * ldc + c]);
    }
#endif
}

// y[i] = fma(−a, x[i], y[i]) for i < n.
template <class T>
HWY_INLINE void AxpyNegImpl(T* y, T a, const T* x, int64_t n) {
  int64_t i = 0;
#if HWY_NATIVE_FMA
  const hn::ScalableTag<T> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const auto va = hn::Set(d, a);
  for (; i + L <= n; i += L) hn::StoreU(hn::NegMulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
#endif
  for (; i < n; ++i) y[i] = std::fma(-a, x[i], y[i]);
}

void SubProductD(double* C, int64_t ldc, const double* A, int64_t lda, const double* B, int64_t ldb, int64_t rows, int64_t cols,
                 int64_t depth) {
  SubProductImpl(C, ldc, A, lda, B, ldb, rows, cols, depth);
}
void SubProductF(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t rows, int64_t cols,
                 int64_t depth) {
  SubProductImpl(C, ldc, A, lda, B, ldb, rows, cols, depth);
}
void AxpyNegD(double* y, double a, const double* x, int64_t n) { AxpyNegImpl(y, a, x, n); }
void AxpyNegF(float* y, float a, const float* x, int64_t n) { AxpyNegImpl(y, a, x, n); }

}  // namespace HWY_NAMESPACE
}  // namespace awq::quant_detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace awq::quant_detail {

HWY_EXPORT(SubProductD);
HWY_EXPORT(SubProductF);
HWY_EXPORT(AxpyNegD);
HWY_EXPORT(AxpyNegF);

namespace {

void sub_product(double* C, int64_t ldc, const double* A, int64_t lda, const double* B, int64_t ldb, int64_t rows, int64_t cols,
                 int64_t depth) {
  HWY_DYNAMIC_DISPATCH(SubProductD)(C, ldc, A, lda, B, ldb, rows, cols, depth);
}
void sub_product(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t rows, int64_t cols,
                 int64_t depth) {
  HWY_DYNAMIC_DISPATCH(SubProductF)(C, ldc, A, lda, B, ldb, rows, cols, depth);
}
void axpy_neg(double* y, double a, const double* x, int64_t n) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(AxpyNegD)(y, a, x, n);
}
void axpy_neg(float* y, float a, const float* x, int64_t n) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(AxpyNegF)(y, a, x, n);
}

// ---- The straightforward (_ref) path.

// In place: a (k×k, lower triangle read) -> its lower Cholesky factor. Row-oriented: L_ij for
// i > j is one dot product of rows i and j, so each entry is computed in a fixed order whatever the
// thread count. False at a pivot that is not finite or not above 1e-9 of its diagonal entry (the
// matrix is numerically singular: its column is, to rounding, a combination of the earlier ones).
// The pivot threshold: in f64 1e-9 of the diagonal entry; in f32, 1e-4 (a pivot that lost four of
// f32's seven digits to cancellation: the f64 factorisation takes over).
template <class T>
constexpr T kPivotTol = sizeof(T) == 8 ? T(1e-9) : T(1e-4);

template <class T>
bool cholesky_lower_ref(std::vector<T>& a, int64_t k, ThreadPool& pool) {
  constexpr int64_t kRows = 64;
  for (int64_t j = 0; j < k; ++j) {
    T* rj = a.data() + j * k;
    const T ajj = rj[j];
    T s = ajj;
    for (int64_t m = 0; m < j; ++m) s = std::fma(-rj[m], rj[m], s);
    if (!(ajj > 0) || !(s > kPivotTol<T> * ajj) || !std::isfinite(s)) return false;
    rj[j] = std::sqrt(s);
    const T inv = T(1) / rj[j];
    const int64_t below = k - j - 1;
    pool.run((below + kRows - 1) / kRows, [&](int64_t t, int) {
      const int64_t i0 = j + 1 + t * kRows, i1 = std::min(k, i0 + kRows);
      for (int64_t i = i0; i < i1; ++i) {
        T* ri = a.data() + i * k;
        T d = ri[j];
        for (int64_t m = 0; m < j; ++m) d = std::fma(-ri[m], rj[m], d);
        ri[j] = d * inv;
      }
    });
  }
  return true;
}

// U = J·L⁻¹·J from the lower factor l: column c of L⁻¹ by forward substitution (columns are
// independent; each is computed alone), written reversed into u.
template <class T>
void reversed_inverse_ref(const std::vector<T>& l, int64_t k, std::vector<T>& u, ThreadPool& pool) {
  u.assign(size_t(k * k), T(0));
  pool.run(k, [&](int64_t c, int) {
    std::vector<T> col(static_cast<size_t>(k - c));  // col[i − c] = (L⁻¹)_ic
    col[0] = T(1) / l[size_t(c * k + c)];
    for (int64_t i = c + 1; i < k; ++i) {
      const T* ri = l.data() + i * k;
      T s = 0;
      for (int64_t m = c; m < i; ++m) s = std::fma(ri[m], col[size_t(m - c)], s);
      col[size_t(i - c)] = -s / ri[i];
    }
    for (int64_t i = c; i < k; ++i) u[size_t((k - 1 - i) * k + (k - 1 - c))] = col[size_t(i - c)];
  });
}

template <class T>
bool all_finite(const std::vector<T>& v) {
  for (T x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// ---- The blocked (fast) path: the same terms in the same order as the _ref functions above.

constexpr int64_t kBlock = 128;  // Cholesky / inverse block size (each pass over the earlier factor serves 128 columns)

// cholesky_lower_ref's contract, blocked left-looking: for each block of kBlock columns, (1) the
// product of the rows' earlier factor columns is subtracted from the block column (sub_product,
// row panels over the pool), (2) the diagonal block is factored, (3) the rows below are solved
// against it (row panels over the pool; each panel transposed so that a column of the block is one
// contiguous vector of its rows: one axpy_neg per term).
template <class T>
bool cholesky_lower(std::vector<T>& a, int64_t k, ThreadPool& pool) {
  constexpr int64_t kPanel = 64;
  std::vector<T> diag(static_cast<size_t>(k)), t;
  for (int64_t j = 0; j < k; ++j) diag[size_t(j)] = a[size_t(j * k + j)];
  for (int64_t j0 = 0; j0 < k; j0 += kBlock) {
    const int64_t jb = std::min(kBlock, k - j0), j1 = j0 + jb;
    const int64_t panels = (k - j0 + kPanel - 1) / kPanel;
    if (j0 > 0) {
      t.assign(size_t(j0 * jb), T(0));  // t[m][c] = L[j0 + c][m]
      for (int64_t c = 0; c < jb; ++c)
        for (int64_t m = 0; m < j0; ++m) t[size_t(m * jb + c)] = a[size_t((j0 + c) * k + m)];
      pool.run(panels, [&](int64_t p, int) {
        const int64_t i0 = j0 + p * kPanel, rows = std::min(kPanel, k - i0);
        sub_product(a.data() + i0 * k + j0, k, a.data() + i0 * k, k, t.data(), jb, rows, jb, j0);
      });
    }
    for (int64_t j = j0; j < j1; ++j) {  // the diagonal block, column by column
      T* rj = a.data() + j * k;
      const T ajj = diag[size_t(j)];
      T s = rj[j];
      for (int64_t m = j0; m < j; ++m) s = std::fma(-rj[m], rj[m], s);
      if (!(ajj > 0) || !(s > kPivotTol<T> * ajj) || !std::isfinite(s)) return false;
      rj[j] = std::sqrt(s);
      const T inv = T(1) / rj[j];
      for (int64_t i = j + 1; i < j1; ++i) {
        T* ri = a.data() + i * k;
        T d = ri[j];
        for (int64_t m = j0; m < j; ++m) d = std::fma(-ri[m], rj[m], d);
        ri[j] = d * inv;
      }
    }
    if (j1 >= k) break;
    pool.run((k - j1 + kPanel - 1) / kPanel, [&](int64_t p, int) {
      const int64_t i0 = j1 + p * kPanel, rows = std::min(kPanel, k - i0);
      std::vector<T> pt(static_cast<size_t>(jb * rows));  // pt[c][r] = a[i0 + r][j0 + c]
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < jb; ++c) pt[size_t(c * rows + r)] = a[size_t((i0 + r) * k + j0 + c)];
      for (int64_t j = j0; j < j1; ++j) {
        const T* rj = a.data() + j * k;
        T* col = pt.data() + (j - j0) * rows;
        for (int64_t m = j0; m < j; ++m) axpy_neg(col, rj[m], pt.data() + (m - j0) * rows, rows);
        const T inv = T(1) / rj[j];
        for (int64_t r = 0; r < rows; ++r) col[r] = col[r] * inv;
      }
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < jb; ++c) a[size_t((i0 + r) * k + j0 + c)] = pt[size_t(c * rows + r)];
    });
  }
  return true;
}

// reversed_inverse_ref's contract, blocked and row-oriented: X = L⁻¹ is built in place of l, a
// block of kBlock rows at a time: X_i = (e_i − Σ_{m<i} L_im·X_m) / L_ii, the terms subtracted in
// ascending m (X_mc = 0 for m < c, so each entry gets the _ref's terms in the _ref's order; the
// _ref adds them and negates, which is the same rounding). A row block's L rows are copied out
// first; its X rows are computed in column panels over the pool: the earlier rows' part as one
// sub_product, then the block's own rows in order. On return l holds U (the reversal is in place:
// no second k² buffer).
template <class T>
void reversed_inverse(std::vector<T>& l, int64_t k, ThreadPool& pool) {
  constexpr int64_t kPanel = 64;
  std::vector<T> lb(static_cast<size_t>(kBlock * k));
  for (int64_t i0 = 0; i0 < k; i0 += kBlock) {
    const int64_t ib = std::min(kBlock, k - i0), i1 = i0 + ib;
    std::copy(l.begin() + i0 * k, l.begin() + i1 * k, lb.begin());
    std::fill(l.begin() + i0 * k, l.begin() + i1 * k, T(0));
    pool.run((i1 + kPanel - 1) / kPanel, [&](int64_t p, int) {
      const int64_t c0 = p * kPanel, c1 = std::min(i1, c0 + kPanel);
      if (c0 < i0) sub_product(l.data() + i0 * k + c0, k, lb.data() + c0, k, l.data() + c0 * k + c0, k, ib, c1 - c0, i0 - c0);
      for (int64_t r = 0; r < ib; ++r) {
        const int64_t i = i0 + r;
        T* x = l.data() + i * k;
        const T* li = lb.data() + r * k;
        for (int64_t m = std::max(i0, c0); m < i; ++m) axpy_neg(x + c0, li[m], l.data() + m * k + c0, std::min(c1, m + 1) - c0);
        for (int64_t c = c0, ce = std::min(c1, i); c < ce; ++c) x[c] = x[c] / li[i];
        if (i >= c0 && i < c1) x[i] = T(1) / li[i];
        for (int64_t c = std::max(c0, i + 1); c < c1; ++c) x[c] = T(0);  // the product's ±0 above the diagonal
      }
    });
  }
  // U_ab = X[k−1−a][k−1−b]: index a·k + b is k² − 1 − (i·k + c), so U is X reversed end to end.
  std::reverse(l.begin(), l.end());
}

// H' + λI (dead columns cut loose) index-reversed into l's lower triangle, in T.
template <class T>
void fill_reversed(const float* H, int64_t k, const std::vector<bool>& dead, double lambda, std::vector<T>& l, ThreadPool& pool) {
  l.assign(size_t(k * k), T(0));
  pool.run(k, [&](int64_t r, int) {
    for (int64_t c = 0; c <= r; ++c) {
      const int64_t i = k - 1 - r, j = k - 1 - c;
      l[size_t(r * k + c)] = dead[size_t(i)] || dead[size_t(j)] ? T(r == c ? 1 : 0) : T(H[i * k + j]);
    }
    l[size_t(r * k + r)] = T(double(l[size_t(r * k + r)]) + lambda);
  });
}

// ‖(H' + λI)·UᵀU·v − v‖ / ‖v‖ for a fixed ±1 vector v, in f64 (three k² passes): how far UᵀU is
// from the damped inverse.
double inverse_residual(const float* H, int64_t k, const std::vector<bool>& dead, double lambda, const std::vector<float>& u,
                        ThreadPool& pool) {
  std::vector<double> v(static_cast<size_t>(k)), z(static_cast<size_t>(k)), y(static_cast<size_t>(k), 0.0), r(static_cast<size_t>(k));
  uint32_t x = 12345;
  for (double& e : v) {
    x = x * 1664525u + 1013904223u;
    e = (x >> 31) ? 1.0 : -1.0;
  }
  pool.run(k, [&](int64_t a, int) {  // z = U·v
    double acc = 0;
    for (int64_t b = a; b < k; ++b) acc += double(u[size_t(a * k + b)]) * v[size_t(b)];
    z[size_t(a)] = acc;
  });
  for (int64_t a = 0; a < k; ++a)  // y = Uᵀ·z
    for (int64_t b = a; b < k; ++b) y[size_t(b)] += double(u[size_t(a * k + b)]) * z[size_t(a)];
  pool.run(k, [&](int64_t a, int) {  // r = (H' + λI)·y − v
    double acc = (dead[size_t(a)] ? 1.0 : 0.0) * y[size_t(a)] + lambda * y[size_t(a)];
    if (!dead[size_t(a)])
      for (int64_t b = 0; b < k; ++b)
        if (!dead[size_t(b)]) acc += double(H[a * k + b]) * y[size_t(b)];
    r[size_t(a)] = acc - v[size_t(a)];
  });
  double rr = 0;
  for (double e : r) rr += e * e;
  return std::sqrt(rr / double(k));
}

GptqFactor factor_with(const float* H, int64_t k, double damp, ThreadPool& pool, bool ref, FactorPrecision precision) {
  GptqFactor f;
  f.k = k;
  for (int64_t i = 0; i < k * k; ++i)
    if (!std::isfinite(H[i])) return f;
  std::vector<bool> dead(static_cast<size_t>(k));
  double diag = 0;
  for (int64_t j = 0; j < k; ++j) {
    dead[size_t(j)] = !(H[j * k + j] > 0);
    f.dead += dead[size_t(j)];
    diag += dead[size_t(j)] ? 1.0 : double(H[j * k + j]);
  }
  f.lambda = damp * diag / double(k);
  // First in f32 (factor and inverse in place in U's own buffer), kept when it factors and its
  // residual is below kF32Residual; else, and always with damp 0, in f64 with the retries.
  if (precision != FactorPrecision::kF64 && f.lambda > 0) {
    std::vector<float> l;
    fill_reversed(H, k, dead, f.lambda, l, pool);
    if (ref ? cholesky_lower_ref(l, k, pool) : cholesky_lower(l, k, pool)) {
      if (ref) {
        reversed_inverse_ref(l, k, f.u, pool);
      } else {
        reversed_inverse(l, k, pool);
        f.u.swap(l);
      }
      if (all_finite(f.u)) {
        f.residual = inverse_residual(H, k, dead, f.lambda, f.u, pool);
        if (f.residual < kF32Residual || precision == FactorPrecision::kF32) return f;
      }
    }
    f.u.clear();
    f.u.shrink_to_fit();
    if (precision == FactorPrecision::kF32) return f;
  }
  // l[a][b] = H'[k−1−a][k−1−b] + λ·[a = b] (lower triangle only: the factorisation reads no more),
  // rebuilt from H for each try (no second k² copy is held).
  f.f64 = true;
  std::vector<double> l, u;
  for (f.retries = 0; f.retries <= 6; ++f.retries) {
    fill_reversed(H, k, dead, f.lambda, l, pool);
    if (ref ? cholesky_lower_ref(l, k, pool) : cholesky_lower(l, k, pool)) {
      if (ref) {
        reversed_inverse_ref(l, k, u, pool);
        std::vector<double>().swap(l);
      } else {
        reversed_inverse(l, k, pool);
        u.swap(l);
      }
      if (all_finite(u)) {
        f.u.resize(u.size());  // rounded to f32 for the sweep (gptq.h "Precision")
        pool.run(k, [&](int64_t r, int) {
          for (int64_t c = r * k; c < (r + 1) * k; ++c) f.u[size_t(c)] = float(u[size_t(c)]);
        });
        if (all_finite(f.u)) {
          f.residual = inverse_residual(H, k, dead, f.lambda, f.u, pool);
          return f;
        }
        f.u.clear();
      }
    }
    f.lambda = f.lambda > 0 ? f.lambda * 10 : diag / double(k) * 1e-6;
  }
  f.u.clear();
  f.retries = 7;
  return f;
}

// Round to nearest (no factor): quantize_group writes each group's codes.
void nearest(const float* w, int64_t n, int64_t k, int64_t group, const QParams& q, const float* clip_lo, const float* clip_hi,
             uint8_t* codes, float* scales, int32_t* zeros, ThreadPool& pool) {
  const int64_t ng = k / group;
  pool.run(n, [&](int64_t r, int) {
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t gi = r * ng + g;
      const GroupQ p = quantize_group(w + r * k + g * group, group, q, clip_lo ? clip_lo[gi] : 1.0f, clip_hi ? clip_hi[gi] : 1.0f,
                                      codes + r * k + g * group);
      scales[gi] = p.scale;
      zeros[gi] = p.zero;
    }
  });
}

// Group g of rows [0, rows) of x (row stride k, rows r0.. of the linear) fitted: scale and zero into
// the outputs and gq.
void fit_groups(const float* x, int64_t rows, int64_t k, int64_t r0, int64_t g, int64_t group, const QParams& q, const float* clip_lo,
                const float* clip_hi, float* scales, int32_t* zeros, std::vector<GroupQ>& gq) {
  const int64_t ng = k / group;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t gi = (r0 + r) * ng + g;
    gq[size_t(r)] = quantize_group(x + r * k + g * group, group, q, clip_lo ? clip_lo[gi] : 1.0f, clip_hi ? clip_hi[gi] : 1.0f, nullptr);
    scales[gi] = gq[size_t(r)].scale;
    zeros[gi] = gq[size_t(r)].zero;
  }
}

// Column j of one row rounded: its code, and its error divided by U_jj (f32, as the sweep runs).
float round_column(const float* x, int64_t j, const GroupQ& p, const QParams& q, float ujj, uint8_t* code) {
  *code = quantize_code(x[j], p, q);
  return (x[j] - p.scale * float(int(*code) - p.zero)) / ujj;
}

}  // namespace

GptqFactor gptq_factor_ref(const float* H, int64_t k, double damp, ThreadPool& pool, FactorPrecision precision) {
  return factor_with(H, k, damp, pool, true, precision);
}

GptqFactor gptq_factor(const float* H, int64_t k, double damp, ThreadPool& pool, FactorPrecision precision) {
  return factor_with(H, k, damp, pool, false, precision);
}

void gptq_quantize_ref(const float* w, int64_t n, int64_t k, const GptqFactor& f, int64_t group, const QParams& q, const float* clip_lo,
                       const float* clip_hi, uint8_t* codes, float* scales, int32_t* zeros, ThreadPool& pool) {
  if (f.u.empty()) {
    nearest(w, n, k, group, q, clip_lo, clip_hi, codes, scales, zeros, pool);
    return;
  }
  const int64_t ng = k / group;
  constexpr int64_t kTile = 16;  // rows per task: each row of U is read once per tile
  pool.run((n + kTile - 1) / kTile, [&](int64_t t, int) {
    const int64_t r0 = t * kTile, rows = std::min(kTile, n - r0);
    std::vector<float> wr(w + r0 * k, w + (r0 + rows) * k);
    std::vector<GroupQ> gq(static_cast<size_t>(rows));
    for (int64_t g = 0; g < ng; ++g) {
      fit_groups(wr.data(), rows, k, r0, g, group, q, clip_lo, clip_hi, scales, zeros, gq);
      for (int64_t j = g * group; j < (g + 1) * group; ++j) {
        const float* uj = f.u.data() + j * k;
        for (int64_t r = 0; r < rows; ++r) {
          float* x = wr.data() + r * k;
          const float e = round_column(x, j, gq[size_t(r)], q, uj[j], codes + (r0 + r) * k + j);
          for (int64_t m = j + 1; m < k; ++m) x[m] = std::fma(-e, uj[m], x[m]);
        }
      }
    }
  });
}

void gptq_quantize(const float* w, int64_t n, int64_t k, const GptqFactor& f, int64_t group, const QParams& q, const float* clip_lo,
                   const float* clip_hi, uint8_t* codes, float* scales, int32_t* zeros, ThreadPool& pool) {
  if (f.u.empty()) {
    nearest(w, n, k, group, q, clip_lo, clip_hi, codes, scales, zeros, pool);
    return;
  }
  // Column blocks: a multiple of the group (so a group is fitted when the block's updates have
  // reached all its columns), 128 columns when the group divides 128.
  const int64_t blk = group >= 128 ? group : (128 / group) * group;
  constexpr int64_t kTile = 128;  // rows per task: U's block rows are read once per 128 rows
  pool.run((n + kTile - 1) / kTile, [&](int64_t t, int) {
    const int64_t r0 = t * kTile, rows = std::min(kTile, n - r0);
    std::vector<float> wr(w + r0 * k, w + (r0 + rows) * k), e(static_cast<size_t>(rows * blk));
    std::vector<GroupQ> gq(static_cast<size_t>(rows));
    for (int64_t b0 = 0; b0 < k; b0 += blk) {
      const int64_t b1 = std::min(k, b0 + blk), bn = b1 - b0;
      for (int64_t j = b0; j < b1; ++j) {
        if (j % group == 0) fit_groups(wr.data(), rows, k, r0, j / group, group, q, clip_lo, clip_hi, scales, zeros, gq);
        const float* uj = f.u.data() + j * k;
        for (int64_t r = 0; r < rows; ++r) {  // round column j; spread its error over the block only
          float* x = wr.data() + r * k;
          const float ej = round_column(x, j, gq[size_t(r)], q, uj[j], codes + (r0 + r) * k + j);
          e[size_t(r * blk + (j - b0))] = ej;
          axpy_neg(x + j + 1, ej, uj + j + 1, b1 - j - 1);
        }
      }
      // The block's errors reach the later columns in one product: W[:, b1:] −= E·U[b0:b1, b1:].
      if (b1 < k) sub_product(wr.data() + b1, k, e.data(), blk, f.u.data() + b0 * k + b1, k, rows, k - b1, bn);
    }
  });
}

}  // namespace awq::quant_detail
#endif  // HWY_ONCE
