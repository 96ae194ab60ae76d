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

HWY_BEFORE_NAMESPACE();
namespace awq::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::ScalableTag<int32_t>;
using DU = hn::ScalableTag<uint32_t>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;
using VU = hn::Vec<DU>;

constexpr size_t kL = hn::MaxLanes(DF());
constexpr size_t kP = size_t(kPackRows) / kL;            // vectors per chunk
constexpr int kMaxMR = kP >= 8 ? 1 : int(8 / kP);         // activation rows per micro-kernel call

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

// Scale and offset vectors of one (tile, group): w = fma(q, s, o).
template <bool kWide>
HWY_INLINE void LoadParams(const uint8_t* pp, VF* s, VF* o) {
  const DF df;
  for (size_t p = 0; p < kP; ++p) {
    if constexpr (kWide) {
      s[p] = hn::LoadU(df, reinterpret_cast<const float*>(pp) + p * kL);
      o[p] = hn::LoadU(df, reinterpret_cast<const float*>(pp + 64) + p * kL);
    } else {
      const hn::Rebind<hwy::float16_t, DF> dh;
      const hn::Rebind<uint8_t, DI> d8;
      const DI di;
      s[p] = hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(pp) + p * kL));
      const VF z = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, pp + 32 + p * kL)));
      o[p] = hn::Neg(hn::Mul(s[p], z));
    }
  }
}

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
// scale·Σa at the block's first group (row stride gs).
template <int MR, bool kWide>
HWY_NOINLINE void MicroI8(const uint8_t* HWY_RESTRICT codes, const uint8_t* HWY_RESTRICT params, size_t pb,
                          int64_t ng, int64_t G, const int8_t* HWY_RESTRICT a, int64_t as,
                          const float* HWY_RESTRICT d, const float* HWY_RESTRICT ds, int64_t gs,
                          float* HWY_RESTRICT y, int64_t ys, bool first) {
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
    VI iacc[MR][kP][kIA];
    for (int m = 0; m < MR; ++m)
      for (size_t p = 0; p < kP; ++p)
        for (int i = 0; i < kIA; ++i) iacc[m][p][i] = hn::Zero(di);
    const uint8_t* cg = codes + size_t(g * chunks) * kChunkBytes;
    const int8_t* ag = a + g * G;
    auto chunk = [&](int64_t c, int slot) HWY_ATTR {
      const uint32_t* ch = reinterpret_cast<const uint32_t*>(cg + size_t(c) * kChunkBytes);
      VI lo[kP], hi[kP];
      for (size_t p = 0; p < kP; ++p) {
        const VU v = hn::Load(du, ch + p * kL);
        lo[p] = hn::BitCast(di, hn::And(v, m4));
        hi[p] = hn::BitCast(di, hn::And(hn::ShiftRight<4>(v), m4));
      }
      for (int m = 0; m < MR; ++m) {
        const int8_t* am = ag + m * as + c * kChunkCols;
        if constexpr (kP == 1) {
          iacc[m][0][slot] = Dot4Mem(iacc[m][0][slot], lo[0], am);
          iacc[m][0][slot + 1] = Dot4Mem(iacc[m][0][slot + 1], hi[0], am + 4);
        } else {
          int32_t a0, a1;
          std::memcpy(&a0, am, 4);
          std::memcpy(&a1, am + 4, 4);
          const VI b0 = hn::Set(di, a0), b1 = hn::Set(di, a1);
          for (size_t p = 0; p < kP; ++p) {
            iacc[m][p][slot] = Dot4(iacc[m][p][slot], lo[p], b0);
            iacc[m][p][slot + 1] = Dot4(iacc[m][p][slot + 1], hi[p], b1);
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
    for (int m = 0; m < MR; ++m)
      for (size_t p = 0; p < kP; ++p) {
        iacc[m][p][0] = hn::Add(iacc[m][p][0], iacc[m][p][1]);
        if constexpr (kIA == 4) iacc[m][p][0] = hn::Add(iacc[m][p][0], hn::Add(iacc[m][p][2], iacc[m][p][3]));
      }
    for (int m = 0; m < MR; ++m) {
      const VF dv = hn::Set(df, d[m * gs + g]), dsv = hn::Set(df, ds[m * gs + g]);
      for (size_t p = 0; p < kP; ++p) {
        const VF t = hn::MulAdd(o[p], dsv, yacc[m][p]);
        yacc[m][p] = hn::MulAdd(hn::Mul(s[p], dv), hn::ConvertTo(df, iacc[m][p][0]), t);
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
template <bool kWide>
HWY_NOINLINE void MicroI8x2(const uint8_t* HWY_RESTRICT codes0, const uint8_t* HWY_RESTRICT codes1,
                            const uint8_t* HWY_RESTRICT params0, const uint8_t* HWY_RESTRICT params1, size_t pb,
                            int64_t ng, int64_t G, const int8_t* HWY_RESTRICT a, int64_t as,
                            const float* HWY_RESTRICT d, const float* HWY_RESTRICT ds, int64_t gs,
                            float* HWY_RESTRICT y, int64_t ys, bool first) {
  constexpr int MR = 8;
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
    VI acc0[MR], acc1[MR];
    for (int m = 0; m < MR; ++m) acc0[m] = acc1[m] = hn::Zero(di);
    const uint8_t* c0 = codes0 + size_t(g * chunks) * kChunkBytes;
    const uint8_t* c1 = codes1 + size_t(g * chunks) * kChunkBytes;
    const int8_t* ag = a + g * G;
    for (int64_t c = 0; c < chunks; ++c) {
      const VU v0 = hn::Load(du, reinterpret_cast<const uint32_t*>(c0 + size_t(c) * kChunkBytes));
      const VU v1 = hn::Load(du, reinterpret_cast<const uint32_t*>(c1 + size_t(c) * kChunkBytes));
      const VI lo0 = hn::BitCast(di, hn::And(v0, m4)), hi0 = hn::BitCast(di, hn::And(hn::ShiftRight<4>(v0), m4));
      const VI lo1 = hn::BitCast(di, hn::And(v1, m4)), hi1 = hn::BitCast(di, hn::And(hn::ShiftRight<4>(v1), m4));
      for (int m = 0; m < MR; ++m) {
        const int8_t* am = ag + m * as + c * kChunkCols;
        acc0[m] = Dot4Mem(acc0[m], lo0, am);
        acc1[m] = Dot4Mem(acc1[m], lo1, am);
        acc0[m] = Dot4Mem(acc0[m], hi0, am + 4);
        acc1[m] = Dot4Mem(acc1[m], hi1, am + 4);
      }
    }
    VF s0, o0, s1, o1;
    LoadParams<kWide>(params0 + size_t(g) * pb, &s0, &o0);
    LoadParams<kWide>(params1 + size_t(g) * pb, &s1, &o1);
    for (int m = 0; m < MR; ++m) {
      const VF dv = hn::Set(df, d[m * gs + g]), dsv = hn::Set(df, ds[m * gs + g]);
      float* ym = y + m * ys;
      hn::StoreU(hn::MulAdd(hn::Mul(s0, dv), hn::ConvertTo(df, acc0[m]), hn::MulAdd(o0, dsv, hn::LoadU(df, ym))), df, ym);
      hn::StoreU(hn::MulAdd(hn::Mul(s1, dv), hn::ConvertTo(df, acc1[m]), hn::MulAdd(o1, dsv, hn::LoadU(df, ym + kL))),
                 df, ym + kL);
    }
  }
}

// Rounds to bf16 (nearest even; NaN not special-cased) and stores L values.
HWY_INLINE void StoreBF16(VF v, uint16_t* p) {
  const DU du;
  const DI di;
  const hn::Rebind<int16_t, DI> d16;
  const VU u = hn::BitCast(du, v);
  const VU r = hn::Add(u, hn::Add(hn::Set(du, 0x7FFFu), hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u))));
  hn::StoreU(hn::DemoteTo(d16, hn::ShiftRight<16>(hn::BitCast(di, r))), d16, reinterpret_cast<int16_t*>(p));
}

HWY_INLINE void StoreOut(VF v, DType t, void* base, size_t i) {
  const DF df;
  if (t == DType::F32) {
    hn::StoreU(v, df, static_cast<float*>(base) + i);
  } else if (t == DType::BF16) {
    StoreBF16(v, static_cast<uint16_t*>(base) + i);
  } else {
    const hn::Rebind<hwy::float16_t, DF> dh;
    hn::StoreU(hn::DemoteTo(dh, v), dh, static_cast<hwy::float16_t*>(base) + i);
  }
}

// SIMD twin of quantize_activations_i8 (repack.cc): the same operations lane by lane (max of |x|,
// one multiply, magic-number rounding, clamp), so the int8 activations and sums are identical.
// Returns false (caller falls back to the scalar one) when a group is not a multiple of the lanes.
bool QuantizeRowsI8(const PackedLinear& w, const float* xf, int64_t rows, int8_t* a, float* d_out, float* ds_out) {
  if (w.group % int64_t(kL) != 0) return false;
  const DF df;
  const DI di;
  const hn::Rebind<int8_t, DI> d8;
  const VF magic = hn::Set(df, 12582912.f), lo = hn::Set(df, -127.f), hi = hn::Set(df, 127.f);
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
        VF r = hn::Sub(hn::Add(hn::Mul(hn::LoadU(df, xg + j), inv), magic), magic);
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

template <bool kWide>
void RunTile(const PackedLinear& w, Path path, int64_t t, int64_t g0, int64_t ng, int64_t m0, int64_t mr,
             const KernelScratch& S, float* yrow0, int64_t np, bool first) {
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
      } else {
        MicroI8<R, kWide>(codes, params, pb, ng, w.group, S.a.data() + size_t(m * w.k_pad + g0 * w.group), w.k_pad,
                          S.d.data() + size_t(m * w.n_groups + g0), S.ds.data() + size_t(m * w.n_groups + g0),
                          w.n_groups, y, np, first);
      }
      m += R;
    };
    if (kMaxMR >= 8 && left >= 8) {
      call(std::integral_constant<int, (kMaxMR >= 8 ? 8 : 1)>());
    } else if (kMaxMR >= 4 && left >= 4) {
      call(std::integral_constant<int, (kMaxMR >= 4 ? 4 : 1)>());
    } else if (kMaxMR >= 2 && left >= 2) {
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
  if (path == Path::kInt8) {
    if (S.a.size() < size_t(m * kp)) S.a.resize(size_t(m * kp));
    if (S.d.size() < size_t(m * w.n_groups)) S.d.resize(size_t(m * w.n_groups)), S.ds.resize(size_t(m * w.n_groups));
  }
  // Activation pass (shared with the reference): widen, apply pqs, pad; quantize for int8.
  const int64_t row_tasks = std::min<int64_t>(m, 4 * threads);
  pool.run(row_tasks, [&](int64_t task, int) HWY_ATTR {
    const int64_t r0 = m * task / row_tasks, r1 = m * (task + 1) / row_tasks;
    float* xf = S.xf.data() + size_t(r0 * kp);
    pack_activations_f32(w, x, xt, r0, r1, xf);
    if (path == Path::kInt8) {
      int8_t* ar = S.a.data() + size_t(r0 * kp);
      float* dr = S.d.data() + size_t(r0 * w.n_groups);
      float* dsr = S.ds.data() + size_t(r0 * w.n_groups);
      if (!QuantizeRowsI8(w, xf, r1 - r0, ar, dr, dsr)) quantize_activations_i8(w, xf, r0, r1, ar, dr, dsr);
    }
  });
  // Blocking: a task owns TB tiles (all rows m). For m > kMaxMR the K loop is blocked (~1024 columns)
  // so the tiles' codes for one K block stay in L2 while every activation row block passes by.
  const int64_t kb = m <= kMaxMR ? w.n_groups : std::max<int64_t>(1, 1024 / w.group);
  const int64_t tb = std::clamp<int64_t>(w.n_tiles / (4 * threads), 1, 16);
  const int64_t n_tasks = (w.n_tiles + tb - 1) / tb;
  float* ys = S.y.data();
  pool.run(n_tasks, [&](int64_t task, int) HWY_ATTR {
    const int64_t t0 = task * tb, t1 = std::min(w.n_tiles, t0 + tb);
    for (int64_t g0 = 0; g0 < w.n_groups; g0 += kb) {
      const int64_t ng = std::min(kb, w.n_groups - g0);
      for (int64_t m0 = 0; m0 < m; m0 += kMaxMR) {
        const int64_t mr = std::min<int64_t>(kMaxMR, m - m0);
        for (int64_t t = t0; t < t1; ++t) {
          if constexpr (kP == 1) {
            if (path == Path::kInt8 && mr == 8 && t + 1 < t1) {
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
              if (w.wide)
                MicroI8x2<true>(cA, cB, pA, pB, pb, ng, w.group, am, w.k_pad, dm, dsm, w.n_groups, yt, np, g0 == 0);
              else
                MicroI8x2<false>(cA, cB, pA, pB, pb, ng, w.group, am, w.k_pad, dm, dsm, w.n_groups, yt, np, g0 == 0);
              ++t;
              continue;
            }
          }
          if (w.wide)
            RunTile<true>(w, path, t, g0, ng, m0, mr, S, ys, np, g0 == 0);
          else
            RunTile<false>(w, path, t, g0, ng, m0, mr, S, ys, np, g0 == 0);
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
#include "hwy/targets.h"

namespace awq::kernels {

HWY_EXPORT(GemmT);
HWY_EXPORT(DequantT);
HWY_EXPORT(TargetNameT);

void gemm_simd(const PackedLinear& w, const void* x, DType xt, int64_t m, void* y, DType yt, Path path,
               ThreadPool& pool) {
  HWY_DYNAMIC_DISPATCH(GemmT)(w, x, xt, m, y, yt, path, pool);
}

void dequantize_simd(const PackedLinear& w, DType out, int64_t r0, int64_t r1, void* dst, ThreadPool& pool) {
  HWY_DYNAMIC_DISPATCH(DequantT)(w, out, r0, r1, dst, pool);
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
