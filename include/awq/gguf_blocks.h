// ggml's quantized block layouts (ggml-common.h), byte for byte. Multi-byte fields are
// little-endian on disk; every struct is read from (unaligned) file bytes with memcpy.
#pragma once
#include <cstdint>

namespace awq::gguf_detail {

inline constexpr int kQK4_0 = 32, kQK4_1 = 32, kQK8_0 = 32, kQK_K = 256, kKScaleSize = 12;

struct BlockQ4_0 {  // w = d * (q - 8)
  uint16_t d;               // f16
  uint8_t qs[kQK4_0 / 2];   // element j in the low nibble of qs[j], j + 16 in the high nibble
};
struct BlockQ4_1 {  // w = d * q + m
  uint16_t d, m;            // f16
  uint8_t qs[kQK4_1 / 2];
};
struct BlockQ8_0 {  // w = d * q
  uint16_t d;
  int8_t qs[kQK8_0];
};
struct BlockQ4_K {  // 8 sub-blocks of 32: w = d * sc[j] * q - dmin * m[j], sc/m 6-bit
  uint16_t d, dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];    // sub-blocks 2i and 2i+1 share qs[32i .. 32i+31] (low, high nibble)
};
struct BlockQ6_K {  // 16 sub-blocks of 16: w = d * scales[j] * (q - 32), q 6-bit
  uint8_t ql[kQK_K / 2];    // low 4 bits
  uint8_t qh[kQK_K / 4];    // high 2 bits
  int8_t scales[kQK_K / 16];
  uint16_t d;
};

static_assert(sizeof(BlockQ4_0) == 18, "ggml block_q4_0 is 18 bytes");
static_assert(sizeof(BlockQ4_1) == 20, "ggml block_q4_1 is 20 bytes");
static_assert(sizeof(BlockQ8_0) == 34, "ggml block_q8_0 is 34 bytes");
static_assert(sizeof(BlockQ4_K) == 144, "ggml block_q4_K is 144 bytes");
static_assert(sizeof(BlockQ6_K) == 210, "ggml block_q6_K is 210 bytes");

// Q4_K's packed 6-bit scale and min of sub-block j (ggml-quants.c get_scale_min_k4).
inline void q4k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
// The inverse: packs 8 six-bit scales and mins into Q4_K's 12 bytes.
inline void q4k_pack_scale_min(const uint8_t sc[8], const uint8_t m[8], uint8_t out[kKScaleSize]) {
  for (int j = 0; j < 12; ++j) out[j] = 0;
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] = uint8_t(sc[j] & 63);
      out[j + 4] = uint8_t(m[j] & 63);
    } else {
      out[j + 4] = uint8_t((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
      out[j - 4] |= uint8_t((sc[j] >> 4) << 6);
      out[j] |= uint8_t((m[j] >> 4) << 6);
    }
  }
}

}  // namespace awq::gguf_detail
