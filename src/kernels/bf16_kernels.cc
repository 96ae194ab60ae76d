// Path::kBF16: 4-bit GEMV/GEMM with AVX-512 BF16 dot products (VDPBF16PS). Hand-written intrinsics
// in functions compiled for that ISA alone (target attribute, not -m flags: the library still runs
// on AVX2-only CPUs), reached only through gemm() after our own CPU check (path_available below).
// Arithmetic contract: Path::kBF16 in include/awq/kernels.h; gemm_ref(..., Path::kBF16) is the
// bit-exact scalar reference (dpbf16_lane and f32_to_bf16_ftz in internal.h).
//
// Data flow of one call:
//  1. Activation pass: pack_activations_f32 (shared with the reference: pqs, padding), then rounded
//     to bf16 pairs in a row-block-interleaved layout xa[row block][column pair][kMR] (u32 = two
//     bf16, column 2j low), so a micro-kernel step reads its kMR activation pairs from one line.
//  2. Tasks over panels of kNR tiles (64 output rows). Per K block (whole groups) a task dequantizes
//     each panel once to bf16 pairs, panel[pair][tile][16 rows] (64 B per tile and pair: exactly one
//     VDPBF16PS operand), then runs every activation row block over it. K blocks are sized so the
//     panel and the block's activations stay in L1 (small M) or L2 (large M). Partial sums live in
//     f32 between K blocks (stored and reloaded exactly), so each output has one accumulator that
//     runs over the column pairs in order, as the reference's does.
//  3. Output pass: + bias, rounded once to the output dtype (as store_float).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "awq/kernels.h"
#include "awq/thread_pool.h"
#include "kernels/avx512_params.h"
#include "kernels/cpuid.h"
#include "kernels/internal.h"

// g++ 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics
// (_mm512_undefined_ps and friends; GCC bug 105593, fixed in g++ 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define AWQ_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace awq::kernels {

// ---- our own CPU check ----
namespace {

std::atomic<bool> g_bf16_forced_off{false};

// CPUID: leaf 7.0 EBX bits 16 (avx512f), 17 (avx512dq), 30 (avx512bw), 31 (avx512vl); leaf 7.1
// EAX bit 5 (avx512_bf16). The OS must also save the opmask and ZMM state: CPUID.1 ECX bit 27
// (OSXSAVE), then XCR0 bits 1, 2, 5, 6, 7 (SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM) via XGETBV.
// Feature names as /proc/cpuinfo spells them. Empty when everything is there.
std::string missing_bf16_features() {
  const CpuidFacts f = read_cpuid();
  if (!f.leaf1) return "CPUID leaf 1";
  std::string miss;
  need_avx512_fdqbwvl(f, &miss);
  need_feature(f.a71 & (1u << 5), "avx512_bf16", &miss);
  if (!miss.empty()) return miss;
  if (!f.osxsave) return "OS support for XSAVE (OSXSAVE)";
  if ((f.xcr0 & 0xE6u) != 0xE6u) return "OS support for AVX-512 register state (XCR0 opmask/ZMM bits)";
  return {};
}

const std::string& bf16_missing_cached() {
  static const std::string s = missing_bf16_features();
  return s;
}

}  // namespace

bool path_available(Path p, std::string* why_not) {
  if (p != Path::kBF16) return true;
  std::string why;
  if (g_bf16_forced_off.load()) {
    why = "CPU lacks avx512_bf16 (simulated by force_path_unavailable)";
  } else if (!bf16_missing_cached().empty()) {
    why = "CPU lacks " + bf16_missing_cached();
  }
  if (why.empty()) return true;
  if (why_not) *why_not = why;
  return false;
}

void force_path_unavailable(Path p, bool unavailable) {
  if (p == Path::kBF16) g_bf16_forced_off.store(unavailable);
}

