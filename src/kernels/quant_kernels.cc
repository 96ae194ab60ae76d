// SIMD 4-bit kernels (GEMV/GEMM on the f32 and int8 paths, dequantize), compiled once per Highway
// target (hwy_config.h) and dispatched once per call. The int8 path and dequant perform the same
// f32 operations as kernels_ref.cc (bit-identical on FMA targets); the f32 path reorders its sums.
//
// Vectors hold L = MaxLanes(f32) rows of a 16-row tile: a 64-byte chunk is kP = 16/L vectors of
// u32 lanes, lane r = the 8 codes of row r (layout in include/awq/kernels.h).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "awq/kernels.h"
#include "awq/thread_pool.h"
#include "kernels/internal.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/quant_kernels.cc"
#include "kernels/hwy_config.h"
// clang-format off
#include <hwy/foreach_target.h>
#include <hwy/highway.h>
// clang-format on
#include <hwy/cache_control.h>
#include "kernels/simd_common-inl.h"

HWY_BEFORE_NAMESPACE();
namespace awq::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kMaxMR = kP >= 8 ? 1 : int(8 / kP);         // activation rows per micro-kernel call
constexpr int kMaxMR16 = kMaxMR >= 2 ? kMaxMR / 2 : 1;     // int16 path: twice the accumulators

const char* TargetNameT() { return hwy::TargetName(HWY_TARGET); }

// acc + Σ_{b<4} u8(w byte b)·s8(a byte b), per 32-bit lane. No saturation: 2·15·127 < 2^15.
HWY_INLINE VI Dot4(VI acc, VI w, VI a) {
#if HWY_TARGET == HWY_AVX3_DL
  // Highway 1.0.3's AVX3_DL target string lacks "avx512vnni", so the intrinsic cannot inline;
  // AVX3_DL implies AVX512-VNNI, so emit the instruction directly: acc += u8(w)·s8(a).
  __m512i r = acc.raw;
  asm("vpdpbusd %2, %1, %0" : "+v"(r) : "v"(w.raw), "v"(a.raw));
  return VI{r};
#elif HWY_TARGET == HWY_AVX3
  const __m512i p16 = _mm512_maddubs_epi16(w.raw, a.raw);
  return VI{_mm512_add_epi32(acc.raw, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)))};
#elif HWY_TARGET == HWY_AVX2
  const __m256i p16 = _mm256_maddubs_epi16(w.raw, a.raw);
  return VI{_mm256_add_epi32(acc.raw, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)))};
#elif HWY_TARGET == HWY_SSE4 || HWY_TARGET == HWY_SSSE3
  const __m128i p16 = _mm_maddubs_epi16(w.raw, a.raw);
  return VI{_mm_add_epi32(acc.raw, _mm_madd_epi16(p16, _mm_set1_epi16(1)))};
#else
  const DI di;
  const VI ff = hn::Set(di, 0xFF);
  acc = hn::Add(acc, hn::Mul(hn::And(w, ff), hn::ShiftRight<24>(hn::ShiftLeft<24>(a))));
  acc = hn::Add(acc, hn::Mul(hn::And(hn::ShiftRight<8>(w), ff), hn::ShiftRight<24>(hn::ShiftLeft<16>(a))));
  acc = hn::Add(acc, hn::Mul(hn::And(hn::ShiftRight<16>(w), ff), hn::ShiftRight<24>(hn::ShiftLeft<8>(a))));
  return hn::Add(acc, hn::Mul(hn::ShiftRight<24>(w), hn::ShiftRight<24>(a)));
#endif
}

// Dot4 with the activation quad broadcast from memory (4 bytes at p). On AVX3_DL the broadcast is
// folded into the instruction ({1to16} memory operand): one micro-op per 64 multiply-adds.
HWY_INLINE VI Dot4Mem(VI acc, VI w, const int8_t* p) {
#if HWY_TARGET == HWY_AVX3_DL
  __m512i r = acc.raw;
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(r) : "v"(w.raw), "m"(*reinterpret_cast<const int32_t*>(p)));
  return VI{r};
#else
  int32_t a;
  std::memcpy(&a, p, 4);
  return Dot4(acc, w, hn::Set(DI(), a));
#endif
}


// Every micro-kernel streams its tiles' codes: prefetch this far ahead of the chunk being read,
// so the next page's lines are requested before the hardware prefetcher would reach them and loads
// overlap the dot products. Measured on Zen 5 (BENCHMARKS.md): GEMV 85-94 % -> 91-99 % of read
// bandwidth; M = 2-8 1.4-3x faster (cold); M = 512 (K-blocked, codes in L2) unchanged.
constexpr int64_t kPrefetchBytes = 4096;

// Bytes of packed weights per pool task of a GEMV (see GemmT).
constexpr int64_t kGemvTaskBytes = int64_t(256) << 10;

