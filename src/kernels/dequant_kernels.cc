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

HWY_BEFORE_NAMESPACE();
namespace awq::kernels {
namespace HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// AVX-512 dequant of one (row, group) to 16-bit floats: the 16 possible values fma(q, s, o),
// rounded once, form a 16-word table; codes are gathered from the chunks (one dword per chunk),
// split into nibbles in column order and mapped through the table with vpermw (16 per op).
// Writes the group's first `cols` columns at out.
// 32 codes (bytes) -> 32 table words, stored at out[pos..) (only the columns below cols).
HWY_INLINE void Store32(__m256i codes, __m512i table, int64_t pos, int64_t cols, uint16_t* out) {
  if (pos >= cols) return;
  const __m512i w = _mm512_permutexvar_epi16(_mm512_cvtepu8_epi16(codes), table);
  uint16_t* dst = out + pos;
  if (pos + 32 <= cols) {
    // Streaming stores where aligned: the output is written once and is usually larger than the
    // cache, so skipping the read-for-ownership saves traffic.
    if ((reinterpret_cast<uintptr_t>(dst) & 63) == 0)
      _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), w);
    else
      _mm512_storeu_si512(dst, w);
  } else {
    _mm512_mask_storeu_epi16(dst, __mmask32((uint64_t(1) << (cols - pos)) - 1), w);
  }
}

HWY_INLINE void DequantRowGroup16(const uint8_t* cg, int64_t r, int64_t chunks, int64_t cols, __m256i table256,
                                  uint16_t* out) {
  const __m512i table = _mm512_zextsi256_si512(table256);
  const __m512i offs = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 6);
  const __m512i m4 = _mm512_set1_epi32(0x0F0F0F0F);
  const __m512i i0 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), i1 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  for (int64_t c0 = 0; c0 < chunks && c0 * kChunkCols < cols; c0 += 16) {
    const int64_t n = std::min<int64_t>(16, chunks - c0);
    const __mmask16 mk = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
    // One dword per chunk: the 8 codes of row r (byte b: column b low nibble, b+4 high nibble).
    const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mk, offs, cg + c0 * kChunkBytes + 4 * r, 1);
    const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), m4);
    // Block b of a = chunks 4b, 4b+1 in column order; of bv = chunks 4b+2, 4b+3. Reorder the
    // blocks so x0 = chunks 0..7 and x1 = chunks 8..15, i.e. codes in column order.
    const __m512i a = _mm512_unpacklo_epi32(lo, hi), bv = _mm512_unpackhi_epi32(lo, hi);
    const __m512i x0 = _mm512_permutex2var_epi64(a, i0, bv), x1 = _mm512_permutex2var_epi64(a, i1, bv);
    const int64_t p = c0 * kChunkCols;
    Store32(_mm512_castsi512_si256(x0), table, p, cols, out);
    Store32(_mm512_extracti64x4_epi64(x0, 1), table, p + 32, cols, out);
    Store32(_mm512_castsi512_si256(x1), table, p + 64, cols, out);
    Store32(_mm512_extracti64x4_epi64(x1, 1), table, p + 96, cols, out);
  }
}

