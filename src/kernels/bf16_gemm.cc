// The dense GEMM on bf16-rounded inputs (include/awq/kernels.h "Dense GEMM on bf16-rounded
// inputs"): the scalar reference, the Highway kernels (every compiled target; used where AMX-BF16
// is not), the dispatch to the AMX-BF16 kernel (amx_bf16_gemm.cc) and XᵀX on top of them.
//
// Highway kernel: B packed once into panels of kPanel = 32 columns, k-major, as bf16 bits
// (panel p, column c, row j at pack[(p·k + c)·32 + j], zero past n); a task rounds 128 rows of A to
// bf16 (kept as f32) and runs MR rows × one panel at a time: per column c it widens the panel's 32
// values and broadcasts each row's a[c], one FMA per (row, output, c) in c order. The products of
// bf16 values are exact in f32, so each FMA rounds once, as the reference's add does.
#include <algorithm>
#include <cstring>
#include <vector>

#include "awq/error.h"
#include "awq/kernels.h"
#include "awq/thread_pool.h"
#include "kernels/internal.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/bf16_gemm.cc"
#include "kernels/hwy_config.h"
// clang-format off
#include <hwy/foreach_target.h>
#include <hwy/highway.h>
// clang-format on
#include "kernels/simd_common-inl.h"  // DF, VF, kL

#ifndef AWQ_BF16_GEMM_ONCE
#define AWQ_BF16_GEMM_ONCE
namespace awq::kernels {
constexpr int64_t kPanel = 32;     // columns of B per Highway panel
constexpr int64_t kRowBlock = 128;  // rows of A per Highway task
inline float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }
}  // namespace awq::kernels
#endif

