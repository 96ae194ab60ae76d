// SIMD dequantization of a PackedLinear to F32/BF16/F16 rows, compiled once per Highway target
// (hwy_config.h) and dispatched once per call. Every output equals dequantize_ref (kernels_ref.cc)
// bit for bit on FMA targets: the same fma(q, s, o) in f32, rounded once.
#include <algorithm>
#include <cstring>

#include "awq/kernels.h"
#include "awq/thread_pool.h"
#include "kernels/internal.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/dequant_kernels.cc"
#include "kernels/hwy_config.h"
// clang-format off
#include <hwy/foreach_target.h>
#include <hwy/highway.h>
// clang-format on
#include "kernels/simd_common-inl.h"

// The AVX2 code below also serves the AVX-512 targets (it measured faster there than 512-bit
// variants, see BENCHMARKS.md).
#define AWQ_X86_AVX2_PLUS (HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)

HWY_BEFORE_NAMESPACE();
namespace awq::kernels {
namespace HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX3_DL
// ---- AVX-512 + VBMI dequant: transpose 16 chunks in registers, then byte-permute into columns ----
// A tile's codes are one contiguous run of k_pad/8 chunks (groups follow each other). 16 chunks
// (1 KiB) are loaded with plain vector loads and transposed as a 16×16 matrix of dwords, so that
// vector r holds row r's 128 codes: dword c = chunk c's 8 codes (byte b: column 8c+b in the low
// nibble, 8c+b+4 in the high one). One vpermt2b over (v, v>>4) moves the code of each output column
// into the low byte of its output element; the element then indexes a table of the 16 values
// fma(q, s, o), rounded once, with vpermw (16-bit outputs, bits 4:0, so the table is stored twice)
// or vpermps (f32 outputs, bits 3:0). Each code is read once and each output line written once,
// with streaming stores where the row is 64-byte aligned.

// In: a[i] lane j. Out: a[j] lane i.
HWY_INLINE void Transpose16x16(__m512i a[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    a[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    a[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    a[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    a[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(a[i], a[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(a[i], a[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(a[i + 8], a[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(a[i + 8], a[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    a[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    a[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    a[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    a[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

// vpermt2b indices for E-byte outputs: vector q of a 128-column block holds columns
// [q·V, (q+1)·V) (V = 64/E); every byte of element i selects column j = q·V + i, i.e. byte
// 4·(j/8) + (j%8 & 3) of v (low nibble, j%8 < 4) or of v>>4 (index + 64).
template <size_t E>
struct ColumnIndex {
  static constexpr size_t kV = 64 / E, kSub = 128 / kV;
  alignas(64) uint8_t idx[kSub][64];
  ColumnIndex() {
    for (size_t q = 0; q < kSub; ++q)
      for (size_t i = 0; i < kV; ++i) {
        const size_t j = q * kV + i, b = j % 8;
        for (size_t e = 0; e < E; ++e) idx[q][E * i + e] = uint8_t(4 * (j / 8) + (b & 3) + (b < 4 ? 0 : 64));
      }
  }
};

// The 16 dequantized values of one (row, group) as a lookup table for vpermw (16-bit outputs,
// the 16 words twice) or vpermps (f32).
template <size_t E>
HWY_INLINE __m512i ValueTable(float s, float o, DType out) {
  const __m512 v = _mm512_fmadd_ps(_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                   _mm512_set1_ps(s), _mm512_set1_ps(o));
  if constexpr (E == 4) {
    (void)out;
    return _mm512_castps_si512(v);
  } else {
    __m256i h;
    if (out == DType::BF16) {  // round to nearest even, as f32_to_bf16 does for finite values
      const __m512i u = _mm512_castps_si512(v);
      const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
      h = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16));
    } else {
      h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    return _mm512_inserti64x4(_mm512_castsi256_si512(h), h, 1);
  }
}

// Stores the first `cols` (≤ V) elements of vector w at p; streaming when whole and aligned.
template <size_t E>
HWY_INLINE void StoreElems(uint8_t* p, __m512i w, int64_t cols, bool aligned) {
  constexpr int64_t kV = 64 / E;
  if (cols >= kV) {
    if (aligned)
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p), w);
    else
      _mm512_storeu_si512(p, w);
  } else if constexpr (E == 2) {
    _mm512_mask_storeu_epi16(p, __mmask32((uint64_t(1) << cols) - 1), w);
  } else {
    _mm512_mask_storeu_epi32(p, __mmask16((1u << cols) - 1), w);
  }
}

// True when the fast path applies: no pre_quant_scale, and every run of 32 columns (one output
// vector) inside one group, in natural column order.
bool TransposeDequantFits(const PackedLinear& w) {
  if (!w.pre_quant_scale.empty()) return false;
  return w.n_groups == 1 || (w.group % 32 == 0 && w.source_group == w.group);
}

// Rows [r0, r1) ∩ tile t to E-byte elements at dst (row r0 first, row stride k).
template <bool kWide, size_t E>
void DequantTileTransposed(const PackedLinear& w, DType out, int64_t t, int64_t r0, int64_t r1, uint8_t* dst) {
  using CI = ColumnIndex<E>;
  static const CI ci;
  constexpr int64_t kV = int64_t(CI::kV);
  const int64_t ra = std::max(r0, t * kPackRows) - t * kPackRows, rb = std::min(r1, (t + 1) * kPackRows) - t * kPackRows;
  const int64_t total = w.k_pad / kChunkCols;
  const uint8_t* ct = w.codes.data() + size_t(t) * w.tile_code_bytes();
  const int64_t gcols = w.n_groups == 1 ? w.k_pad : w.group;
  __m512i idx[CI::kSub];
  for (size_t q = 0; q < CI::kSub; ++q) idx[q] = _mm512_load_si512(ci.idx[q]);
  for (int64_t cb = 0; cb < total; cb += 16) {
    const int64_t nc = std::min<int64_t>(16, total - cb), col_block = cb * kChunkCols;
    __m512i a[16];
    for (int64_t c = 0; c < 16; ++c)
      a[c] = c < nc ? _mm512_load_si512(ct + size_t(cb + c) * kChunkBytes) : _mm512_setzero_si512();
    Transpose16x16(a);
    // Scale/offset of the (at most 4) groups this block touches.
    const int64_t g_first = col_block / gcols;
    float so[4][2 * kPackRows];
    for (int64_t g = g_first; g < w.n_groups && g * gcols < col_block + 128 && g - g_first < 4; ++g) {
      VF sv, ov;
      LoadParams<kWide>(w.params.data() + size_t(t * w.n_groups + g) * w.param_bytes(), &sv, &ov);
      _mm512_storeu_ps(so[g - g_first], sv.raw);
      _mm512_storeu_ps(so[g - g_first] + kPackRows, ov.raw);
    }
    for (int64_t r = ra; r < rb; ++r) {
      const __m512i v = a[r], vs = _mm512_srli_epi16(v, 4);
      uint8_t* drow = dst + (size_t((t * kPackRows + r - r0) * w.k) + size_t(col_block)) * E;
      const bool aligned = (reinterpret_cast<uintptr_t>(drow) & 63) == 0;
      int64_t g_cur = -1;
      __m512i table = _mm512_setzero_si512();
      for (size_t q = 0; q < CI::kSub; ++q) {
        const int64_t col = col_block + int64_t(q) * kV;
        if (col >= w.k) break;
        const int64_t gi = col / gcols - g_first;
        if (gi != g_cur) {
          table = ValueTable<E>(so[gi][r], so[gi][kPackRows + r], out);
          g_cur = gi;
        }
        const __m512i codes = _mm512_permutex2var_epi8(v, idx[q], vs);
        const __m512i vals = E == 2 ? _mm512_permutexvar_epi16(codes, table)
                                    : _mm512_castps_si512(_mm512_permutexvar_ps(codes, _mm512_castsi512_ps(table)));
        StoreElems<E>(drow + size_t(q) * 64, vals, w.k - col, aligned);
      }
    }
  }
}
#endif

#if AWQ_X86_AVX2_PLUS
// The 16 values fma(q, s, o) of one (row, group), rounded once to BF16/F16 (t16, q order), and
// split into a low-byte and a high-byte pshufb table (tlo, thi: the 16 bytes in both lanes).
HWY_INLINE void Avx2Tables(float s, float o, DType out, __m256i* tlo, __m256i* thi, __m256i* t16) {
  const __m256 s8 = _mm256_set1_ps(s), o8 = _mm256_set1_ps(o);
  const __m256 va = _mm256_fmadd_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), s8, o8);
  const __m256 vb = _mm256_fmadd_ps(_mm256_setr_ps(8, 9, 10, 11, 12, 13, 14, 15), s8, o8);
  if (out == DType::BF16) {
    auto rne = [](__m256 v) {
      const __m256i u = _mm256_castps_si256(v);
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
      return _mm256_srai_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), 16);
    };
    *t16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(rne(va), rne(vb)), 0xD8);
  } else {
    *t16 = _mm256_set_m128i(_mm256_cvtps_ph(vb, _MM_FROUND_TO_NEAREST_INT), _mm256_cvtps_ph(va, _MM_FROUND_TO_NEAREST_INT));
  }
  // Per lane: [low bytes of 8 values | high bytes of 8 values]; then gather lows, highs.
  const __m256i split = _mm256_shuffle_epi8(
      *t16, _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5,
                             7, 9, 11, 13, 15));
  const __m256i x = _mm256_permute4x64_epi64(split, 0xD8);  // [lo q0..15 | hi q0..15]
  *tlo = _mm256_permute2x128_si256(x, x, 0x00);
  *thi = _mm256_permute2x128_si256(x, x, 0x11);
}

// AVX2 dequant of one (row, group) of row-major codes to 16-bit floats through the pshufb tables
// (32 codes per instruction pair). Used where the transposed path below does not apply.
HWY_INLINE void DequantRowAvx2(const uint8_t* q8, int64_t cols, float s, float o, DType out, uint16_t* dst) {
  __m256i tlo, thi, t16;
  Avx2Tables(s, o, out, &tlo, &thi, &t16);
  int64_t j = 0;
  for (; j + 32 <= cols; j += 32) {
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + j));
    const __m256i l = _mm256_shuffle_epi8(tlo, c), h = _mm256_shuffle_epi8(thi, c);
    const __m256i w0 = _mm256_unpacklo_epi8(l, h), w1 = _mm256_unpackhi_epi8(l, h);  // [0..7|16..23], [8..15|24..31]
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), _mm256_permute2x128_si256(w0, w1, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j + 16), _mm256_permute2x128_si256(w0, w1, 0x31));
  }
  if (j < cols) {
    alignas(32) uint16_t table[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(table), t16);
    for (; j < cols; ++j) dst[j] = table[q8[j]];
  }
}
#endif

#if AWQ_X86_AVX2_PLUS
// ---- Transposed dequant on 256-bit vectors: the main path of AVX2, AVX3 and AVX3_DL ----
// 8 chunks (512 B) of a tile are loaded, in address order, as 8 vectors per half-tile (rows 0-7:
// bytes 0-31 of each chunk, rows 8-15: bytes 32-63) and transposed as 8×8 dwords, so vector r holds
// row r's 64 codes. Nibbles are split and interleaved into column order; 16-bit outputs map codes
// through the pshufb tables (built once per group), f32 outputs compute fma(q, s, o) directly;
// whole 64-byte lines are written with streaming stores. Each 64-column block must lie in one
// group. Cold, this runs at the write bandwidth; 512-bit variants measured no faster there.

// In: a[i] lane j. Out: a[j] lane i.
HWY_INLINE void Transpose8x8(__m256i a[8]) {
  __m256i t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    a[4 * i + 0] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    a[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    a[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    a[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm256_permute2x128_si256(a[i], a[i + 4], 0x20);
    t[i + 4] = _mm256_permute2x128_si256(a[i], a[i + 4], 0x31);
  }
  for (int i = 0; i < 8; ++i) a[i] = t[i];
}

bool Avx2TransposeFits(const PackedLinear& w) {
  if (!w.pre_quant_scale.empty()) return false;
  return w.n_groups == 1 || (w.group % 64 == 0 && w.source_group == w.group);
}

// Stores 16 elements of E bytes (two vectors for f32) at p, the first `cols` of them.
template <size_t E>
HWY_INLINE void Store16(uint8_t* p, const __m256i* v, int64_t cols, bool aligned) {
  constexpr int kVecs = E == 2 ? 1 : 2;
  if (cols >= 16) {
    for (int i = 0; i < kVecs; ++i) {
      if (aligned)
        _mm256_stream_si256(reinterpret_cast<__m256i*>(p) + i, v[i]);
      else
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p) + i, v[i]);
    }
  } else if (cols > 0) {
    alignas(32) uint8_t tmp[64];
    for (int i = 0; i < kVecs; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(tmp) + i, v[i]);
    std::memcpy(p, tmp, size_t(cols) * E);
  }
}

// One row's 64 codes to 64 columns at drow (the first `cols` of them). v holds at dword 4L + b the
// codes of chunk 2b + L (the load order of DequantTileAvx2), so that after splitting nibbles and
// interleaving them by dwords, lane L of x0 holds chunks (L, 2+L) and of x1 chunks (4+L, 6+L) in
// column order, and the pshufb/unpack results need no cross-lane fix-up: result b = chunks
// (2b, 2b+1) = columns [16b, 16b+16). tlo/thi: the row's pshufb tables (E == 2); s/o: its scale and
// offset (E == 4).
template <size_t E>
HWY_INLINE void DequantRow64Avx2(__m256i v, __m256i tlo, __m256i thi, float s, float o, int64_t cols, bool aligned,
                                 uint8_t* drow) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  const __m256i x[2] = {_mm256_unpacklo_epi32(lo, hi), _mm256_unpackhi_epi32(lo, hi)};
  if constexpr (E == 2) {
    (void)s, (void)o;
    __m256i res[4];
    for (int h = 0; h < 2; ++h) {
      const __m256i l = _mm256_shuffle_epi8(tlo, x[h]), hb = _mm256_shuffle_epi8(thi, x[h]);
      res[2 * h] = _mm256_unpacklo_epi8(l, hb);
      res[2 * h + 1] = _mm256_unpackhi_epi8(l, hb);
    }
    for (int b = 0; b < 4 && 16 * b < cols; ++b) Store16<2>(drow + 32 * b, &res[b], cols - 16 * b, aligned);
  } else {
    (void)tlo, (void)thi;
    const __m256 s8 = _mm256_set1_ps(s), o8 = _mm256_set1_ps(o);
    alignas(32) uint8_t codes[64];  // chunk c's 8 codes at 32·(c/4) + 16·(c%2) + 8·((c/2)%2)
    _mm256_store_si256(reinterpret_cast<__m256i*>(codes), x[0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(codes) + 1, x[1]);
    for (int b = 0; b < 4 && 16 * b < cols; ++b) {
      __m256i f[2];
      for (int i = 0; i < 2; ++i) {
        const int c = 2 * b + i;
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + 32 * (c / 4) + 16 * (c % 2) + 8 * ((c / 2) % 2)));
        f[i] = _mm256_castps_si256(_mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), s8, o8));
      }
      Store16<4>(drow + 64 * b, f, cols - 16 * b, aligned);
    }
  }
}

// Rows [r0, r1) ∩ tile t to E-byte elements at dst (row r0 first, row stride k).
template <bool kWide, size_t E>
void DequantTileAvx2(const PackedLinear& w, DType out, int64_t t, int64_t r0, int64_t r1, uint8_t* dst) {
  const int64_t ra = std::max(r0, t * kPackRows) - t * kPackRows, rb = std::min(r1, (t + 1) * kPackRows) - t * kPackRows;
  const int64_t total = w.k_pad / kChunkCols;
  const uint8_t* ct = w.codes.data() + size_t(t) * w.tile_code_bytes();
  const int64_t gcols = w.n_groups == 1 ? w.k_pad : w.group;
  float s[kPackRows], o[kPackRows];
  __m256i tlo[kPackRows], thi[kPackRows];
  int64_t g_loaded = -1;
  for (int64_t cb = 0; cb < total; cb += 8) {
    const int64_t nc = std::min<int64_t>(8, total - cb), col_block = cb * kChunkCols;
    const int64_t g = col_block / gcols;
    if (g != g_loaded) {
      VF sv[kP], ov[kP];
      LoadParams<kWide>(w.params.data() + size_t(t * w.n_groups + g) * w.param_bytes(), sv, ov);
      for (size_t p = 0; p < kP; ++p) {
        hn::StoreU(sv[p], DF(), s + p * kL);
        hn::StoreU(ov[p], DF(), o + p * kL);
      }
      if constexpr (E == 2) {
        for (int64_t r = ra; r < rb; ++r) {
          __m256i t16;
          Avx2Tables(s[r], o[r], out, &tlo[r], &thi[r], &t16);
        }
      }
      g_loaded = g;
    }
    for (int half = 0; half < 2; ++half) {
      if (half * 8 >= rb || half * 8 + 8 <= ra) continue;
      __m256i a[8];
      for (int64_t L = 0; L < 2; ++L)
        for (int64_t b = 0; b < 4; ++b) {
          const int64_t c = 2 * b + L;  // see DequantRow64Avx2 for this order
          a[4 * L + b] = c < nc ? _mm256_load_si256(reinterpret_cast<const __m256i*>(ct + size_t(cb + c) * kChunkBytes) + half)
                                : _mm256_setzero_si256();
        }
      Transpose8x8(a);
      for (int64_t i = 0; i < 8; ++i) {
        const int64_t r = half * 8 + i;
        if (r < ra || r >= rb) continue;
        uint8_t* drow = dst + (size_t((t * kPackRows + r - r0) * w.k) + size_t(col_block)) * E;
        const bool aligned = (reinterpret_cast<uintptr_t>(drow) & 31) == 0;
        DequantRow64Avx2<E>(a[i], tlo[r], thi[r], s[r], o[r], w.k - col_block, aligned, drow);
      }
    }
  }
}
#endif

void DequantT(const PackedLinear& w, DType out, int64_t r0, int64_t r1, void* dst, ThreadPool& pool) {
  if (r0 >= r1) return;
  const int64_t t_begin = r0 / kPackRows, t_end = (r1 + kPackRows - 1) / kPackRows;
  const int64_t G = w.group, sg = w.source_group, chunks = G / kChunkCols;
  const bool pqs = !w.pre_quant_scale.empty();
#if AWQ_X86_AVX2_PLUS
  if (Avx2TransposeFits(w)) {
    pool.run(t_end - t_begin, [&](int64_t task, int) HWY_ATTR {
      uint8_t* d = static_cast<uint8_t*>(dst);
      const int64_t t = t_begin + task;
      if (out == DType::F32)
        w.wide ? DequantTileAvx2<true, 4>(w, out, t, r0, r1, d) : DequantTileAvx2<false, 4>(w, out, t, r0, r1, d);
      else
        w.wide ? DequantTileAvx2<true, 2>(w, out, t, r0, r1, d) : DequantTileAvx2<false, 2>(w, out, t, r0, r1, d);
      _mm_sfence();  // order this thread's streaming stores before the pool reports completion
    });
    return;
  }
#endif
#if HWY_TARGET == HWY_AVX3_DL
  if (TransposeDequantFits(w)) {  // groups of 32 or 96 columns, which the AVX2 scheme cannot take
    pool.run(t_end - t_begin, [&](int64_t task, int) HWY_ATTR {
      uint8_t* d = static_cast<uint8_t*>(dst);
      const int64_t t = t_begin + task;
      if (out == DType::F32)
        w.wide ? DequantTileTransposed<true, 4>(w, out, t, r0, r1, d) : DequantTileTransposed<false, 4>(w, out, t, r0, r1, d);
      else
        w.wide ? DequantTileTransposed<true, 2>(w, out, t, r0, r1, d) : DequantTileTransposed<false, 2>(w, out, t, r0, r1, d);
      _mm_sfence();  // order this thread's streaming stores before the pool reports completion
    });
    return;
  }
#endif
  pool.run(t_end - t_begin, [&](int64_t task, int) HWY_ATTR {
    const DF df;
    const DI di;
    const hn::Rebind<uint8_t, DI> d8;
    const int64_t t = t_begin + task;
    // Row-major codes of the tile for one group; +kL bytes of slack for the vector loads.
    KernelScratch& S = kernel_scratch();
    if (S.bytes.size() < size_t(kPackRows * G + 64)) S.bytes.resize(size_t(kPackRows * G + 64));
    uint8_t* rm = S.bytes.data();
    float s[kPackRows], o[kPackRows];
    for (int64_t g = 0; g < w.n_groups; ++g) {
      group_params(w, t, g, s, o);
      const uint8_t* cg = w.codes.data() + size_t(t) * w.tile_code_bytes() + size_t(g * chunks) * kChunkBytes;
      for (int64_t c = 0; c < chunks; ++c)
        for (int64_t r = 0; r < kPackRows; ++r) {
          uint32_t lane;
          std::memcpy(&lane, cg + c * kChunkBytes + 4 * r, 4);
          const uint64_t v = uint64_t(lane & 0x0F0F0F0Fu) | (uint64_t((lane >> 4) & 0x0F0F0F0Fu) << 32);
          std::memcpy(rm + r * G + c * kChunkCols, &v, 8);
        }
      const int64_t col0 = g * sg, cols = std::min(sg, w.k - col0);
      for (int64_t r = 0; r < kPackRows; ++r) {
        const int64_t row = t * kPackRows + r;
        if (row < r0 || row >= r1) continue;
        const size_t base = size_t((row - r0) * w.k + col0);
        const VF sv = hn::Set(df, s[r]), ov = hn::Set(df, o[r]);
        const uint8_t* q8 = rm + r * G;
        int64_t j = 0;
#if AWQ_X86_AVX2_PLUS
        if (out != DType::F32 && !pqs) {
          DequantRowAvx2(q8, cols, s[r], o[r], out, static_cast<uint16_t*>(dst) + base);
          continue;
        }
#endif
        for (; j + int64_t(kL) <= cols; j += kL) {
          VF v = hn::MulAdd(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, q8 + j))), sv, ov);
          if (pqs) v = hn::Mul(v, hn::LoadU(df, w.pre_quant_scale.data() + col0 + j));
          StoreOut(v, out, dst, base + size_t(j));
        }
        for (; j < cols; ++j) {
          float v = std::fma(float(q8[j]), s[r], o[r]);
          if (pqs) v *= w.pre_quant_scale[size_t(col0 + j)];
          store_float(static_cast<uint8_t*>(dst), out, base + size_t(j), v);
        }
      }
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace awq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace awq::kernels {

HWY_EXPORT(DequantT);

void dequantize_simd(const PackedLinear& w, DType out, int64_t r0, int64_t r1, void* dst, ThreadPool& pool) {
  HWY_DYNAMIC_DISPATCH(DequantT)(w, out, r0, r1, dst, pool);
}

}  // namespace awq::kernels
#endif  // HWY_ONCE
