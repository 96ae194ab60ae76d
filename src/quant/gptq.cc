// GPTQ rounding (see gptq.h). The inverse factor U comes from one Cholesky factorisation of the
// index-reversed matrix: with J the reversal, J·H·J = L·Lᵀ (L lower) gives H = R·Rᵀ with R = J·L·J
// upper, so H⁻¹ = R⁻ᵀ·R⁻¹ and U = R⁻¹ = J·L⁻¹·J (upper, positive diagonal: the Cholesky factor
// GPTQ's reference obtains with cholesky → cholesky_inverse → cholesky(upper)).
#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "awq/thread_pool.h"

namespace awq::quant_detail {

namespace {

// In place: a (k×k, lower triangle read) -> its lower Cholesky factor. Row-oriented: L_ij for
// i > j is one dot product of rows i and j, so each entry is computed in a fixed order whatever the
// thread count. False at a pivot that is not finite or not above 1e-9 of its diagonal entry (the
// matrix is numerically singular: its column is, to rounding, a combination of the earlier ones).
bool cholesky_lower_ref(std::vector<double>& a, int64_t k, ThreadPool& pool) {
  constexpr int64_t kRows = 64;
  for (int64_t j = 0; j < k; ++j) {
    double* rj = a.data() + j * k;
    const double ajj = rj[j];
    double s = ajj;
    for (int64_t m = 0; m < j; ++m) s -= rj[m] * rj[m];
    if (!(ajj > 0) || !(s > 1e-9 * ajj) || !std::isfinite(s)) return false;
    rj[j] = std::sqrt(s);
    const double inv = 1.0 / rj[j];
    const int64_t below = k - j - 1;
    pool.run((below + kRows - 1) / kRows, [&](int64_t t, int) {
      const int64_t i0 = j + 1 + t * kRows, i1 = std::min(k, i0 + kRows);
      for (int64_t i = i0; i < i1; ++i) {
        double* ri = a.data() + i * k;
        double d = ri[j];
        for (int64_t m = 0; m < j; ++m) d -= ri[m] * rj[m];
        ri[j] = d * inv;
      }
    });
  }
  return true;
}

// U = J·L⁻¹·J from the lower factor l: column c of L⁻¹ by forward substitution (columns are
// independent; each is computed alone), written reversed into u.
void reversed_inverse_ref(const std::vector<double>& l, int64_t k, std::vector<double>& u, ThreadPool& pool) {
  u.assign(size_t(k * k), 0.0);
  pool.run(k, [&](int64_t c, int) {
    std::vector<double> col(static_cast<size_t>(k - c));  // col[i − c] = (L⁻¹)_ic
    col[0] = 1.0 / l[size_t(c * k + c)];
    for (int64_t i = c + 1; i < k; ++i) {
      const double* ri = l.data() + i * k;
      double s = 0;
      for (int64_t m = c; m < i; ++m) s += ri[m] * col[size_t(m - c)];
      col[size_t(i - c)] = -s / ri[i];
    }
    for (int64_t i = c; i < k; ++i) u[size_t((k - 1 - i) * k + (k - 1 - c))] = col[size_t(i - c)];
  });
}

bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// ---- The blocked (fast) path. Every entry is computed by the same operations in the same order
// as the straightforward (_ref) functions above: a product term is subtracted one at a time, in
// ascending order of the summation index; the blocking only changes which entries are computed
// when, and which thread computes them. So the results equal the _ref ones (no FMA contraction in
// the build's baseline x86-64 code; a different summation order would only move the last bits).

using V8 = double __attribute__((vector_size(64)));  // 8 doubles (GCC lowers it to the clone's vectors)

constexpr int64_t kBlock = 64;     // Cholesky / inverse block size
constexpr int64_t kDepthChunk = 128;  // summation indices per pass of sub_product
constexpr int64_t kColChunk = 256;    // columns per pass of sub_product

// C[r][c] −= Σ_{m<depth} A[r][m]·B[m][c] for r < rows, c < cols, each term subtracted one by one in
// ascending m (the same order whatever the chunking). Four rows share each load of B's row; B is
// walked in chunks (kDepthChunk rows × kColChunk columns) that stay in cache across all rows.
// Cloned for AVX-512 and AVX2 (wider vectors, picked at load time; no FMA, whose single rounding
// would change the results against the _ref path).
#if defined(__clang__)
#define AWQ_NO_CONTRACT
#else
#define AWQ_NO_CONTRACT , optimize("fp-contract=off")
#endif
__attribute__((target_clones("avx512f", "avx2", "default") AWQ_NO_CONTRACT)) void sub_product(double* C, int64_t ldc, const double* A, int64_t lda, const double* B, int64_t ldb, int64_t rows, int64_t cols,
                 int64_t depth) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  for (int64_t c0 = 0; c0 < cols; c0 += kColChunk) {
    const int64_t cn = std::min(kColChunk, cols - c0);
    for (int64_t m0 = 0; m0 < depth; m0 += kDepthChunk) {
      const int64_t m1 = std::min(depth, m0 + kDepthChunk);
      int64_t r = 0;
      for (; r + 4 <= rows; r += 4) {
        // 4 rows × 16 columns held in registers across the chunk's m (the same subtractions, in
        // the same order, as the loop below; only fewer loads and stores).
        int64_t c = 0;
        for (; c + 16 <= cn; c += 16) {
          double* x[4] = {C + r * ldc + c0 + c, C + (r + 1) * ldc + c0 + c, C + (r + 2) * ldc + c0 + c, C + (r + 3) * ldc + c0 + c};
          V8 acc[4][2];
          for (int i = 0; i < 4; ++i) {
            std::memcpy(&acc[i][0], x[i], sizeof(V8));
            std::memcpy(&acc[i][1], x[i] + 8, sizeof(V8));
          }
          for (int64_t m = m0; m < m1; ++m) {
            V8 b0, b1;
            std::memcpy(&b0, B + m * ldb + c0 + c, sizeof(V8));
            std::memcpy(&b1, B + m * ldb + c0 + c + 8, sizeof(V8));
            for (int i = 0; i < 4; ++i) {
              const double a = A[(r + i) * lda + m];
              acc[i][0] -= a * b0;
              acc[i][1] -= a * b1;
            }
          }
          for (int i = 0; i < 4; ++i) {
            std::memcpy(x[i], &acc[i][0], sizeof(V8));
            std::memcpy(x[i] + 8, &acc[i][1], sizeof(V8));
          }
        }
        if (c < cn) {
          double* __restrict x0 = C + r * ldc + c0;
          double* __restrict x1 = x0 + ldc;
          double* __restrict x2 = x1 + ldc;
          double* __restrict x3 = x2 + ldc;
          for (int64_t m = m0; m < m1; ++m) {
            const double a0 = A[r * lda + m], a1 = A[(r + 1) * lda + m], a2 = A[(r + 2) * lda + m], a3 = A[(r + 3) * lda + m];
            const double* __restrict b = B + m * ldb + c0;
            for (int64_t cc = c; cc < cn; ++cc) {
              x0[cc] -= a0 * b[cc];
              x1[cc] -= a1 * b[cc];
              x2[cc] -= a2 * b[cc];
              x3[cc] -= a3 * b[cc];
            }
          }
        }
      }
      for (; r < rows; ++r) {
        double* __restrict x = C + r * ldc + c0;
        for (int64_t m = m0; m < m1; ++m) {
          const double a = A[r * lda + m];
          const double* __restrict b = B + m * ldb + c0;
          for (int64_t c = 0; c < cn; ++c) x[c] -= a * b[c];
        }
      }
    }
  }
}

// cholesky_lower_ref's contract, blocked left-looking: for each block of kBlock columns, (1) the
// product of the rows' earlier factor columns is subtracted from the block column (sub_product,
// row panels over the pool), (2) the diagonal block is factored, (3) the rows below are solved
// against it (row panels over the pool).
bool cholesky_lower(std::vector<double>& a, int64_t k, ThreadPool& pool) {
  constexpr int64_t kPanel = 64;
  std::vector<double> diag(static_cast<size_t>(k)), t;
  for (int64_t j = 0; j < k; ++j) diag[size_t(j)] = a[size_t(j * k + j)];
  for (int64_t j0 = 0; j0 < k; j0 += kBlock) {
    const int64_t jb = std::min(kBlock, k - j0), j1 = j0 + jb;
    const int64_t panels = (k - j0 + kPanel - 1) / kPanel;
    if (j0 > 0) {
      t.assign(size_t(j0 * jb), 0.0);  // t[m][c] = L[j0 + c][m]
      for (int64_t c = 0; c < jb; ++c)
        for (int64_t m = 0; m < j0; ++m) t[size_t(m * jb + c)] = a[size_t((j0 + c) * k + m)];
      pool.run(panels, [&](int64_t p, int) {
        const int64_t i0 = j0 + p * kPanel, rows = std::min(kPanel, k - i0);
        sub_product(a.data() + i0 * k + j0, k, a.data() + i0 * k, k, t.data(), jb, rows, jb, j0);
      });
    }
    for (int64_t j = j0; j < j1; ++j) {  // the diagonal block, column by column
      double* rj = a.data() + j * k;
      const double ajj = diag[size_t(j)];
      double s = rj[j];
      for (int64_t m = j0; m < j; ++m) s -= rj[m] * rj[m];
      if (!(ajj > 0) || !(s > 1e-9 * ajj) || !std::isfinite(s)) return false;
      rj[j] = std::sqrt(s);
      const double inv = 1.0 / rj[j];
      for (int64_t i = j + 1; i < j1; ++i) {
        double* ri = a.data() + i * k;
        double d = ri[j];
        for (int64_t m = j0; m < j; ++m) d -= ri[m] * rj[m];
        ri[j] = d * inv;
      }
    }
    if (j1 >= k) break;
    pool.run((k - j1 + kPanel - 1) / kPanel, [&](int64_t p, int) {
      const int64_t i0 = j1 + p * kPanel, i1 = std::min(k, i0 + kPanel);
      for (int64_t j = j0; j < j1; ++j) {
        const double* rj = a.data() + j * k;
        const double inv = 1.0 / rj[j];
        for (int64_t i = i0; i < i1; ++i) {
          double* ri = a.data() + i * k;
          double d = ri[j];
          for (int64_t m = j0; m < j; ++m) d -= ri[m] * rj[m];
          ri[j] = d * inv;
        }
      }
    });
  }
  return true;
}

// reversed_inverse_ref's contract, blocked and row-oriented: X = L⁻¹ is built in place of l, a
// block of kBlock rows at a time: X_i = (e_i − Σ_{m<i} L_im·X_m) / L_ii, the terms subtracted in
// ascending m (X_mc = 0 for m < c, so each entry gets the _ref's terms in the _ref's order). A row
// block's L rows are copied out first; its X rows are computed in column panels over the pool:
// the earlier rows' part as one sub_product, then the block's own rows in order. On return l holds
// U (the reversal is in place: no second k² buffer).
void reversed_inverse(std::vector<double>& l, int64_t k, ThreadPool& pool) {
  constexpr int64_t kPanel = 64;
  std::vector<double> lb(static_cast<size_t>(kBlock * k));
  for (int64_t i0 = 0; i0 < k; i0 += kBlock) {
    const int64_t ib = std::min(kBlock, k - i0), i1 = i0 + ib;
    std::copy(l.begin() + i0 * k, l.begin() + i1 * k, lb.begin());
    std::fill(l.begin() + i0 * k, l.begin() + i1 * k, 0.0);
    pool.run((i1 + kPanel - 1) / kPanel, [&](int64_t p, int) {
      const int64_t c0 = p * kPanel, c1 = std::min(i1, c0 + kPanel);
      if (c0 < i0) sub_product(l.data() + i0 * k + c0, k, lb.data() + c0, k, l.data() + c0 * k + c0, k, ib, c1 - c0, i0 - c0);
      for (int64_t r = 0; r < ib; ++r) {
        const int64_t i = i0 + r;
        double* x = l.data() + i * k;
        const double* li = lb.data() + r * k;
        for (int64_t m = std::max(i0, c0); m < i; ++m) {
          const double a = li[m];
          const double* xm = l.data() + m * k;
          for (int64_t c = c0, ce = std::min(c1, m + 1); c < ce; ++c) x[c] -= a * xm[c];
        }
        for (int64_t c = c0, ce = std::min(c1, i); c < ce; ++c) x[c] = x[c] / li[i];
        if (i >= c0 && i < c1) x[i] = 1.0 / li[i];
        for (int64_t c = std::max(c0, i + 1); c < c1; ++c) x[c] = 0.0;  // the product's ±0 above the diagonal
      }
    });
  }
  // U_ab = X[k−1−a][k−1−b]: index a·k + b is k² − 1 − (i·k + c), so U is X reversed end to end.
  std::reverse(l.begin(), l.end());
}

GptqFactor factor_with(const float* H, int64_t k, double damp, ThreadPool& pool, bool ref) {
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
  // l[a][b] = H'[k−1−a][k−1−b] + λ·[a = b] (lower triangle only: the factorisation reads no more),
  // rebuilt from H for each try (no second k² copy is held).
  f.lambda = damp * diag / double(k);
  std::vector<double> l;
  for (f.retries = 0; f.retries <= 6; ++f.retries) {
    l.assign(size_t(k * k), 0.0);
    pool.run(k, [&](int64_t r, int) {
      for (int64_t c = 0; c <= r; ++c) {
        const int64_t i = k - 1 - r, j = k - 1 - c;
        l[size_t(r * k + c)] = dead[size_t(i)] || dead[size_t(j)] ? (r == c ? 1.0 : 0.0) : double(H[i * k + j]);
      }
      l[size_t(r * k + r)] += f.lambda;
    });
    if (ref ? cholesky_lower_ref(l, k, pool) : cholesky_lower(l, k, pool)) {
      if (ref) {
        reversed_inverse_ref(l, k, f.u, pool);
      } else {
        reversed_inverse(l, k, pool);
        f.u = std::move(l);
      }
      if (all_finite(f.u)) return f;
    }
    f.lambda = f.lambda > 0 ? f.lambda * 10 : diag / double(k) * 1e-6;
  }
  f.u.clear();
  f.retries = 7;
  return f;
}

}  // namespace