// Dequantizes tile t, rows [r0, r1) to BF16/F16 (no pre_quant_scale). Row by row, so each output
// row is written sequentially; the tile's codes (16·K/2 bytes) stay in L1/L2 meanwhile.
template <bool kWide>
void DequantTile16(const PackedLinear& w, DType out, int64_t t, int64_t r0, int64_t r1, uint16_t* dst) {
  const DF df;
  const hn::Rebind<int16_t, DF> d16;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const VF iota = hn::Iota(df, 0.f);
  const int64_t chunks = w.group / kChunkCols;
  KernelScratch& S = kernel_scratch();
  if (S.xf.size() < size_t(2 * kPackRows * w.n_groups)) S.xf.resize(size_t(2 * kPackRows * w.n_groups));
  float* so = S.xf.data();  // [g][s 16 | o 16]
  for (int64_t g = 0; g < w.n_groups; ++g) {
    VF sv, ov;
    LoadParams<kWide>(w.params.data() + size_t(t * w.n_groups + g) * w.param_bytes(), &sv, &ov);
    hn::StoreU(sv, df, so + 32 * g);
    hn::StoreU(ov, df, so + 32 * g + 16);
  }
  const uint8_t* ct = w.codes.data() + size_t(t) * w.tile_code_bytes();
  for (int64_t r = 0; r < kPackRows; ++r) {
    const int64_t row = t * kPackRows + r;
    if (row < r0 || row >= r1) continue;
    for (int64_t g = 0; g < w.n_groups; ++g) {
      const int64_t col0 = g * w.source_group, cols = std::min(w.source_group, w.k - col0);
      const VF vals = hn::MulAdd(iota, hn::Set(df, so[32 * g + r]), hn::Set(df, so[32 * g + 16 + r]));
      __m256i table;
      if (out == DType::BF16) {
        const DU du;
        const DI di;
        const VU u = hn::BitCast(du, vals);
        const VU rr = hn::Add(u, hn::Add(hn::Set(du, 0x7FFFu), hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u))));
        table = hn::DemoteTo(d16, hn::ShiftRight<16>(hn::BitCast(di, rr))).raw;
      } else {
        table = hn::DemoteTo(dh, vals).raw;
      }
      DequantRowGroup16(ct + size_t(g * chunks) * kChunkBytes, r, chunks, cols, table,
                        dst + size_t((row - r0) * w.k + col0));
    }
  }
}
#endif

#if HWY_TARGET == HWY_AVX2
// AVX2 dequant of one (row, group) to 16-bit floats: the 16 possible values fma(q, s, o), rounded
// once, are split into a low-byte and a high-byte table; pshufb maps 32 codes per instruction pair.
HWY_INLINE void DequantRowAvx2(const uint8_t* q8, int64_t cols, float s, float o, DType out, uint16_t* dst) {
  const DF df;
  const __m256 s8 = _mm256_set1_ps(s), o8 = _mm256_set1_ps(o);
  const __m256 va = hn::MulAdd(VF{_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)}, VF{s8}, VF{o8}).raw;
  const __m256 vb = hn::MulAdd(VF{_mm256_setr_ps(8, 9, 10, 11, 12, 13, 14, 15)}, VF{s8}, VF{o8}).raw;
  __m256i t16;  // the 16 results as u16, q order
  if (out == DType::BF16) {
    auto rne = [](__m256 v) {
      const __m256i u = _mm256_castps_si256(v);
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
      return _mm256_srai_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), 16);
    };
    t16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(rne(va), rne(vb)), 0xD8);
  } else {
    t16 = _mm256_set_m128i(_mm256_cvtps_ph(vb, _MM_FROUND_TO_NEAREST_INT), _mm256_cvtps_ph(va, _MM_FROUND_TO_NEAREST_INT));
  }
  (void)df;
  // Per lane: [low bytes of 8 values | high bytes of 8 values]; then gather lows, highs.
  const __m256i split = _mm256_shuffle_epi8(
      t16, _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5,
                            7, 9, 11, 13, 15));
  const __m256i x = _mm256_permute4x64_epi64(split, 0xD8);  // [lo q0..15 | hi q0..15]
  const __m256i tlo = _mm256_permute2x128_si256(x, x, 0x00), thi = _mm256_permute2x128_si256(x, x, 0x11);
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

void DequantT(const PackedLinear& w, DType out, int64_t r0, int64_t r1, void* dst, ThreadPool& pool) {
  if (r0 >= r1) return;
  const int64_t t_begin = r0 / kPackRows, t_end = (r1 + kPackRows - 1) / kPackRows;
  const int64_t G = w.group, sg = w.source_group, chunks = G / kChunkCols;
  const bool pqs = !w.pre_quant_scale.empty();
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if ((out == DType::BF16 || out == DType::F16) && !pqs) {
    pool.run(t_end - t_begin, [&](int64_t task, int) HWY_ATTR {
      uint16_t* d = static_cast<uint16_t*>(dst);
      if (w.wide)
        DequantTile16<true>(w, out, t_begin + task, r0, r1, d);
      else
        DequantTile16<false>(w, out, t_begin + task, r0, r1, d);
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
#if HWY_TARGET == HWY_AVX2
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
