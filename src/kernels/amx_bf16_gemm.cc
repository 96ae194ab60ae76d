// The dense bf16 GEMM (include/awq/kernels.h "Dense GEMM on bf16-rounded inputs") on Intel AMX-BF16
// tiles (TDPBF16PS), behind amx_bf16_available(). Hand-written intrinsics in functions compiled for
// AMX + AVX-512 alone (target attribute, not -m flags: the library still runs without them).
//
// Blocking (one core's 2 MiB L2): a task owns 256 rows of A (16 m tiles, packed once per task into
// 1 KiB tiles: 256 × k bf16) and a range of 256-column blocks of C. Per 256 × 256 C block, kept in a
// thread-local buffer of 16 × 16 f32 tiles (256 KiB), K runs in slices of 512 (16 steps of 32):
// for each pair of n tiles (their B slices, 32 KiB, stay in L1) every pair of m tiles loads its 4 C
// tiles, runs the 16 steps (2 A + 2 B tile loads, 4 TDPBF16PS each) and stores them back. Each
// output is summed by one task in k order of the slices: the result does not depend on threads.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "awq/error.h"
#include "awq/kernels.h"
#include "awq/thread_pool.h"
#include "kernels/amx_tiles.h"
#include "kernels/cpuid.h"
#include "kernels/internal.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // g++ 12's AVX-512 intrinsics (GCC bug 105593)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace awq::kernels {

namespace {

constexpr int64_t kMB = 256, kNB = 256;  // rows of A per task, columns of a C block
constexpr int64_t kMT = kMB / 16, kNT = kNB / 16;
constexpr int64_t kSlice = 16;  // K steps of 32 per slice

TileConfig gemm_config() { return bf16_tile_config(); }  // C 16 × 16 f32; A 16 × 32 bf16; B 16 pair rows × 16 × 2

// Rows [r0, r0 + 16·mts) of a (zero past m) into A tiles: tile (mt, s) at (mt·steps + s)·512.
AWQ_AMXBF16_TARGET void pack_a(const float* a, int64_t m, int64_t k, int64_t r0, int64_t mts, int64_t steps, uint16_t* dst) {
  for (int64_t mt = 0; mt < mts; ++mt)
    for (int64_t r = 0; r < 16; ++r) {
      const int64_t i = r0 + mt * 16 + r;
      for (int64_t s = 0; s < steps; ++s) {
        uint16_t* out = dst + (mt * steps + s) * 512 + r * 32;
        if (i < m) round32(a + i * k, s * 32, k, out);
        else std::memset(out, 0, 64);
      }
    }
}

// One pair (or single) of m tiles × n tiles over steps [s0, s1) with the C tiles in cb (tile-major,
// row stride kNT tiles): load C, accumulate, store C.
template <int MT, int NT>
AWQ_AMXBF16_TARGET inline void micro(const uint16_t* a0, const uint16_t* a1, const uint16_t* b0, const uint16_t* b1, int64_t s0,
                                     int64_t s1, float* c00) {
  float* c01 = c00 + 256;
  float* c10 = c00 + kNT * 256;
  float* c11 = c10 + 256;
  _tile_loadd(0, c00, 64);
  if constexpr (NT == 2) _tile_loadd(1, c01, 64);
  if constexpr (MT == 2) _tile_loadd(2, c10, 64);
  if constexpr (MT == 2 && NT == 2) _tile_loadd(3, c11, 64);
  for (int64_t s = s0; s < s1; ++s) {
    _tile_loadd(4, a0 + s * 512, 64);
    _tile_loadd(6, b0 + s * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NT == 2) {
      _tile_loadd(7, b1 + s * 512, 64);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (MT == 2) {
      _tile_loadd(5, a1 + s * 512, 64);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (NT == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c00, 64);
  if constexpr (NT == 2) _tile_stored(1, c01, 64);
  if constexpr (MT == 2) _tile_stored(2, c10, 64);
  if constexpr (MT == 2 && NT == 2) _tile_stored(3, c11, 64);
}

struct Scratch {
  AlignedBytes a;  // packed A of the task
  AlignedBytes c;  // one C block, kMT × kNT tiles
};

// C block (rows r0.., columns j0..) between c ([m][n]) and the tile buffer cb; masked to i < m, j < n.
AWQ_AMXBF16_TARGET void c_block_io(float* c, int64_t m, int64_t n, int64_t r0, int64_t j0, int64_t mts, int64_t nts, float* cb,
                                   bool load) {
  for (int64_t mt = 0; mt < mts; ++mt)
    for (int64_t r = 0; r < 16; ++r) {
      const int64_t i = r0 + mt * 16 + r;
      for (int64_t nt = 0; nt < nts; ++nt) {
        float* t = cb + (mt * kNT + nt) * 256 + r * 16;
        const int64_t j = j0 + nt * 16;
        const __mmask16 keep = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << std::max<int64_t>(n - j, 0)) - 1u);
        if (load) _mm512_store_ps(t, i < m ? _mm512_maskz_loadu_ps(keep, c + i * n + j) : _mm512_setzero_ps());
        else if (i < m) _mm512_mask_storeu_ps(c + i * n + j, keep, _mm512_load_ps(t));
      }
    }
}

AWQ_AMXBF16_TARGET void run_task(const float* a, int64_t m, const Bf16Matrix& b, float* c, bool accumulate, int64_t mb, int64_t nb0,
                                 int64_t nb1, Scratch& S) {
  const int64_t k = b.k, n = b.n, steps = (k + 31) / 32, n_tiles = (n + 15) / 16;
  const int64_t r0 = mb * kMB, mts = std::min<int64_t>(kMT, ((m - r0) + 15) / 16);
  const size_t a_bytes = size_t(mts * steps) * 1024;
  if (S.a.size() < a_bytes) S.a = AlignedBytes(a_bytes);
  if (S.c.size() < size_t(kMT * kNT) * 1024) S.c = AlignedBytes(size_t(kMT * kNT) * 1024);
  uint16_t* ap = reinterpret_cast<uint16_t*>(S.a.data());
  float* cb = reinterpret_cast<float*>(S.c.data());
  const uint16_t* bp = reinterpret_cast<const uint16_t*>(b.data.data());
  pack_a(a, m, k, r0, mts, steps, ap);
  const TileConfig cfg = gemm_config();
  asm volatile("" ::: "memory");
  load_tile_config(cfg);
  for (int64_t nb = nb0; nb < nb1; ++nb) {
    const int64_t jt0 = nb * kNT, nts = std::min<int64_t>(kNT, n_tiles - jt0);
    if (accumulate) c_block_io(c, m, n, r0, jt0 * 16, mts, nts, cb, true);
    else std::memset(cb, 0, size_t(kMT * kNT) * 1024);
    asm volatile("" ::: "memory");
    for (int64_t s0 = 0; s0 < steps; s0 += kSlice) {
      const int64_t s1 = std::min(steps, s0 + kSlice);
      for (int64_t nt = 0; nt < nts; nt += 2) {
        const uint16_t* b0 = bp + (jt0 + nt) * steps * 512;
        const uint16_t* b1 = b0 + steps * 512;
        const bool n2 = nt + 1 < nts;
        for (int64_t mt = 0; mt < mts; mt += 2) {
          const uint16_t* a0 = ap + mt * steps * 512;
          const uint16_t* a1 = a0 + steps * 512;
          float* c00 = cb + (mt * kNT + nt) * 256;
          const bool m2 = mt + 1 < mts;
          if (m2 && n2) micro<2, 2>(a0, a1, b0, b1, s0, s1, c00);
          else if (m2) micro<2, 1>(a0, a1, b0, b1, s0, s1, c00);
          else if (n2) micro<1, 2>(a0, a1, b0, b1, s0, s1, c00);
          else micro<1, 1>(a0, a1, b0, b1, s0, s1, c00);
        }
      }
    }
    asm volatile("" ::: "memory");
    c_block_io(c, m, n, r0, jt0 * 16, mts, nts, cb, false);
  }
  _tile_release();
}

// One 16 × 32 × 16 TDPBF16PS on small integers (exact in bf16 and f32) against plain arithmetic.
AWQ_AMXBF16_TARGET bool self_test() {
  alignas(64) float a[16 * 32], bm[16 * 32], c[16 * 16];
  alignas(64) uint16_t ap[512], bp[512];
  for (int i = 0; i < 16 * 32; ++i) {
    a[i] = float((i * 37 + 11) % 15 - 7);
    bm[i] = float((i * 13 + 5) % 9 - 4);
  }
  pack_a(a, 16, 32, 0, 1, 1, ap);
  pack_b_tile(bm, 32, 16, 32, 0, 1, bp);
  std::memset(c, 0, sizeof c);
  const TileConfig cfg = gemm_config();
  asm volatile("" ::: "memory");
  load_tile_config(cfg);
  micro<1, 1>(ap, ap, bp, bp, 0, 1, c);
  _tile_release();
  asm volatile("" ::: "memory");
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float want = 0;
      for (int kk = 0; kk < 32; ++kk) want += a[i * 32 + kk] * bm[j * 32 + kk];
      if (want != c[i * 16 + j]) return false;
    }
  return true;
}

}  // namespace