GptqFactor gptq_factor_ref(const float* H, int64_t k, double damp, ThreadPool& pool) { return factor_with(H, k, damp, pool, true); }

GptqFactor gptq_factor(const float* H, int64_t k, double damp, ThreadPool& pool) { return factor_with(H, k, damp, pool, false); }

void gptq_quantize_ref(const float* w, int64_t n, int64_t k, const GptqFactor& f, int64_t group, const QParams& q, const float* clip_lo,
                   const float* clip_hi, uint8_t* codes, float* scales, int32_t* zeros, ThreadPool& pool) {
  const int64_t ng = k / group;
  // Rows in tiles of kTile: each row of U is read once per tile, not once per row.
  constexpr int64_t kTile = 16;
  pool.run((n + kTile - 1) / kTile, [&](int64_t t, int) {
    const int64_t r0 = t * kTile, rows = std::min(kTile, n - r0);
    std::vector<double> wr(static_cast<size_t>(rows * k));
    for (int64_t i = 0; i < rows * k; ++i) wr[size_t(i)] = double(w[r0 * k + i]);
    std::vector<float> tmp(static_cast<size_t>(group));
    std::vector<GroupQ> gq(static_cast<size_t>(rows));
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * group;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t gi = (r0 + r) * ng + g;
        for (int64_t c = 0; c < group; ++c) tmp[size_t(c)] = float(wr[size_t(r * k + c0 + c)]);
        gq[size_t(r)] = quantize_group(tmp.data(), group, q, clip_lo ? clip_lo[gi] : 1.0f, clip_hi ? clip_hi[gi] : 1.0f,
                                       f.u.empty() ? codes + (r0 + r) * k + c0 : nullptr);
        scales[gi] = gq[size_t(r)].scale;
        zeros[gi] = gq[size_t(r)].zero;
      }
      if (f.u.empty()) continue;  // round to nearest: quantize_group wrote the codes
      for (int64_t j = c0; j < c0 + group; ++j) {
        const double* uj = f.u.data() + j * k;
        for (int64_t r = 0; r < rows; ++r) {
          double* x = wr.data() + r * k;
          const GroupQ& p = gq[size_t(r)];
          const uint8_t code = quantize_code(float(x[j]), p, q);
          codes[(r0 + r) * k + j] = code;
          const double e = (x[j] - double(p.scale * float(int(code) - p.zero))) / uj[j];
          for (int64_t m = j + 1; m < k; ++m) x[m] -= e * uj[m];
        }
      }
    }
  });
}