// f32 path micro-kernel: y[m][0..16) (+)= Σ over groups [0, ng) of x[m]·w for MR activation rows.
// codes/params point at the tile's first group of the block; x at the block's first column of row
// 0 (row stride xs); y at the tile's first column of row 0 (stride ys); first: start from 0.
// kA independent accumulators per (row, vector) hide the FMA latency when MR is small; column j of
// a chunk goes to accumulator j % kA, and they are summed pairwise at the end. So the f32 path
// sums in a different order than the reference: equal for exactly representable data only.
template <int MR, bool kWide>
HWY_NOINLINE void MicroF32(const uint8_t* HWY_RESTRICT codes, const uint8_t* HWY_RESTRICT params, size_t pb,
                           int64_t ng, int64_t G, const float* HWY_RESTRICT x, int64_t xs, float* HWY_RESTRICT y,
                           int64_t ys, bool first) {
  constexpr int kA = std::clamp(int(8 / (MR * int(kP))), 1, 8);
  const DF df;
  const DU du;
  const DI di;
  VF acc[MR][kP][kA];
  for (int m = 0; m < MR; ++m)
    for (size_t p = 0; p < kP; ++p) {
      acc[m][p][0] = first ? hn::Zero(df) : hn::LoadU(df, y + m * ys + p * kL);
      for (int i = 1; i < kA; ++i) acc[m][p][i] = hn::Zero(df);
    }
  const VU m4 = hn::Set(du, 0xFu);
  const int64_t chunks = G / kChunkCols;
  for (int64_t g = 0; g < ng; ++g) {
    VF s[kP], o[kP];
    LoadParams<kWide>(params + size_t(g) * pb, s, o);
    const uint8_t* cg = codes + size_t(g * chunks) * kChunkBytes;
    const float* xg = x + g * G;
    for (int64_t c = 0; c < chunks; ++c) {
      const uint32_t* ch = reinterpret_cast<const uint32_t*>(cg + size_t(c) * kChunkBytes);
      hwy::Prefetch(cg + size_t(c) * kChunkBytes + kPrefetchBytes);
      const float* xc = xg + c * kChunkCols;
      VU v[kP];
      for (size_t p = 0; p < kP; ++p) v[p] = hn::Load(du, ch + p * kL);
#define AWQ_F32_STEP(SHIFT, J)                                                                     \
  for (size_t p = 0; p < kP; ++p) {                                                                \
    const VF q = hn::ConvertTo(df, hn::BitCast(di, hn::And(hn::ShiftRight<SHIFT>(v[p]), m4)));     \
    const VF wv = hn::MulAdd(q, s[p], o[p]);                                                       \
    for (int m = 0; m < MR; ++m)                                                                   \
      acc[m][p][J % kA] = hn::MulAdd(hn::Set(df, xc[m * xs + J]), wv, acc[m][p][J % kA]);          \
  }
      AWQ_F32_STEP(0, 0)
      AWQ_F32_STEP(8, 1)
      AWQ_F32_STEP(16, 2)
      AWQ_F32_STEP(24, 3)
      AWQ_F32_STEP(4, 4)
      AWQ_F32_STEP(12, 5)
      AWQ_F32_STEP(20, 6)
      AWQ_F32_STEP(28, 7)
#undef AWQ_F32_STEP
    }
  }
  for (int m = 0; m < MR; ++m)
    for (size_t p = 0; p < kP; ++p) {
      for (int w = kA; w > 1; w /= 2)
        for (int i = 0; i < w / 2; ++i) acc[m][p][i] = hn::Add(acc[m][p][i], acc[m][p][i + w / 2]);
      hn::StoreU(acc[m][p][0], df, y + m * ys + p * kL);
    }
}

