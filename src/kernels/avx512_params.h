// Loading one (tile, group)'s dequantization parameters into AVX-512 registers, shared by the
// intrinsic paths (bf16, AMX), which check the CPU themselves. Callers' targets include avx512f/dq.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "awq/kernels.h"

namespace awq::kernels {

// Scale s and offset o of the 16 rows of (tile t, group g), as group_params computes them: wide
// params as stored; compact ones s = f16 scale, o = −(s·z) (the negation exact).
__attribute__((target("avx512f,avx512dq"))) inline void load_tile_params(const PackedLinear& w, int64_t t,
                                                                          int64_t g, __m512& s, __m512& o) {
  const uint8_t* pp = w.params.data() + size_t(t * w.n_groups + g) * w.param_bytes();
  if (w.wide) {
    s = _mm512_loadu_ps(pp);
    o = _mm512_loadu_ps(pp + 64);
  } else {
    s = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pp)));
    const __m512 z = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pp + 32))));
    o = _mm512_xor_ps(_mm512_mul_ps(s, z), _mm512_set1_ps(-0.f));
  }
}

}  // namespace awq::kernels
