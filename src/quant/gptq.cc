// GPTQ rounding (see gptq.h). The inverse factor U comes from one Cholesky factorisation of the
// index-reversed matrix: with J the reversal, J·H·J = L·Lᵀ (L lower) gives H = R·Rᵀ with R = J·L·J
// upper, so H⁻¹ = R⁻ᵀ·R⁻¹ and U = R⁻¹ = J·L⁻¹·J (upper, positive diagonal: the Cholesky factor
// GPTQ's reference obtains with cholesky → cholesky_inverse → cholesky(upper)).
#include "quant/gptq.h"

#include <algorithm>
#include <cmath>

#include "awq/thread_pool.h"

namespace awq::quant_detail {

namespace {

// In place: a (k×k, lower triangle read) -> its lower Cholesky factor. Row-oriented: L_ij for
// i > j is one dot product of rows i and j, so each entry is computed in a fixed order whatever the
// thread count. False at a pivot that is not finite or not above 1e-9 of its diagonal entry (the
// matrix is numerically singular: its column is, to rounding, a combination of the earlier ones).
bool cholesky_lower(std::vector<double>& a, int64_t k, ThreadPool& pool) {
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
void reversed_inverse(const std::vector<double>& l, int64_t k, std::vector<double>& u, ThreadPool& pool) {
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

}  // namespace

GptqFactor gptq_factor(const float* H, int64_t k, double damp, ThreadPool& pool) {
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
  // a[a][b] = H'[k−1−a][k−1−b] (lower triangle only: the factorisation reads no more).
  std::vector<double> a0(size_t(k * k), 0.0);
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c <= r; ++c) {
      const int64_t i = k - 1 - r, j = k - 1 - c;
      a0[size_t(r * k + c)] = dead[size_t(i)] || dead[size_t(j)] ? (r == c ? 1.0 : 0.0) : double(H[i * k + j]);
    }
  f.lambda = damp * diag / double(k);
  std::vector<double> l;
  for (f.retries = 0; f.retries <= 6; ++f.retries) {
    l = a0;
    for (int64_t j = 0; j < k; ++j) l[size_t(j * k + j)] += f.lambda;
    if (cholesky_lower(l, k, pool)) {
      reversed_inverse(l, k, f.u, pool);
      if (all_finite(f.u)) return f;
    }
    f.lambda = f.lambda > 0 ? f.lambda * 10 : diag / double(k) * 1e-6;
  }
  f.u.clear();
  f.retries = 7;
  return f;
}

void gptq_quantize(const float* w, int64_t n, int64_t k, const GptqFactor& f, int64_t group, const QParams& q, const float* clip_lo,
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

}  // namespace awq::quant_detail