// int8 path micro-kernel. a: int8 activations (stride as), d/ds: per-(row, group) scale and
// scale·Σa at the block's first group (row stride gs). kTwo (the int16 path): a is the hi plane and
// a + lo the lo plane; each group's sum is 256·Σq·hi + Σq·lo, formed once in f32 as gemm_ref does.
template <int MR, bool kWide, bool kTwo = false>
HWY_NOINLINE void MicroI8(const uint8_t* HWY_RESTRICT codes, const uint8_t* HWY_RESTRICT params, size_t pb,
                          int64_t ng, int64_t G, const int8_t* HWY_RESTRICT a, int64_t as,
                          const float* HWY_RESTRICT d, const float* HWY_RESTRICT ds, int64_t gs,
                          float* HWY_RESTRICT y, int64_t ys, bool first, int64_t lo = 0) {
  const DF df;
  const DU du;
  const DI di;
  VF yacc[MR][kP];
  for (int m = 0; m < MR; ++m)
    for (size_t p = 0; p < kP; ++p) yacc[m][p] = first ? hn::Zero(df) : hn::LoadU(df, y + m * ys + p * kL);
  const VU m4 = hn::Set(du, 0x0F0F0F0Fu);
  const int64_t chunks = G / kChunkCols;
  for (int64_t g = 0; g < ng; ++g) {
    VF s[kP], o[kP];
    LoadParams<kWide>(params + size_t(g) * pb, s, o);
    // Independent integer accumulators: [0] low nibbles, [1] high nibbles (and [2], [3] for the odd
    // chunk when MR == 1), so consecutive dot products do not wait on each other. Integer sums are
    // exact, so this order does not change the result.
    constexpr int kIA = MR == 1 ? 4 : 2;
    constexpr int kPl = kTwo ? 2 : 1;  // activation planes: [0] hi (or the int8 values), [1] lo
    VI iacc[kPl][MR][kP][kIA];
    for (int pl = 0; pl < kPl; ++pl)
      for (int m = 0; m < MR; ++m)
        for (size_t p = 0; p < kP; ++p)
          for (int i = 0; i < kIA; ++i) iacc[pl][m][p][i] = hn::Zero(di);
    const uint8_t* cg = codes + size_t(g * chunks) * kChunkBytes;
    const int8_t* ag = a + g * G;
    auto chunk = [&](int64_t c, int slot) HWY_ATTR {
      const uint32_t* ch = reinterpret_cast<const uint32_t*>(cg + size_t(c) * kChunkBytes);
      hwy::Prefetch(cg + size_t(c) * kChunkBytes + kPrefetchBytes);
      VI lo_[kP], hi[kP];  // low / high nibbles (lo_: `lo` is the activation plane offset)
      for (size_t p = 0; p < kP; ++p) {
        const VU v = hn::Load(du, ch + p * kL);
        lo_[p] = hn::BitCast(di, hn::And(v, m4));
        hi[p] = hn::BitCast(di, hn::And(hn::ShiftRight<4>(v), m4));
      }
      for (int pl = 0; pl < kPl; ++pl)
        for (int m = 0; m < MR; ++m) {
          const int8_t* am = ag + pl * lo + m * as + c * kChunkCols;
          if constexpr (kP == 1) {
            iacc[pl][m][0][slot] = Dot4Mem(iacc[pl][m][0][slot], lo_[0], am);
            iacc[pl][m][0][slot + 1] = Dot4Mem(iacc[pl][m][0][slot + 1], hi[0], am + 4);
          } else {
            int32_t a0, a1;
            std::memcpy(&a0, am, 4);
            std::memcpy(&a1, am + 4, 4);
            const VI b0 = hn::Set(di, a0), b1 = hn::Set(di, a1);
            for (size_t p = 0; p < kP; ++p) {
              iacc[pl][m][p][slot] = Dot4(iacc[pl][m][p][slot], lo_[p], b0);
              iacc[pl][m][p][slot + 1] = Dot4(iacc[pl][m][p][slot + 1], hi[p], b1);
            }
          }
        }
    };
    int64_t c = 0;
    if constexpr (kIA == 4) {
      for (; c + 2 <= chunks; c += 2) {
        chunk(c, 0);
        chunk(c + 1, 2);
      }
    }
    for (; c < chunks; ++c) chunk(c, 0);
    for (int pl = 0; pl < kPl; ++pl)
      for (int m = 0; m < MR; ++m)
        for (size_t p = 0; p < kP; ++p) {
          VI* ia = iacc[pl][m][p];
          ia[0] = hn::Add(ia[0], ia[1]);
          if constexpr (kIA == 4) ia[0] = hn::Add(ia[0], hn::Add(ia[2], ia[3]));
        }
    for (int m = 0; m < MR; ++m) {
      const VF dv = hn::Set(df, d[m * gs + g]), dsv = hn::Set(df, ds[m * gs + g]);
      for (size_t p = 0; p < kP; ++p) {
        const VF t = hn::MulAdd(o[p], dsv, yacc[m][p]);
        VF dot = hn::ConvertTo(df, iacc[0][m][p][0]);
        if constexpr (kTwo) dot = hn::MulAdd(dot, hn::Set(df, 256.f), hn::ConvertTo(df, iacc[1][m][p][0]));
        yacc[m][p] = hn::MulAdd(hn::Mul(s[p], dv), dot, t);
      }
    }
  }
  for (int m = 0; m < MR; ++m)
    for (size_t p = 0; p < kP; ++p) hn::StoreU(yacc[m][p], df, y + m * ys + p * kL);
}