// ---- kernels ----
namespace {

constexpr int kNR = 4;  // tiles per panel: 64 output rows, kNR accumulators per activation row
constexpr int kMR = 6;  // activation rows per micro-kernel call: kMR·kNR = 24 zmm accumulators
constexpr int64_t kPairStride = kNR * kPackRows;  // u32 per column pair in a panel
// Software prefetch distance in a tile's code stream. The kernels read 2 or 4 tiles' codes in turn,
// interleaved streams that the hardware prefetchers track poorly: without it a cold 4096x4096 call
// took 0.75 ms instead of 0.59 at m = 1 and 2.0 ms instead of 1.5 at m = 8 (Zen 5, one thread).
constexpr int64_t kPrefetchBytes = 2048;

// Scale and offset of (tile t, group g) as group_params computes them, with each of the 16 rows
// duplicated into two adjacent lanes: lo = rows 0-7, hi = rows 8-15 (the pair layout below).
struct PairParams {
  __m512 s_lo, o_lo, s_hi, o_hi;
};

AWQ_BF16_TARGET inline PairParams LoadPairParams(const PackedLinear& w, int64_t t, int64_t g) {
  __m512 s, o;
  load_tile_params(w, t, g, s, o);
  const __m512i lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  return {_mm512_permutexvar_ps(lo, s), _mm512_permutexvar_ps(lo, o), _mm512_permutexvar_ps(hi, s),
          _mm512_permutexvar_ps(hi, o)};
}

// One 64-byte chunk (8 columns of 16 rows) -> 4 bf16 pair vectors: out[p] lane r =
// (w[r][2p] low half, w[r][2p+1] high half), w = bf16(fma(q, s, o)). Lane r of the chunk holds row
// r's 8 codes (byte b: column b low nibble, b + 4 high); dword permutes duplicate rows 0-7 (8-15)
// into adjacent lanes, the odd lanes are shifted by one byte so that shifts then pick a pair's two
// columns, and VCVTNE2PS2BF16 of the two halves yields the pairs in row order. ~40 instructions per
// chunk, ~14 cycles on Zen 5 (measured in L1): this, not VDPBF16PS, bounds m <= 4.
AWQ_BF16_TARGET inline void DequantChunk(const uint8_t* chunk, const PairParams& P, __m512bh out[4]) {
  const __m512i dup_lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i dup_hi = _mm512_add_epi32(dup_lo, _mm512_set1_epi32(8));
  const __m512i m4 = _mm512_set1_epi32(0xF);
  _mm_prefetch(reinterpret_cast<const char*>(chunk) + kPrefetchBytes, _MM_HINT_T0);
  const __m512i v = _mm512_load_si512(chunk);
  // Even lanes: the row's dword; odd lanes: shifted right by 8, so columns (0, 1) sit at bit 0,
  // (2, 3) at bit 16, (4, 5) at bit 4 and (6, 7) at bit 20 of both lanes.
  const __m512i odd8 = _mm512_set1_epi64(int64_t(8) << 32);
  const __m512i a = _mm512_srlv_epi32(_mm512_permutexvar_epi32(dup_lo, v), odd8);
  const __m512i b = _mm512_srlv_epi32(_mm512_permutexvar_epi32(dup_hi, v), odd8);
  auto pair = [&](__m512i xa, __m512i xb) AWQ_BF16_TARGET {
    const __m512 qa = _mm512_cvtepi32_ps(_mm512_and_si512(xa, m4)), qb = _mm512_cvtepi32_ps(_mm512_and_si512(xb, m4));
    return _mm512_cvtne2ps_pbh(_mm512_fmadd_ps(qb, P.s_hi, P.o_hi), _mm512_fmadd_ps(qa, P.s_lo, P.o_lo));
  };
  out[0] = pair(a, b);
  out[1] = pair(_mm512_srli_epi32(a, 16), _mm512_srli_epi32(b, 16));
  out[2] = pair(_mm512_srli_epi32(a, 4), _mm512_srli_epi32(b, 4));
  out[3] = pair(_mm512_srli_epi32(a, 20), _mm512_srli_epi32(b, 20));
}

inline const uint8_t* chunk_ptr(const PackedLinear& w, int64_t t, int64_t g, int64_t c) {
  return w.codes.data() + size_t(t) * w.tile_code_bytes() + size_t(g * (w.group / kChunkCols) + c) * kChunkBytes;
}

// Dequantizes tiles [t0, t0 + kNR) (tiles past the end: zeros), groups [g0, g0 + ng), to bf16
// pairs: panel[pair j][tile][row r], one VDPBF16PS operand per (pair, tile).
AWQ_BF16_TARGET void DequantPanel(const PackedLinear& w, int64_t t0, int64_t g0, int64_t ng, uint32_t* panel) {
  const int64_t chunks = w.group / kChunkCols, pairs = ng * w.group / 2;
  for (int tt = 0; tt < kNR; ++tt) {
    const int64_t t = t0 + tt;
    uint32_t* pt = panel + tt * kPackRows;
    if (t >= w.n_tiles) {
      for (int64_t j = 0; j < pairs; ++j) _mm512_store_si512(pt + j * kPairStride, _mm512_setzero_si512());
      continue;
    }
    for (int64_t gi = 0; gi < ng; ++gi) {
      const PairParams P = LoadPairParams(w, t, g0 + gi);
      uint32_t* dg = pt + gi * (w.group / 2) * kPairStride;
      for (int64_t c = 0; c < chunks; ++c) {
        __m512bh wv[4];
        DequantChunk(chunk_ptr(w, t, g0 + gi, c), P, wv);
        for (int p = 0; p < 4; ++p)
          _mm512_store_si512(dg + (c * 4 + p) * kPairStride, reinterpret_cast<const __m512i&>(wv[p]));
      }
    }
  }
}

// Small M (m <= kMR, one row block): y[i][0..16·TI) = Σ over all column pairs for MR rows and TI
// tiles from t0, each chunk dequantized in registers and used at once by every row (no panel).
// Tile by tile of the TI, chunk by chunk, so each accumulator gets 4 dependent VDPBF16PS per chunk
// while the other tile's dequantization overlaps them. Tiles past the end repeat the last tile
// (their sums land in padding columns).
template <int MR, int TI>
AWQ_BF16_TARGET void FusedBf16(const PackedLinear& w, int64_t t0, const uint32_t* __restrict xa, float* __restrict y,
                               int64_t ys) {
  __m512 acc[MR][TI];
  for (int i = 0; i < MR; ++i)
    for (int u = 0; u < TI; ++u) acc[i][u] = _mm512_setzero_ps();
  int64_t tiles[TI];
  for (int u = 0; u < TI; ++u) tiles[u] = std::min(t0 + u, w.n_tiles - 1);
  const int64_t chunks = w.group / kChunkCols;
  for (int64_t g = 0; g < w.n_groups; ++g) {
    PairParams P[TI];
    for (int u = 0; u < TI; ++u) P[u] = LoadPairParams(w, tiles[u], g);
    for (int64_t c = 0; c < chunks; ++c) {
      const uint32_t* xc = xa + (g * chunks + c) * 4 * kMR;
      for (int u = 0; u < TI; ++u) {
        __m512bh wv[4];
        DequantChunk(chunk_ptr(w, tiles[u], g, c), P[u], wv);
        for (int i = 0; i < MR; ++i)
          for (int p = 0; p < 4; ++p) {
            const __m512i xb = _mm512_set1_epi32(int(xc[p * kMR + i]));
            acc[i][u] = _mm512_dpbf16_ps(acc[i][u], wv[p], reinterpret_cast<const __m512bh&>(xb));
          }
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int u = 0; u < TI; ++u) _mm512_storeu_ps(y + i * ys + u * kPackRows, acc[i][u]);
}

constexpr int kTI = 2;  // tiles per fused call (4 was ~5 % slower at m = 1 and 2 on Zen 5)
using FusedFn = void (*)(const PackedLinear&, int64_t, const uint32_t*, float*, int64_t);
constexpr FusedFn kFused[kMR + 1] = {nullptr,           FusedBf16<1, kTI>, FusedBf16<2, kTI>, FusedBf16<3, kTI>,
                                     FusedBf16<4, kTI>, FusedBf16<5, kTI>, FusedBf16<6, kTI>};

// y[i][0..64) (+)= Σ_j dot(xa pair (i, j), panel pair j) for MR activation rows, over `pairs`
// column pairs. xa: the block's first pair, stride kMR per pair; y: row stride ys; first: start
// from zero instead of the stored partial sums.
template <int MR>
AWQ_BF16_TARGET void MicroBf16(const uint32_t* __restrict panel, const uint32_t* __restrict xa, int64_t pairs,
                               float* __restrict y, int64_t ys, bool first) {
  __m512 acc[MR][kNR];
  for (int i = 0; i < MR; ++i)
    for (int t = 0; t < kNR; ++t) acc[i][t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + i * ys + t * kPackRows);
  for (int64_t j = 0; j < pairs; ++j) {
    const uint32_t* wp = panel + j * kPairStride;
    __m512bh wv[kNR];
    for (int t = 0; t < kNR; ++t) {
      const __m512i v = _mm512_load_si512(wp + t * kPackRows);
      wv[t] = reinterpret_cast<const __m512bh&>(v);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512i xb = _mm512_set1_epi32(int(xa[j * kMR + i]));
      for (int t = 0; t < kNR; ++t) acc[i][t] = _mm512_dpbf16_ps(acc[i][t], wv[t], reinterpret_cast<const __m512bh&>(xb));
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int t = 0; t < kNR; ++t) _mm512_storeu_ps(y + i * ys + t * kPackRows, acc[i][t]);
}

using MicroFn = void (*)(const uint32_t*, const uint32_t*, int64_t, float*, int64_t, bool);
constexpr MicroFn kMicro[kMR + 1] = {nullptr,         MicroBf16<1>, MicroBf16<2>, MicroBf16<3>,
                                     MicroBf16<4>,    MicroBf16<5>, MicroBf16<6>};

// Rows [0, rows) of packed f32 activations xf ([rows][kp]) -> one row block of xa ([kp/2][kMR]
// pairs), rounded by VCVTNEPS2BF16 (= f32_to_bf16_ftz). Lanes of rows >= rows are zero.
AWQ_BF16_TARGET void ActivationBlock(const float* xf, int64_t rows, int64_t kp, uint32_t* xa) {
  alignas(32) uint32_t tmp[8];
  for (int64_t i = 0; i < kMR; ++i) {
    for (int64_t j = 0; j < kp; j += 16) {
      const int64_t n = std::min<int64_t>(16, kp - j);  // kp is a multiple of 8
      if (i < rows) {
        const __m512 v = _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), xf + i * kp + j);
        const __m256bh h = _mm512_cvtneps_pbh(v);
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), reinterpret_cast<const __m256i&>(h));
      } else {
        std::memset(tmp, 0, sizeof tmp);
      }
      for (int64_t q = 0; q < n / 2; ++q) xa[(j / 2 + q) * kMR + i] = tmp[q];
    }
  }
}