void gptq_quantize(const float* w, int64_t n, int64_t k, const GptqFactor& f, int64_t group, const QParams& q, const float* clip_lo,
                   const float* clip_hi, uint8_t* codes, float* scales, int32_t* zeros, ThreadPool& pool) {
  if (f.u.empty()) {
    gptq_quantize_ref(w, n, k, f, group, q, clip_lo, clip_hi, codes, scales, zeros, pool);  // round to nearest
    return;
  }
  const int64_t ng = k / group;
  // Column blocks: a multiple of the group (so a group is fitted when the block's updates have
  // reached all its columns), 128 columns when the group divides 128.
  const int64_t blk = group >= 128 ? group : (128 / group) * group;
  constexpr int64_t kTile = 64;  // rows per task: U's block rows are read once per 64 rows
  pool.run((n + kTile - 1) / kTile, [&](int64_t t, int) {
    const int64_t r0 = t * kTile, rows = std::min(kTile, n - r0);
    std::vector<double> wr(static_cast<size_t>(rows * k)), e(static_cast<size_t>(rows * blk));
    for (int64_t i = 0; i < rows * k; ++i) wr[size_t(i)] = double(w[r0 * k + i]);
    std::vector<float> tmp(static_cast<size_t>(group));
    std::vector<GroupQ> gq(static_cast<size_t>(rows));
    for (int64_t b0 = 0; b0 < k; b0 += blk) {
      const int64_t b1 = std::min(k, b0 + blk), bn = b1 - b0;
      for (int64_t j = b0; j < b1; ++j) {
        if (j % group == 0) {  // a group's first column: fit its scale and zero from the updated weights
          const int64_t g = j / group;
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t gi = (r0 + r) * ng + g;
            for (int64_t c = 0; c < group; ++c) tmp[size_t(c)] = float(wr[size_t(r * k + j + c)]);
            gq[size_t(r)] = quantize_group(tmp.data(), group, q, clip_lo ? clip_lo[gi] : 1.0f, clip_hi ? clip_hi[gi] : 1.0f, nullptr);
            scales[gi] = gq[size_t(r)].scale;
            zeros[gi] = gq[size_t(r)].zero;
          }
        }
        const double* uj = f.u.data() + j * k;
        for (int64_t r = 0; r < rows; ++r) {  // round column j; spread its error over the block only
          double* x = wr.data() + r * k;
          const GroupQ& p = gq[size_t(r)];
          const uint8_t code = quantize_code(float(x[j]), p, q);
          codes[(r0 + r) * k + j] = code;
          const double ej = (x[j] - double(p.scale * float(int(code) - p.zero))) / uj[j];
          e[size_t(r * blk + (j - b0))] = ej;
          for (int64_t m = j + 1; m < b1; ++m) x[m] -= ej * uj[m];
        }
      }
      // The block's errors reach the later columns in one product: W[:, b1:] −= E·U[b0:b1, b1:].
      if (b1 < k) sub_product(wr.data() + b1, k, e.data(), blk, f.u.data() + b0 * k + b1, k, rows, k - b1, bn);
    }
  });
}

}  // namespace awq::quant_detail