// int8 path, 8 activation rows × two tiles (32 output rows) per call, for full-width vectors
// (kP == 1): each broadcast activation quad feeds two dot products, and 16 independent integer
// accumulators keep the dot-product units busy. y is updated in memory at each group's end with
// the same f32 operations as MicroI8 (so results are identical).
// kTwo (the int16 path): 4 activation rows, both planes (a and a + lo), the same 16 accumulators.
template <bool kWide, bool kTwo = false>
HWY_NOINLINE void MicroI8x2(const uint8_t* HWY_RESTRICT codes0, const uint8_t* HWY_RESTRICT codes1,
                            const uint8_t* HWY_RESTRICT params0, const uint8_t* HWY_RESTRICT params1, size_t pb,
                            int64_t ng, int64_t G, const int8_t* HWY_RESTRICT a, int64_t as,
                            const float* HWY_RESTRICT d, const float* HWY_RESTRICT ds, int64_t gs,
                            float* HWY_RESTRICT y, int64_t ys, bool first, int64_t lo = 0) {
  constexpr int MR = kTwo ? 4 : 8;
  constexpr int kPl = kTwo ? 2 : 1;
  const DF df;
  const DU du;
  const DI di;
  if (first)
    for (int m = 0; m < MR; ++m) {
      hn::StoreU(hn::Zero(df), df, y + m * ys);
      hn::StoreU(hn::Zero(df), df, y + m * ys + kL);
    }
  const VU m4 = hn::Set(du, 0x0F0F0F0Fu);
  const int64_t chunks = G / kChunkCols;
  for (int64_t g = 0; g < ng; ++g) {
    VI acc0[kPl][MR], acc1[kPl][MR];
    for (int pl = 0; pl < kPl; ++pl)
      for (int m = 0; m < MR; ++m) acc0[pl][m] = acc1[pl][m] = hn::Zero(di);
    const uint8_t* c0 = codes0 + size_t(g * chunks) * kChunkBytes;
    const uint8_t* c1 = codes1 + size_t(g * chunks) * kChunkBytes;
    const int8_t* ag = a + g * G;
    for (int64_t c = 0; c < chunks; ++c) {
      hwy::Prefetch(c0 + size_t(c) * kChunkBytes + kPrefetchBytes);
      hwy::Prefetch(c1 + size_t(c) * kChunkBytes + kPrefetchBytes);
      const VU v0 = hn::Load(du, reinterpret_cast<const uint32_t*>(c0 + size_t(c) * kChunkBytes));
      const VU v1 = hn::Load(du, reinterpret_cast<const uint32_t*>(c1 + size_t(c) * kChunkBytes));
      const VI lo0 = hn::BitCast(di, hn::And(v0, m4)), hi0 = hn::BitCast(di, hn::And(hn::ShiftRight<4>(v0), m4));
      const VI lo1 = hn::BitCast(di, hn::And(v1, m4)), hi1 = hn::BitCast(di, hn::And(hn::ShiftRight<4>(v1), m4));
      for (int pl = 0; pl < kPl; ++pl)
        for (int m = 0; m < MR; ++m) {
          const int8_t* am = ag + pl * lo + m * as + c * kChunkCols;
          acc0[pl][m] = Dot4Mem(acc0[pl][m], lo0, am);
          acc1[pl][m] = Dot4Mem(acc1[pl][m], lo1, am);
          acc0[pl][m] = Dot4Mem(acc0[pl][m], hi0, am + 4);
          acc1[pl][m] = Dot4Mem(acc1[pl][m], hi1, am + 4);
        }
    }
    VF s0, o0, s1, o1;
    LoadParams<kWide>(params0 + size_t(g) * pb, &s0, &o0);
    LoadParams<kWide>(params1 + size_t(g) * pb, &s1, &o1);
    for (int m = 0; m < MR; ++m) {
      const VF dv = hn::Set(df, d[m * gs + g]), dsv = hn::Set(df, ds[m * gs + g]);
      float* ym = y + m * ys;
      VF dot0 = hn::ConvertTo(df, acc0[0][m]), dot1 = hn::ConvertTo(df, acc1[0][m]);
      if constexpr (kTwo) {  // 256·Σq·hi + Σq·lo, as MicroI8
        dot0 = hn::MulAdd(dot0, hn::Set(df, 256.f), hn::ConvertTo(df, acc0[kPl - 1][m]));
        dot1 = hn::MulAdd(dot1, hn::Set(df, 256.f), hn::ConvertTo(df, acc1[kPl - 1][m]));
      }
      hn::StoreU(hn::MulAdd(hn::Mul(s0, dv), dot0, hn::MulAdd(o0, dsv, hn::LoadU(df, ym))), df, ym);
      hn::StoreU(hn::MulAdd(hn::Mul(s1, dv), dot1, hn::MulAdd(o1, dsv, hn::LoadU(df, ym + kL))), df, ym + kL);
    }
  }
}