// Columns [c0, c1) of rows [0, m) of the partial sums (row stride np) + bias -> y ([m][n], F32 or
// BF16 rounded as f32_to_bf16: nearest even, NaN quieted, denormals kept).
AWQ_BF16_TARGET void OutputPass(const float* ys, int64_t np, int64_t m, int64_t c0, int64_t c1, const float* bias,
                                void* y, DType yt, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t c = c0; c < c1; c += 16) {
      const __mmask16 k = __mmask16((1u << std::min<int64_t>(16, c1 - c)) - 1);
      __m512 v = _mm512_maskz_loadu_ps(k, ys + i * np + c);
      if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + c));
      if (yt == DType::F32) {
        _mm512_mask_storeu_ps(static_cast<float*>(y) + i * n + c, k, v);
        continue;
      }
      const __m512i u = _mm512_castps_si512(v);
      const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
      const __m512i rne = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
      const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                                    _mm512_set1_epi32(0x7F800000));
      const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
      const __m256i h = _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rne, quiet));
      _mm256_mask_storeu_epi16(static_cast<uint16_t*>(y) + i * n + c, k, h);
    }
  }
}

// Per-thread panel buffer (64-byte aligned), grown on demand.
uint32_t* panel_buffer(size_t u32s) {
  thread_local AlignedBytes buf;
  if (buf.size() < u32s * 4) buf = AlignedBytes(u32s * 4);
  return reinterpret_cast<uint32_t*>(buf.data());
}

