// causal_attention_bf16 (include/awq/model_ops.h) on Intel AMX-BF16 tiles (TDPBF16PS), behind
// amx_bf16_available(); hand-written intrinsics in functions compiled for AMX + AVX-512 alone (target
// attribute), like amx_bf16_gemm.cc, whose tile configuration and packing (amx_tiles.h) it shares.
//
// One call = one sequence and one KV head (its `group` query heads). K and V are rounded to bf16
// once, into B tiles: Kᵀ for the scores (tile (key tile, d step): 16 keys × 32 dims) and V for P·V
// (tile (dim tile, key step): 32 keys × 16 dims). The query rows run in pairs of 16-row tiles (the
// tiles ordered by position, then head: with group >= 2 a pair is the same 16 positions of two heads,
// so both share one key range). Per pair: its Q rows rounded into 2 A tiles per 32 dims; S = Q·Kᵀ
// over the pair's key range, 32 keys at a time (4 C tiles, 1 tile load per TDPBF16PS); the softmax
// of each row in f32 (exp by a polynomial, exp_neg) with the probabilities rounded to bf16 straight
// into A-tile rows; P·V 32 dims at a time (4 C tiles); each output row scaled by 1 / Σ p.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/amx_tiles.h"
#include "kernels/internal.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // g++ 12's AVX-512 intrinsics (GCC bug 105593)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace awq::kernels {