// SIMD twin of quantize_activations_i8 (repack.cc): the same operations lane by lane (max of |x|,
// one multiply, rounding to nearest even, clamp), so the int8 activations and sums are identical.
// Returns false (caller falls back to the scalar one) when a group is not a multiple of the lanes.
bool QuantizeRowsI8(const PackedLinear& w, const float* xf, int64_t rows, int8_t* a, float* d_out, float* ds_out) {
  if (w.group % int64_t(kL) != 0) return false;
  const DF df;
  const DI di;
  const hn::Rebind<int8_t, DI> d8;
  const VF lo = hn::Set(df, -127.f), hi = hn::Set(df, 127.f);
  for (int64_t m = 0; m < rows; ++m) {
    const float* x = xf + size_t(m) * size_t(w.k_pad);
    int8_t* am = a + size_t(m) * size_t(w.k_pad);
    for (int64_t g = 0; g < w.n_groups; ++g) {
      const float* xg = x + g * w.group;
      VF vmax = hn::Zero(df);
      for (int64_t j = 0; j < w.group; j += kL) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xg + j)));
      const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
      const float d = amax > 0.f ? amax / 127.f : 0.f;
      const VF inv = hn::Set(df, amax > 0.f ? 127.f / amax : 0.f);
      VI vsum = hn::Zero(di);
      for (int64_t j = 0; j < w.group; j += kL) {
        VF r = hn::Round(hn::Mul(hn::LoadU(df, xg + j), inv));
        const VI ri = hn::ConvertTo(di, hn::Min(hn::Max(r, lo), hi));
        vsum = hn::Add(vsum, ri);
        hn::StoreU(hn::DemoteTo(d8, ri), d8, am + g * w.group + j);
      }
      const int32_t sum = hn::GetLane(hn::SumOfLanes(di, vsum));
      d_out[size_t(m * w.n_groups + g)] = d;
      ds_out[size_t(m * w.n_groups + g)] = d * float(sum);
    }
  }
  return true;
}

// SIMD twin of quantize_activations_i16 (repack.cc): the same f32 operations lane by lane, then
// the split r = 256·hi + lo in integers. Returns false like QuantizeRowsI8.
bool QuantizeRowsI16(const PackedLinear& w, const float* xf, int64_t rows, int8_t* a_hi, int8_t* a_lo, float* d_out,
                     float* ds_out) {
  if (w.group % int64_t(kL) != 0) return false;
  const DF df;
  const DI di;
  const hn::Rebind<int8_t, DI> d8;
  const VF lo = hn::Set(df, -kI16Max), hi = hn::Set(df, kI16Max);
  const VI k128 = hn::Set(di, 128);
  for (int64_t m = 0; m < rows; ++m) {
    const float* x = xf + size_t(m) * size_t(w.k_pad);
    int8_t* hm = a_hi + size_t(m) * size_t(w.k_pad);
    int8_t* lm = a_lo + size_t(m) * size_t(w.k_pad);
    for (int64_t g = 0; g < w.n_groups; ++g) {
      const float* xg = x + g * w.group;
      VF vmax = hn::Zero(df);
      for (int64_t j = 0; j < w.group; j += kL) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xg + j)));
      const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
      const float d = amax > 0.f ? amax / kI16Max : 0.f;
      const VF inv = hn::Set(df, amax > 0.f ? kI16Max / amax : 0.f);
      VI vsum = hn::Zero(di);
      for (int64_t j = 0; j < w.group; j += kL) {
        VF r = hn::Round(hn::Mul(hn::LoadU(df, xg + j), inv));
        const VI ri = hn::ConvertTo(di, hn::Min(hn::Max(r, lo), hi));
        vsum = hn::Add(vsum, ri);
        const VI h = hn::ShiftRight<8>(hn::Add(ri, k128));  // arithmetic: floor((r + 128) / 256)
        const VI l = hn::Sub(ri, hn::ShiftLeft<8>(h));
        hn::StoreU(hn::DemoteTo(d8, h), d8, hm + g * w.group + j);
        hn::StoreU(hn::DemoteTo(d8, l), d8, lm + g * w.group + j);
      }
      const int32_t sum = hn::GetLane(hn::SumOfLanes(di, vsum));
      d_out[size_t(m * w.n_groups + g)] = d;
      ds_out[size_t(m * w.n_groups + g)] = d * float(sum);
    }
  }
  return true;
}

