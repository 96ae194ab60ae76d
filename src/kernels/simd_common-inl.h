// Per-target helpers shared by the SIMD kernel translation units (quant_kernels.cc,
// dequant_kernels.cc): vector types, the params loader, and rounding stores. Included once per
// Highway target (the toggle guard below), inside each unit's foreach_target pass.
#if defined(AWQ_KERNELS_SIMD_COMMON_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef AWQ_KERNELS_SIMD_COMMON_INL_H_
#undef AWQ_KERNELS_SIMD_COMMON_INL_H_
#else
#define AWQ_KERNELS_SIMD_COMMON_INL_H_
#endif

#include <hwy/highway.h>

#include "awq/dtype.h"
#include "awq/kernels.h"

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

}  // namespace HWY_NAMESPACE
}  // namespace awq::kernels
HWY_AFTER_NAMESPACE();

#endif  // AWQ_KERNELS_SIMD_COMMON_INL_H_