std::string amx_bf16_missing() {
  // CPUID leaf 7.0 EDX bit 22: amx-bf16 (the tile, XCR0 and permission checks are amx_available's).
  if (!((read_cpuid().d7 >> 22) & 1u)) return "CPU lacks amx_bf16";
  if (!self_test()) return "AMX-BF16 self-test gave a wrong TDPBF16PS result";
  return {};
}

int64_t amx_bf16_b_elems(int64_t n, int64_t k) { return (n + 15) / 16 * 16 * ((k + 31) / 32 * 32); }

void amx_bf16_pack_b(const float* b, int64_t n, int64_t k, uint16_t* dst, ThreadPool& pool) {
  const int64_t steps = (k + 31) / 32;
  pool.run((n + 15) / 16, [&](int64_t jt, int) { pack_b_tile(b, k, n, k, jt, steps, dst); });
}

void amx_bf16_gemm(const float* a, int64_t m, const Bf16Matrix& b, float* c, bool accumulate, bool upper, ThreadPool& pool) {
  if (upper && (m != b.n)) throw Error("amx_bf16_gemm: upper needs a square result");
  const int64_t mblocks = (m + kMB - 1) / kMB, nblocks = (b.n + kNB - 1) / kNB;
  int64_t groups = 1;  // column ranges per row block: enough tasks for the pool when m is small
  while (!upper && mblocks * groups < 4 * pool.size() && groups < nblocks) groups *= 2;
  groups = std::min(groups, nblocks);
  pool.run(mblocks * groups, [&](int64_t task, int) {
    thread_local Scratch S;  // each worker's own: tasks run concurrently on the pool's threads
    const int64_t mb = task / groups, g = task % groups;
    int64_t nb0 = g * nblocks / groups;
    const int64_t nb1 = (g + 1) * nblocks / groups;
    if (upper) nb0 = std::max(nb0, mb);  // kMB == kNB: block (mb, nb) holds the diagonal when nb == mb
    if (nb0 < nb1) run_task(a, m, b, c, accumulate, mb, nb0, nb1, S);
  });
}

}  // namespace awq::kernels