template <bool kWide>
void RunTile(const PackedLinear& w, Path path, int64_t t, int64_t g0, int64_t ng, int64_t m0, int64_t mr,
             const KernelScratch& S, float* yrow0, int64_t np, bool first, int64_t lo) {
  const size_t pb = w.param_bytes();
  const uint8_t* codes = w.codes.data() + size_t(t) * w.tile_code_bytes() + size_t(g0 * (w.group / kChunkCols)) * kChunkBytes;
  const uint8_t* params = w.params.data() + size_t(t * w.n_groups + g0) * pb;
  int64_t m = m0;
  while (m < m0 + mr) {
    const int64_t left = m0 + mr - m;
    float* y = yrow0 + size_t(m) * size_t(np) + size_t(t * kPackRows);
    auto call = [&](auto mr_tag) HWY_ATTR {
      constexpr int R = decltype(mr_tag)::value;
      if (path == Path::kF32) {
        MicroF32<R, kWide>(codes, params, pb, ng, w.group, S.xf.data() + size_t(m * w.k_pad + g0 * w.group), w.k_pad,
                           y, np, first);
      } else if (path == Path::kInt16) {
        constexpr int R16 = R <= kMaxMR16 ? R : kMaxMR16;  // larger R are never asked for (below)
        MicroI8<R16, kWide, true>(codes, params, pb, ng, w.group, S.a.data() + size_t(m * w.k_pad + g0 * w.group),
                                  w.k_pad, S.d.data() + size_t(m * w.n_groups + g0),
                                  S.ds.data() + size_t(m * w.n_groups + g0), w.n_groups, y, np, first, lo);
      } else {
        MicroI8<R, kWide>(codes, params, pb, ng, w.group, S.a.data() + size_t(m * w.k_pad + g0 * w.group), w.k_pad,
                          S.d.data() + size_t(m * w.n_groups + g0), S.ds.data() + size_t(m * w.n_groups + g0),
                          w.n_groups, y, np, first);
      }
      m += R;
    };
    const int max_r = path == Path::kInt16 ? kMaxMR16 : kMaxMR;
    if (kMaxMR >= 8 && max_r >= 8 && left >= 8) {
      call(std::integral_constant<int, (kMaxMR >= 8 ? 8 : 1)>());
    } else if (kMaxMR >= 4 && max_r >= 4 && left >= 4) {
      call(std::integral_constant<int, (kMaxMR >= 4 ? 4 : 1)>());
    } else if (kMaxMR >= 2 && max_r >= 2 && left >= 2) {
      call(std::integral_constant<int, (kMaxMR >= 2 ? 2 : 1)>());
    } else {
      call(std::integral_constant<int, 1>());
    }
  }
}