namespace {

struct Layout {
  int64_t lp, dsteps, dtiles, kb, vb, qa, s, p, o;  // keys padded to 32, 32-dim steps, 16-dim tiles; offsets in floats
  size_t floats;
};

// Scratch regions, each 64-byte aligned relative to a 64-byte aligned base (the base itself is
// aligned up inside the call, hence the 16 floats of slack).
Layout layout(int64_t len, int64_t hd) {
  Layout L;
  L.lp = (len + 31) / 32 * 32;
  L.dsteps = (hd + 31) / 32;
  L.dtiles = (L.dsteps * 32) / 16;  // even: dims go in pairs of tiles
  const auto up = [](int64_t f) { return (f + 15) / 16 * 16; };
  int64_t at = 0;
  L.kb = at, at += up(L.lp * L.dsteps * 16);  // (lp/16)·dsteps tiles of 512 bf16
  L.vb = at, at += up(L.dtiles * (L.lp / 32) * 256);
  L.qa = at, at += up(2 * L.dsteps * 256);
  L.s = at, at += up(32 * L.lp);
  L.p = at, at += up(16 * L.lp);  // 32 rows of lp bf16
  L.o = at, at += up(32 * L.dtiles * 16);
  L.floats = size_t(at + 16);
  return L;
}

// V tile (dt, ks): pair row p, dim c, element e = bf16(V[32·ks + 2p + e][16·dt + c]), zeros past len, hd.
AWQ_AMXBF16_TARGET void pack_v(const float* v, int64_t vs, int64_t len, int64_t hd, const Layout& L, uint16_t* vb) {
  const int64_t ksteps = L.lp / 32;
  for (int64_t dt = 0; dt < L.dtiles; ++dt) {
    const __mmask16 m = lanes16(hd - dt * 16);
    for (int64_t ks = 0; ks < ksteps; ++ks) {
      uint32_t* tile = reinterpret_cast<uint32_t*>(vb + (dt * ksteps + ks) * 512);
      for (int64_t p = 0; p < 16; ++p) {
        const int64_t j = ks * 32 + 2 * p;
      if (dt == 0 && j + 32 < len)  // the rows of the next key step, once (later dim tiles find them cached)
        for (int64_t e = 0; e < 2; ++e)
          for (int64_t d = 0; d < hd; d += 16) _mm_prefetch(reinterpret_cast<const char*>(v + (j + 32 + e) * vs + d), _MM_HINT_T1);
        const __m512 r0 = j < len ? _mm512_maskz_loadu_ps(m, v + j * vs + dt * 16) : _mm512_setzero_ps();
        const __m512 r1 = j + 1 < len ? _mm512_maskz_loadu_ps(m, v + (j + 1) * vs + dt * 16) : _mm512_setzero_ps();
        const __m512i lo = _mm512_cvtepu16_epi32(round16(r0)), hi = _mm512_cvtepu16_epi32(round16(r1));
        _mm512_store_si512(tile + p * 16, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
    }
  }
}

// 4 C tiles (rows 0-15, 16-31 × 2 column tiles) from A tiles a0/a1 and B tiles b0/b1 over `steps`
// steps (A stride as, B stride 512 per step), stored to c (stride cs bytes) at c, c + 16 floats,
// c + 16 rows, c + 16 rows + 16 floats.
AWQ_AMXBF16_TARGET inline void quad(const uint16_t* a0, const uint16_t* a1, int64_t a_step, int64_t a_stride, const uint16_t* b0,
                                    const uint16_t* b1, int64_t b_step, int64_t steps, float* c, int64_t cs) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(4, a0 + s * a_step, a_stride);
    _tile_loadd(6, b0 + s * b_step, 64);
    _tile_loadd(7, b1 + s * b_step, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, a1 + s * a_step, a_stride);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, cs);
  _tile_stored(1, c + 16, cs);
  _tile_stored(2, c + 16 * (cs / 4), cs);
  _tile_stored(3, c + 16 * (cs / 4) + 16, cs);
}

// e^x for x <= 0 (x >= -104, else treated as -104: the result then rounds to bf16 zero): x = n·ln2
// + r (Cody-Waite, |r| <= ln2/2), e^r by its degree-7 Taylor polynomial (truncation < 6e-9
// relative), times 2^n by VSCALEFPS. Within ~3 ulp of std::exp.
AWQ_AMXBF16_TARGET inline __m512 exp_neg(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// One row's softmax over 16-key vectors [z0, z1) (multiples of 32) of s: x = scale·s over keys
// [lo, hi) (−inf elsewhere), p = bf16(e^(x − max)) written as bits to p (nearest even; p is
// finite and >= 0, so no NaN case), returns 1 / Σ p.
AWQ_AMXBF16_TARGET float softmax_row(const float* s, int64_t z0, int64_t lo, int64_t hi, int64_t z1, float scale, uint16_t* p) {
  const int64_t j0 = lo / 16 * 16, j1 = (hi + 15) / 16 * 16;
  std::memset(p + z0, 0, size_t(j0 - z0) * 2);
  std::memset(p + j1, 0, size_t(z1 - j1) * 2);
  const __m512 vs = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-__builtin_inff());
  const auto in = [&](int64_t j) AWQ_AMXBF16_TARGET {  // lanes of keys j.. inside [lo, hi)
    return __mmask16(lanes16(hi - j) & ~lanes16(lo - j));
  };
  __m512 vm = ninf;
  for (int64_t j = j0; j < j1; j += 16) vm = _mm512_mask_max_ps(vm, in(j), vm, _mm512_mul_ps(_mm512_loadu_ps(s + j), vs));
  const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
  __m512 acc = _mm512_setzero_ps();
  const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff), hi_mask = _mm512_set1_epi32(int(0xffff0000u));
  for (int64_t j = j0; j < j1; j += 16) {
    const __m512 x = _mm512_mask_mul_ps(ninf, in(j), _mm512_loadu_ps(s + j), vs);
    const __m512i u = _mm512_castps_si512(exp_neg(_mm512_sub_ps(x, mx)));
    const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
    acc = _mm512_add_ps(acc, _mm512_castsi512_ps(_mm512_and_si512(r, hi_mask)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + j), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
  }
  return 1.0f / _mm512_reduce_add_ps(acc);
}

struct Tile {
  int64_t g, i0;  // head within the group, first position
};

AWQ_AMXBF16_TARGET void attend(const float* q, int64_t qs, int64_t group, int64_t hd, const float* k, const float* v, int64_t kvs,
                               int64_t len, int64_t window, float scale, float* out, int64_t os, float* scratch) {
  const Layout L = layout(len, hd);
  float* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t(63));
  uint16_t* kb = reinterpret_cast<uint16_t*>(base + L.kb);
  uint16_t* vb = reinterpret_cast<uint16_t*>(base + L.vb);
  uint16_t* qa = reinterpret_cast<uint16_t*>(base + L.qa);
  float* S = base + L.s;
  uint16_t* P = reinterpret_cast<uint16_t*>(base + L.p);
  float* O = base + L.o;
  const int64_t ktiles = L.lp / 16, ow = L.dtiles * 16;
  // K, V (and below Q) rows are strided (other heads between them, a page apart on a 7B): each row's
  // lines are prefetched a tile ahead, so their misses overlap.
  const auto prefetch_rows = [&](const float* base, int64_t stride, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < std::min(j1, len); ++j)
      for (int64_t d = 0; d < hd; d += 16) _mm_prefetch(reinterpret_cast<const char*>(base + j * stride + d), _MM_HINT_T1);
  };
  prefetch_rows(k, kvs, 0, 16);
  for (int64_t kt = 0; kt < ktiles; ++kt) {
    prefetch_rows(k, kvs, (kt + 1) * 16, (kt + 2) * 16);
    pack_b_tile(k, kvs, len, hd, kt, L.dsteps, kb);
  }
  prefetch_rows(v, kvs, 0, 32);
  pack_v(v, kvs, len, hd, L, vb);
  const int64_t qtiles = (len + 15) / 16, ntiles = qtiles * group;
  const auto tile_at = [&](int64_t t) { return Tile{t % group, (t / group) * 16}; };
  const TileConfig cfg = bf16_tile_config();
  asm volatile("" ::: "memory");
  load_tile_config(cfg);
  for (int64_t t = 0; t < ntiles; t += 2) {
    const Tile ta = tile_at(t);
    const bool two = t + 1 < ntiles;
    const Tile tb = two ? tile_at(t + 1) : ta;
    for (int64_t u = t + 2; u < std::min(t + 4, ntiles); ++u) {  // the next pair's Q rows
      const Tile tn = tile_at(u);
      prefetch_rows(q + tn.g * hd, qs, tn.i0, tn.i0 + 16);
    }
    int64_t lo[32], hi[32];
    int64_t pmin = len, pmax = 0;
    for (int64_t r = 0; r < 32; ++r) {
      const Tile& tt = r < 16 ? ta : tb;
      const int64_t pos = tt.i0 + r % 16;
      const bool valid = pos < len && (r < 16 || two);
      uint16_t* dst = qa + (r / 16) * L.dsteps * 512 + (r % 16) * 32;
      if (valid) {
        lo[r] = window > 0 ? std::max<int64_t>(0, pos + 1 - window) : 0;
        hi[r] = pos + 1;
        pmin = std::min(pmin, pos);
        pmax = std::max(pmax, pos);
        const float* src = q + pos * qs + tt.g * hd;
        for (int64_t s = 0; s < L.dsteps; ++s) round32(src, s * 32, hd, dst + s * 512);
      } else {
        lo[r] = hi[r] = 0;
        for (int64_t s = 0; s < L.dsteps; ++s) std::memset(dst + s * 512, 0, 64);
      }
    }
    const int64_t first = window > 0 ? std::max<int64_t>(0, pmin + 1 - window) : 0;
    const int64_t ks0 = first / 32, ks1 = pmax / 32 + 1;  // key steps of 32 visible to some row
    asm volatile("" ::: "memory");
    for (int64_t ks = ks0; ks < ks1; ++ks)
      quad(qa, qa + L.dsteps * 512, 512, 64, kb + (2 * ks) * L.dsteps * 512, kb + (2 * ks + 1) * L.dsteps * 512, 512, L.dsteps,
           S + ks * 32, L.lp * 4);
    asm volatile("" ::: "memory");
    float inv[32];
    for (int64_t r = 0; r < 32; ++r) {
      if (lo[r] < hi[r]) {
        inv[r] = softmax_row(S + r * L.lp, ks0 * 32, lo[r], hi[r], ks1 * 32, scale, P + r * L.lp);
      } else {
        inv[r] = 0.0f;
        std::memset(P + r * L.lp + ks0 * 32, 0, size_t(ks1 - ks0) * 64);
      }
    }
    asm volatile("" ::: "memory");
    const int64_t ksteps = L.lp / 32;
    for (int64_t dt = 0; dt < L.dtiles; dt += 2)
      quad(P + ks0 * 32, P + 16 * L.lp + ks0 * 32, 32, L.lp * 2, vb + (dt * ksteps + ks0) * 512, vb + ((dt + 1) * ksteps + ks0) * 512, 512,
           ks1 - ks0, O + dt * 16, ow * 4);
    asm volatile("" ::: "memory");
    for (int64_t r = 0; r < 32; ++r) {
      if (hi[r] == 0) continue;
      const Tile& tt = r < 16 ? ta : tb;
      float* dst = out + (tt.i0 + r % 16) * os + tt.g * hd;
      const __m512 iv = _mm512_set1_ps(inv[r]);
      for (int64_t d = 0; d < hd; d += 16)
        _mm512_mask_storeu_ps(dst + d, lanes16(hd - d), _mm512_mul_ps(_mm512_loadu_ps(O + r * ow + d), iv));
    }
  }
  _tile_release();
}

}  // namespace

size_t amx_attention_bf16_scratch(int64_t len, int64_t /*group*/, int64_t head_dim) { return layout(len, head_dim).floats; }

void amx_causal_attention_bf16(const float* q, int64_t q_stride, int64_t group, int64_t head_dim, const float* k, const float* v,
                               int64_t kv_stride, int64_t len, int64_t window, float scale, float* out, int64_t out_stride, float* scratch) {
  attend(q, q_stride, group, head_dim, k, v, kv_stride, len, window, scale, out, out_stride, scratch);
}

}  // namespace awq::kernels
