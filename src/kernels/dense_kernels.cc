// Dense baselines for the benchmark: bf16-weight GEMV/GEMM with f32 accumulation, and a read-
// bandwidth stream. Compiled per Highway target like quant_kernels.cc.
#include <algorithm>
#include <cstring>

#include "awq/kernels.h"
#include "awq/thread_pool.h"
#include "kernels/internal.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/dense_kernels.cc"
#include "kernels/hwy_config.h"
// clang-format off
#include <hwy/foreach_target.h>
#include <hwy/highway.h>
// clang-format on
#include "kernels/simd_common-inl.h"  // DF, VF, kL

HWY_BEFORE_NAMESPACE();
namespace awq::kernels {
namespace HWY_NAMESPACE {

// 4 weight rows × MR activation rows over columns [k0, k1) (k1 - k0 a multiple of kL), adding the
// dot products into y (row stride ys).
template <int MR>
HWY_NOINLINE void DenseMicro(const uint16_t* HWY_RESTRICT w, int64_t k, int64_t k0, int64_t k1,
                             const float* HWY_RESTRICT x, float* HWY_RESTRICT y, int64_t ys, int64_t rows) {
  const DF df;
  const hn::Rebind<hwy::bfloat16_t, DF> dbf;
  VF acc[MR][4];
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < 4; ++r) acc[m][r] = hn::Zero(df);
  for (int64_t c = k0; c < k1; c += kL) {
    VF wv[4];
    for (int r = 0; r < 4; ++r)
      wv[r] = hn::PromoteTo(df, hn::LoadU(dbf, reinterpret_cast<const hwy::bfloat16_t*>(w + std::min<int64_t>(r, rows - 1) * k + c)));
    for (int m = 0; m < MR; ++m) {
      const VF xv = hn::LoadU(df, x + m * k + c);
      for (int r = 0; r < 4; ++r) acc[m][r] = hn::MulAdd(wv[r], xv, acc[m][r]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < rows; ++r) y[m * ys + r] += hn::GetLane(hn::SumOfLanes(df, acc[m][r]));
}

void DenseT(const uint16_t* w, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool& pool) {
  constexpr int kMR = kL >= 16 ? 4 : 2;
  const int64_t kv = k / int64_t(kL) * int64_t(kL);
  const int64_t kc = m <= kMR ? std::max<int64_t>(kv, 1) : 2048;  // K block for reuse of x in L2
  // As model_ops.cc's dense GEMM: 1/8 of a thread's share, and for m <= 4 at most ~256 KiB of
  // weights per task (threads then finish within a short task of each other).
  int64_t rows_per_task = std::max<int64_t>(4, (n / (8 * pool.size())) / 4 * 4);
  if (m <= 4) rows_per_task = std::min(rows_per_task, std::max<int64_t>(4, ((int64_t(256) << 10) / (2 * k)) / 4 * 4));
  const int64_t tasks = (n + rows_per_task - 1) / rows_per_task;
  pool.run(tasks, [&](int64_t task, int) HWY_ATTR {
    const int64_t n0 = task * rows_per_task, n1 = std::min(n, n0 + rows_per_task);
    for (int64_t mi = 0; mi < m; ++mi)
      for (int64_t r = n0; r < n1; ++r) y[mi * n + r] = 0.f;
    for (int64_t k0 = 0; k0 < kv; k0 += kc) {
      const int64_t k1 = std::min(kv, k0 + kc);
      for (int64_t m0 = 0; m0 < m; m0 += kMR) {
        const int64_t mr = std::min<int64_t>(kMR, m - m0);
        for (int64_t r = n0; r < n1; r += 4) {
          const int64_t rows = std::min<int64_t>(4, n1 - r);
          for (int64_t mm = m0; mm < m0 + mr;) {
            if (m0 + mr - mm >= kMR) {
              DenseMicro<kMR>(w + r * k, k, k0, k1, x + mm * k, y + mm * n + r, n, rows);
              mm += kMR;
            } else {
              DenseMicro<1>(w + r * k, k, k0, k1, x + mm * k, y + mm * n + r, n, rows);
              mm += 1;
            }
          }
        }
      }
    }
    for (int64_t mi = 0; mi < m; ++mi)  // scalar tail columns
      for (int64_t r = n0; r < n1; ++r)
        for (int64_t c = kv; c < k; ++c) y[mi * n + r] += bf16_to_f32(w[r * k + c]) * x[mi * k + c];
  });
}

uint64_t ReadT(const void* data, size_t bytes, ThreadPool& pool) {
  using DU = hn::ScalableTag<uint64_t>;
  const int threads = pool.size();
  const size_t per = bytes / size_t(threads) / 256 * 256;
  std::vector<uint64_t> sums(size_t(threads) * 8, 0);
  pool.run(threads, [&](int64_t task, int) HWY_ATTR {
    const DU du;
    const uint64_t* p = reinterpret_cast<const uint64_t*>(static_cast<const uint8_t*>(data) + size_t(task) * per);
    const size_t lanes = hn::Lanes(du), n = per / sizeof(uint64_t);
    auto a0 = hn::Zero(du), a1 = hn::Zero(du), a2 = hn::Zero(du), a3 = hn::Zero(du);
    for (size_t i = 0; i + 4 * lanes <= n; i += 4 * lanes) {
      a0 = hn::Xor(a0, hn::Load(du, p + i));
      a1 = hn::Xor(a1, hn::Load(du, p + i + lanes));
      a2 = hn::Xor(a2, hn::Load(du, p + i + 2 * lanes));
      a3 = hn::Xor(a3, hn::Load(du, p + i + 3 * lanes));
    }
    sums[size_t(task) * 8] = hn::GetLane(hn::SumOfLanes(du, hn::Xor(hn::Xor(a0, a1), hn::Xor(a2, a3))));
  });
  uint64_t s = 0;
  for (int t = 0; t < threads; ++t) s ^= sums[size_t(t) * 8];
  return s;
}

}  // namespace HWY_NAMESPACE
}  // namespace awq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace awq::kernels {
HWY_EXPORT(DenseT);
HWY_EXPORT(ReadT);

void dense_bf16_gemm(const uint16_t* w, int64_t n, int64_t k, const float* x, int64_t m, float* y, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(DenseT)(w, n, k, x, m, y, pool ? *pool : default_pool());
}

uint64_t read_stream(const void* data, size_t bytes, ThreadPool* pool) {
  return HWY_DYNAMIC_DISPATCH(ReadT)(data, bytes, pool ? *pool : default_pool());
}
}  // namespace awq::kernels
#endif  // HWY_ONCE