void GemmT(const PackedLinear& w, const void* x, DType xt, int64_t m, void* yout, DType yt, Path path,
           ThreadPool& pool) {
  KernelScratch& S = kernel_scratch();
  const int64_t kp = w.k_pad, np = w.n_tiles * kPackRows;
  const int threads = pool.size();
  if (S.xf.size() < size_t(m * kp)) S.xf.resize(size_t(m * kp));
  if (S.y.size() < size_t(m * np)) S.y.resize(size_t(m * np));
  const bool quantized = path == Path::kInt8 || path == Path::kInt16;
  // AMX-INT8 tiles for the int16 path's larger products (amx_kernels.cc).
  const bool amx = path == Path::kInt16 && m >= kAmxMinRows && amx_available();
  const int64_t lo = path == Path::kInt16 ? m * kp : 0;  // the int16 path's lo plane follows the hi plane
  if (quantized) {
    if (S.a.size() < size_t(m * kp + lo)) S.a.resize(size_t(m * kp + lo));
    if (S.d.size() < size_t(m * w.n_groups)) S.d.resize(size_t(m * w.n_groups)), S.ds.resize(size_t(m * w.n_groups));
  }
  // Activation pass (shared with the reference): widen, apply pqs, pad; quantize for int8.
  // The quantized paths read f32 rows as they are where packing would copy them unchanged.
  const bool as_is = quantized && xt == DType::F32 && w.source_col.empty() && w.pre_quant_scale.empty() &&
                     w.k_pad == w.k && w.group == w.source_group;
  const int64_t row_tasks = std::min<int64_t>(m, 4 * threads);
  pool.run(row_tasks, [&](int64_t task, int) HWY_ATTR {
    const int64_t r0 = m * task / row_tasks, r1 = m * (task + 1) / row_tasks;
    const float* xf = as_is ? static_cast<const float*>(x) + size_t(r0 * kp) : S.xf.data() + size_t(r0 * kp);
    if (!as_is) pack_activations_f32(w, x, xt, r0, r1, S.xf.data() + size_t(r0 * kp));
    if (quantized) {
      int8_t* ar = S.a.data() + size_t(r0 * kp);
      float* dr = S.d.data() + size_t(r0 * w.n_groups);
      float* dsr = S.ds.data() + size_t(r0 * w.n_groups);
      if (path == Path::kInt8) {
        if (!QuantizeRowsI8(w, xf, r1 - r0, ar, dr, dsr)) quantize_activations_i8(w, xf, r0, r1, ar, dr, dsr);
      } else if (!QuantizeRowsI16(w, xf, r1 - r0, ar, ar + lo, dr, dsr)) {
        quantize_activations_i16(w, xf, r0, r1, ar, ar + lo, dr, dsr);
      }
    }
  });
  int8_t* amx_a = nullptr;
  if (amx) {  // the planes as contiguous A tiles, 64-byte aligned
    const size_t bytes = size_t(amx_packed_bytes(w, m));
    if (S.amx_a.size() < bytes + 64) S.amx_a.resize(bytes + 64);
    amx_a = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(S.amx_a.data()) + 63) & ~uintptr_t(63));
    const int64_t blocks = (m + 15) / 16, tasks = std::min<int64_t>(blocks, 4 * threads);
    pool.run(tasks, [&](int64_t task, int) {
      amx_pack_activations(w, S.a.data(), S.a.data() + lo, m, blocks * task / tasks, blocks * (task + 1) / tasks, amx_a);
    });
  }
  // Blocking: a task owns TB tiles (all rows m). For m > kMaxMR the K loop is blocked (~1024 columns)
  // so the tiles' codes for one K block stay in L2 while every activation row block passes by.
  const int64_t kb = m <= (path == Path::kInt16 ? kMaxMR16 : kMaxMR) ? w.n_groups : std::max<int64_t>(1, 1024 / w.group);
  // Tiles per task: a quarter of a thread's share, at most 16; for a GEMV (m rows in one micro-kernel
  // pass) also at most ~kGemvTaskBytes of codes and params, so that the threads finish within a
  // short task of each other and a worker that is descheduled mid-loop holds back little (tasks are
  // handed out dynamically: ThreadPool::run). AMX: an even number of tiles per task (its kernel takes
  // tiles in pairs), at most 16.
  int64_t tb = amx ? std::clamp<int64_t>(w.n_tiles / (4 * threads), 1, 8) * 2
                   : std::clamp<int64_t>(w.n_tiles / (4 * threads), 1, 16);
  const int64_t tile_bytes = int64_t(w.tile_code_bytes() + size_t(w.n_groups) * w.param_bytes());
  if (!amx && m <= (path == Path::kInt16 ? kMaxMR16 : kMaxMR))
    tb = std::clamp<int64_t>(kGemvTaskBytes / tile_bytes, 1, tb);
  const int64_t n_tasks = (w.n_tiles + tb - 1) / tb;
  float* ys = S.y.data();
  pool.run(n_tasks, [&](int64_t task, int) HWY_ATTR {
    const int64_t t0 = task * tb, t1 = std::min(w.n_tiles, t0 + tb);
    if (amx) {  // f32 outputs straight from the kernel (+ bias); bf16 through the output pass below
      const bool final = yt == DType::F32;
      amx_int16_tiles(w, {amx_a, S.d.data(), S.ds.data(), m}, t0, t1,
                      {final ? static_cast<float*>(yout) : ys, final ? w.n : np, final});
      if (final) return;
    }
    for (int64_t g0 = 0; !amx && g0 < w.n_groups; g0 += kb) {
      const int64_t ng = std::min(kb, w.n_groups - g0);
      const int64_t mstep = path == Path::kInt16 ? kMaxMR16 : kMaxMR;
      for (int64_t m0 = 0; m0 < m; m0 += mstep) {
        const int64_t mr = std::min<int64_t>(mstep, m - m0);
        for (int64_t t = t0; t < t1; ++t) {
          if constexpr (kP == 1) {
            const bool two = path == Path::kInt16;
            if (((path == Path::kInt8 && mr == 8) || (two && mr == 4)) && t + 1 < t1) {
              const size_t pb = w.param_bytes();
              const int64_t goff = g0 * (w.group / kChunkCols) * kChunkBytes;
              const uint8_t* cA = w.codes.data() + size_t(t) * w.tile_code_bytes() + size_t(goff);
              const uint8_t* cB = cA + w.tile_code_bytes();
              const uint8_t* pA = w.params.data() + size_t(t * w.n_groups + g0) * pb;
              const uint8_t* pB = pA + size_t(w.n_groups) * pb;
              const int8_t* am = S.a.data() + size_t(m0 * w.k_pad + g0 * w.group);
              const float* dm = S.d.data() + size_t(m0 * w.n_groups + g0);
              const float* dsm = S.ds.data() + size_t(m0 * w.n_groups + g0);
              float* yt = ys + size_t(m0) * size_t(np) + size_t(t * kPackRows);
              const bool f = g0 == 0;
              if (w.wide && two)
                MicroI8x2<true, true>(cA, cB, pA, pB, pb, ng, w.group, am, w.k_pad, dm, dsm, w.n_groups, yt, np, f, lo);
              else if (w.wide)
                MicroI8x2<true>(cA, cB, pA, pB, pb, ng, w.group, am, w.k_pad, dm, dsm, w.n_groups, yt, np, f);
              else if (two)
                MicroI8x2<false, true>(cA, cB, pA, pB, pb, ng, w.group, am, w.k_pad, dm, dsm, w.n_groups, yt, np, f, lo);
              else
                MicroI8x2<false>(cA, cB, pA, pB, pb, ng, w.group, am, w.k_pad, dm, dsm, w.n_groups, yt, np, f);
              ++t;
              continue;
            }
          }
          if (w.wide)
            RunTile<true>(w, path, t, g0, ng, m0, mr, S, ys, np, g0 == 0, lo);
          else
            RunTile<false>(w, path, t, g0, ng, m0, mr, S, ys, np, g0 == 0, lo);
        }
      }
    }
    // Output pass for this task's columns: + bias, round once to the output dtype.
    const DF df;
    const int64_t c0 = t0 * kPackRows, c1 = std::min(w.n, t1 * kPackRows);
    for (int64_t mi = 0; mi < m; ++mi) {
      const float* src = ys + size_t(mi * np);
      int64_t c = c0;
      for (; c + int64_t(kL) <= c1; c += kL) {
        VF v = hn::LoadU(df, src + c);
        if (!w.bias.empty()) v = hn::Add(v, hn::LoadU(df, w.bias.data() + c));
        StoreOut(v, yt, yout, size_t(mi * w.n + c));
      }
      for (; c < c1; ++c) {
        float v = src[c];
        if (!w.bias.empty()) v += w.bias[size_t(c)];
        store_float(static_cast<uint8_t*>(yout), yt, size_t(mi * w.n + c), v);
      }
    }
  });
}


}  // namespace HWY_NAMESPACE
}  // namespace awq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "hwy/targets.h"