// Per-calling-thread activation pairs.
std::vector<uint32_t>& activation_pairs() {
  thread_local std::vector<uint32_t> v;
  return v;
}

}  // namespace

void gemm_bf16(const PackedLinear& w, const void* x, DType xt, int64_t m, void* y, DType yt, ThreadPool& pool) {
  KernelScratch& S = kernel_scratch();
  const int64_t kp = w.k_pad, kpairs = kp / 2, G = w.group;
  const int64_t panels = (w.n_tiles + kNR - 1) / kNR, np = panels * kPairStride;
  const int64_t mblocks = (m + kMR - 1) / kMR;
  const int threads = pool.size();
  if (S.xf.size() < size_t(m * kp)) S.xf.resize(size_t(m * kp));
  if (S.y.size() < size_t(mblocks * kMR * np)) S.y.resize(size_t(mblocks * kMR * np));
  std::vector<uint32_t>& xa = activation_pairs();
  if (xa.size() < size_t(mblocks * kMR * kpairs)) xa.resize(size_t(mblocks * kMR * kpairs));

  // 1. Activation pass, by row blocks.
  const int64_t row_tasks = std::min<int64_t>(mblocks, 4 * threads);
  pool.run(row_tasks, [&](int64_t task, int) {
    for (int64_t b = mblocks * task / row_tasks; b < mblocks * (task + 1) / row_tasks; ++b) {
      const int64_t r0 = b * kMR, r1 = std::min(m, r0 + kMR);
      float* xf = S.xf.data() + size_t(r0 * kp);
      pack_activations_f32(w, x, xt, r0, r1, xf);
      ActivationBlock(xf, r1 - r0, kp, xa.data() + size_t(b * kMR * kpairs));
    }
  });

  // 2. m <= kMR: the fused kernel, no panel. Otherwise K blocks of whole groups: the block's
  // activations (m x cols bf16) <= 384 KiB and the panel (64 rows x cols bf16) <= 128 KiB, both in
  // L2 (1 MiB+ on AVX-512 parts). 256 to 1024 columns measured within noise at m = 64 and 512.
  const int64_t cols = std::clamp<int64_t>((int64_t(384) << 10) / (2 * m), 256, 1024);
  const bool x_fits_l2 = m * kp * 2 <= (int64_t(512) << 10);
  const int64_t kb = std::max<int64_t>(1, cols / G);
  const int64_t n_tasks = std::min<int64_t>(panels, 4 * threads);
  float* ys = S.y.data();
  pool.run(n_tasks, [&](int64_t task, int) {
    const int64_t p0 = panels * task / n_tasks, p1 = panels * (task + 1) / n_tasks;
    auto block = [&](int64_t pn, int64_t g0) {
      uint32_t* panel = panel_buffer(size_t(kb * G / 2 * kPairStride));
      const int64_t ng = std::min(kb, w.n_groups - g0), pairs = ng * G / 2;
      DequantPanel(w, pn * kNR, g0, ng, panel);
      for (int64_t b = 0; b < mblocks; ++b) {
        const int64_t rows = std::min<int64_t>(kMR, m - b * kMR);
        kMicro[rows](panel, xa.data() + size_t(b * kMR * kpairs + g0 * G / 2 * kMR), pairs,
                     ys + size_t(b * kMR * np + pn * kPairStride), np, g0 == 0);
      }
    };
    if (m <= kMR) {
      for (int64_t pn = p0; pn < p1; ++pn)
        for (int tp = 0; tp < kNR; tp += kTI)
          kFused[m](w, pn * kNR + tp, xa.data(), ys + size_t(pn * kPairStride + tp * kPackRows), np);
    } else if (x_fits_l2) {
      // Panel by panel: the codes are read as kNR sequential streams (one per tile).
      for (int64_t pn = p0; pn < p1; ++pn)
        for (int64_t g0 = 0; g0 < w.n_groups; g0 += kb) block(pn, g0);
    } else {
      // K block by K block, so the block's activations are reused across panels from L2.
      for (int64_t g0 = 0; g0 < w.n_groups; g0 += kb)
        for (int64_t pn = p0; pn < p1; ++pn) block(pn, g0);
    }
    // 3. Output pass for this task's columns.
    const int64_t c0 = p0 * kPairStride, c1 = std::min(w.n, p1 * kPairStride);
    if (c0 < c1) OutputPass(ys, np, m, c0, c1, w.bias.empty() ? nullptr : w.bias.data(), y, yt, w.n);
  });
}

}  // namespace awq::kernels