HWY_BEFORE_NAMESPACE();
namespace awq::kernels {
namespace HWY_NAMESPACE {

constexpr int64_t kNV = kPanel / int64_t(kL);  // vectors per panel row
#if HWY_TARGET <= HWY_AVX3 && HWY_ARCH_X86
constexpr int kBfMR = 8;
#elif HWY_TARGET <= HWY_AVX2 && HWY_ARCH_X86
constexpr int kBfMR = 2;
#else
constexpr int kBfMR = 1;
#endif

template <int MR>
HWY_INLINE void PanelMicro(const uint16_t* HWY_RESTRICT panel, int64_t k, const float* HWY_RESTRICT x, float* HWY_RESTRICT y,
                           int64_t ys, int64_t cols, bool accumulate) {
  const DF df;
  const hn::Rebind<hwy::bfloat16_t, DF> dbf;
  HWY_ALIGN float tmp[kPanel];
  VF acc[MR][kNV];
  for (int r = 0; r < MR; ++r) {
    if (accumulate) {
      std::fill(tmp, tmp + kPanel, 0.0f);
      std::copy(y + r * ys, y + r * ys + cols, tmp);
      for (int64_t v = 0; v < kNV; ++v) acc[r][v] = hn::Load(df, tmp + v * int64_t(kL));
    } else {
      for (int64_t v = 0; v < kNV; ++v) acc[r][v] = hn::Zero(df);
    }
  }
  for (int64_t c = 0; c < k; ++c) {
    VF w[kNV];
    const hwy::bfloat16_t* pc = reinterpret_cast<const hwy::bfloat16_t*>(panel + c * kPanel);
    for (int64_t v = 0; v < kNV; ++v) w[v] = hn::PromoteTo(df, hn::LoadU(dbf, pc + v * int64_t(kL)));
    for (int r = 0; r < MR; ++r) {
      const VF xv = hn::Set(df, x[r * k + c]);
      for (int64_t v = 0; v < kNV; ++v) acc[r][v] = hn::MulAdd(w[v], xv, acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    for (int64_t v = 0; v < kNV; ++v) hn::Store(acc[r][v], df, tmp + v * int64_t(kL));
    std::copy(tmp, tmp + cols, y + r * ys);
  }
}

void Bf16PackT(const float* b, int64_t n, int64_t k, uint16_t* dst, ThreadPool& pool) {
  const int64_t panels = (n + kPanel - 1) / kPanel;
  pool.run(panels, [&](int64_t p, int) {
    uint16_t* out = dst + p * k * kPanel;
    for (int64_t c = 0; c < k; ++c)
      for (int64_t j = 0; j < kPanel; ++j) {
        const int64_t row = p * kPanel + j;
        out[c * kPanel + j] = row < n ? f32_to_bf16(b[row * k + c]) : uint16_t(0);
      }
  });
}

void Bf16GemmT(const float* a, int64_t m, const uint16_t* bp, int64_t n, int64_t k, float* c, bool accumulate, ThreadPool& pool) {
  const int64_t panels = (n + kPanel - 1) / kPanel, blocks = (m + kRowBlock - 1) / kRowBlock;
  std::vector<std::vector<float>> xr(size_t(pool.size()));
  pool.run(blocks, [&](int64_t blk, int th) HWY_ATTR {
    const int64_t m0 = blk * kRowBlock, m1 = std::min(m, m0 + kRowBlock);
    std::vector<float>& x = xr[size_t(th)];
    x.resize(size_t((m1 - m0) * k));
    for (int64_t i = 0; i < (m1 - m0) * k; ++i) x[size_t(i)] = round_bf16(a[m0 * k + i]);
    for (int64_t p = 0; p < panels; ++p) {
      const uint16_t* panel = bp + p * k * kPanel;
      const int64_t n0 = p * kPanel, cols = std::min(kPanel, n - n0);
      int64_t r = m0;
      for (; r + kBfMR <= m1; r += kBfMR)
        PanelMicro<kBfMR>(panel, k, x.data() + (r - m0) * k, c + r * n + n0, n, cols, accumulate);
      for (; r < m1; ++r) PanelMicro<1>(panel, k, x.data() + (r - m0) * k, c + r * n + n0, n, cols, accumulate);
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace awq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace awq::kernels {
HWY_EXPORT(Bf16PackT);
HWY_EXPORT(Bf16GemmT);

bool amx_bf16_available(std::string* why_not) {
  std::string why;
  if (amx_available(&why)) {
    static const std::string missing = amx_bf16_missing();  // once per process, after the tile permission
    why = missing;
  }
  if (why.empty()) return true;
  if (why_not) *why_not = why;
  return false;
}

Bf16Matrix bf16_pack(const float* b, int64_t n, int64_t k, ThreadPool* pool) {
  if (n < 1 || k < 1) throw Error("bf16_pack: empty matrix");
  ThreadPool& p = pool ? *pool : default_pool();
  Bf16Matrix out;
  out.n = n;
  out.k = k;
  out.amx = amx_bf16_available();
  if (out.amx) {
    out.data = AlignedBytes(size_t(amx_bf16_b_elems(n, k)) * 2);
    amx_bf16_pack_b(b, n, k, reinterpret_cast<uint16_t*>(out.data.data()), p);
  } else {
    out.data = AlignedBytes(size_t((n + kPanel - 1) / kPanel * kPanel * k) * 2);
    HWY_DYNAMIC_DISPATCH(Bf16PackT)(b, n, k, reinterpret_cast<uint16_t*>(out.data.data()), p);
  }
  return out;
}

namespace {
void gemm_packed(const float* a, int64_t m, const Bf16Matrix& b, float* c, ThreadPool& p, bool accumulate, bool upper) {
  if (m < 1) throw Error("bf16_gemm: no rows");
  if (b.amx != amx_bf16_available())
    throw Error(std::string("bf16_gemm: B was packed for the ") + (b.amx ? "AMX" : "Highway") + " kernel, which is not the one in use now");
  if (b.amx) amx_bf16_gemm(a, m, b, c, accumulate, upper, p);
  else HWY_DYNAMIC_DISPATCH(Bf16GemmT)(a, m, reinterpret_cast<const uint16_t*>(b.data.data()), b.n, b.k, c, accumulate, p);
}
}  // namespace

void bf16_gemm(const float* a, int64_t m, const Bf16Matrix& b, float* c, ThreadPool* pool, bool accumulate) {
  gemm_packed(a, m, b, c, pool ? *pool : default_pool(), accumulate, false);
}

void bf16_gemm(const float* a, int64_t m, const float* b, int64_t n, int64_t k, float* c, ThreadPool* pool) {
  const Bf16Matrix bp = bf16_pack(b, n, k, pool);
  bf16_gemm(a, m, bp, c, pool);
}

void bf16_gemm_ref(const float* a, int64_t m, const float* b, int64_t n, int64_t k, float* c, bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = accumulate ? c[i * n + j] : 0.0f;
      for (int64_t kk = 0; kk < k; ++kk) acc += round_bf16(a[i * k + kk]) * round_bf16(b[j * k + kk]);
      c[i * n + j] = acc;
    }
}

void bf16_gram(const float* x, int64_t t, int64_t k, float* g, ThreadPool* pool) {
  ThreadPool& p = pool ? *pool : default_pool();
  constexpr int64_t kChunk = 4096;
  if (t < 1) {
    std::fill(g, g + k * k, 0.0f);
    return;
  }
  std::vector<float> xt(size_t(k * std::min(kChunk, t)));
  for (int64_t t0 = 0; t0 < t; t0 += kChunk) {
    const int64_t tc = std::min(kChunk, t - t0);
    p.run((k + 63) / 64, [&](int64_t task, int) {  // xt[i][τ] = x[t0 + τ][i], 64 features a task
      const int64_t i0 = task * 64, i1 = std::min(k, i0 + 64);
      for (int64_t tau = 0; tau < tc; ++tau)
        for (int64_t i = i0; i < i1; ++i) xt[size_t(i * tc + tau)] = x[(t0 + tau) * k + i];
    });
    const Bf16Matrix bp = bf16_pack(xt.data(), k, tc, &p);
    gemm_packed(xt.data(), k, bp, g, p, t0 > 0, bp.amx);
  }
  p.run(k, [&](int64_t i, int) {  // the lower triangle from the upper one (exactly symmetric)
    for (int64_t j = 0; j < i; ++j) g[i * k + j] = g[j * k + i];
  });
}

}  // namespace awq::kernels
#endif  // HWY_ONCE