namespace awq::kernels {

HWY_EXPORT(GemmT);
HWY_EXPORT(TargetNameT);

void gemm_simd(const PackedLinear& w, const void* x, DType xt, int64_t m, void* y, DType yt, Path path,
               ThreadPool& pool) {
  HWY_DYNAMIC_DISPATCH(GemmT)(w, x, xt, m, y, yt, path, pool);
}

std::string active_target() { return HWY_DYNAMIC_DISPATCH(TargetNameT)(); }

namespace {
int64_t real_supported() {
  static const int64_t s = hwy::SupportedTargets();  // before any force_target()
  return s;
}

std::string missing_features(int64_t bits) {
  std::string miss;
  auto need = [&](bool have, const char* f) {
    if (!have) miss += miss.empty() ? f : std::string(", ") + f;
  };
  __builtin_cpu_init();
  if (bits & (HWY_AVX3_DL | HWY_AVX3)) {
    need(__builtin_cpu_supports("avx512f"), "avx512f");
    need(__builtin_cpu_supports("avx512bw"), "avx512bw");
    need(__builtin_cpu_supports("avx512vl"), "avx512vl");
    need(__builtin_cpu_supports("avx512dq"), "avx512dq");
  }
  if (bits & HWY_AVX3_DL) {
    need(__builtin_cpu_supports("avx512vnni"), "avx512vnni");
    need(__builtin_cpu_supports("avx512vbmi"), "avx512vbmi");
    need(__builtin_cpu_supports("avx512vbmi2"), "avx512vbmi2");
    need(__builtin_cpu_supports("avx512bitalg"), "avx512bitalg");
    need(__builtin_cpu_supports("avx512vpopcntdq"), "avx512vpopcntdq");
#ifndef __clang__  // clang 14's __builtin_cpu_supports knows neither feature string
    need(__builtin_cpu_supports("vpclmulqdq"), "vpclmulqdq");
    need(__builtin_cpu_supports("vaes"), "vaes");
#endif
  }
  if (bits & HWY_AVX2) {
    need(__builtin_cpu_supports("avx2"), "avx2");
    need(__builtin_cpu_supports("fma"), "fma");
    need(__builtin_cpu_supports("bmi2"), "bmi2");
  }
  if (bits & HWY_SSE4) need(__builtin_cpu_supports("sse4.2"), "sse4.2");
  return miss.empty() ? "not reported as supported by hwy::SupportedTargets()" : "CPU lacks " + miss;
}
}  // namespace

std::vector<TargetInfo> compiled_targets() {
  std::vector<TargetInfo> out;
  const int64_t supported = real_supported();
  for (int64_t ts = HWY_TARGETS; ts != 0; ts &= ts - 1) {
    const int64_t bit = ts & -ts;
    TargetInfo info;
    info.bits = bit;
    info.name = hwy::TargetName(bit);
    info.runnable = (supported & bit) != 0;
    if (!info.runnable) info.why_not = missing_features(bit);
    out.push_back(info);
  }
  return out;
}

void force_target(int64_t bits) {
  real_supported();
  hwy::SetSupportedTargetsForTest(bits);
}

}  // namespace awq::kernels
#endif  // HWY_ONCE
