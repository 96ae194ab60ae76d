// AMX tile configuration shared by the AMX kernels (amx_kernels.cc: int16 path on AMX-INT8;
// amx_bf16_gemm.cc: dense bf16 GEMM on AMX-BF16; amx_attention.cc: bf16 causal attention), and the
// bf16 rounding and B-tile packing of the two AMX-BF16 kernels. Intel SDM: LDTILECFG, palette 1.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace awq::kernels {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row of tmm0..15
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

// Every tile 16 rows × 64 bytes (tmm0..7): the f32 C tiles (16 × 16), the bf16 A tiles (16 × 32)
// and VNNI B tiles (16 pair rows × 16 × 2) of TDPBF16PS (amx_bf16_gemm.cc, amx_attention.cc).
inline TileConfig bf16_tile_config() {
  TileConfig c;
  for (int i = 0; i < 8; ++i) c.rows[i] = 16, c.colsb[i] = 64;
  return c;
}

// g++ 12's _tile_loadconfig declares only 8 bytes of its operand read, and _tile_loadd no memory
// read at all: the compiler barrier keeps the config (and, at the call sites, data written for
// tile loads) written first.
__attribute__((target("amx-tile"))) inline void load_tile_config(const TileConfig& c) {
  asm volatile("" ::: "memory");
  _tile_loadconfig(&c);
}

#define AWQ_AMXBF16_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq")))

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // g++ 12's AVX-512 intrinsics (GCC bug 105593)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// 16 f32 -> 16 bf16 bits, as f32_to_bf16: nearest even, NaN quieted (u | 0x400000, then >> 16).
AWQ_AMXBF16_TARGET inline __m256i round16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

// Mask of the first max(0, min(left, 16)) lanes.
inline __mmask16 lanes16(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << std::max<int64_t>(left, 0)) - 1u);
}

// 32 values of row src from column c0 (zeros at and past k) as 32 bf16 bits into dst (64 bytes).
AWQ_AMXBF16_TARGET inline void round32(const float* src, int64_t c0, int64_t k, uint16_t* dst) {
  const __m256i lo = round16(_mm512_maskz_loadu_ps(lanes16(k - c0), src + c0));
  const __m256i hi = round16(_mm512_maskz_loadu_ps(lanes16(k - c0 - 16), src + c0 + 16));
  _mm512_storeu_si512(dst, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
}

// The B tiles of 16 rows jt·16.. of b (row j at b + j·stride, n rows of k values; zeros past
// them) for K steps [0, steps): tile s at dst + (jt·steps + s)·512, VNNI order (pair row p,
// column c, element e holds b[16·jt + c][32·s + 2p + e]).
AWQ_AMXBF16_TARGET inline void pack_b_tile(const float* b, int64_t stride, int64_t n, int64_t k, int64_t jt, int64_t steps, uint16_t* dst) {
  alignas(64) uint32_t rows[16][16];  // rows[c][p]: column c's pair p of the current step
  for (int64_t s = 0; s < steps; ++s) {
    for (int64_t c = 0; c < 16; ++c) {
      const int64_t j = jt * 16 + c;
      if (j < n) round32(b + j * stride, s * 32, k, reinterpret_cast<uint16_t*>(rows[c]));
      else std::memset(rows[c], 0, 64);
    }
    uint32_t* out = reinterpret_cast<uint32_t*>(dst + (jt * steps + s) * 512);
    for (int p = 0; p < 16; ++p)
      for (int c = 0; c < 16; ++c) out[p * 16 + c] = rows[c][p];
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace awq::kernels
