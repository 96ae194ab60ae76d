// Causal self-attention of one whole sequence as blocked GEMMs (model_ops.h, causal_attention),
// compiled per Highway target like model_ops.cc. Scores S = Q·Kᵀ and the product P·V are register
// tiles of MR query rows × two vectors (keys for S, head dimensions for P·V): per reduction step
// one or two vector loads and MR broadcasts feed 2·MR FMAs, no horizontal sums (the per-token
// attention() needs one per key).
//
// The bf16 variant (model_ops.h, causal_attention_bf16) runs the same tiles on inputs rounded to
// bf16 once (K into the panel, V into its copy, Q into scratch; kept as f32, so each FMA adds an
// exact product) with each probability rounded to bf16 before the row's sum; where AMX-BF16 runs,
// amx_attention.cc runs instead (causal_attention_bf16 below picks).
#include <algorithm>
#include <cmath>
#include <limits>

#include "awq/model_ops.h"
#include "kernels/internal.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/causal_attention.cc"
#include "kernels/hwy_config.h"
// clang-format off
#include <hwy/foreach_target.h>
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on
#include "kernels/simd_common-inl.h"  // DF, VF, kL

HWY_BEFORE_NAMESPACE();
namespace awq::kernels {
namespace HWY_NAMESPACE {

#if HWY_TARGET <= HWY_AVX3 && HWY_ARCH_X86
constexpr int kAttMR = 8;  // 16 accumulators of 32 registers
#else
constexpr int kAttMR = 4;
#endif
constexpr int64_t kAttNR = 2 * int64_t(kL);  // keys per K panel

// S[r][j0 .. j0+NR) = Σ_d q_r[d]·K[j0+j][d] for MR query rows (row r at q + r·qs); the K panel is
// d-major: panel[d·NR + j].
template <int MR>
HWY_INLINE void ScoreMicro(const float* HWY_RESTRICT q, int64_t qs, const float* HWY_RESTRICT panel, int64_t hd, float* HWY_RESTRICT s,
                           int64_t ss) {
  const DF df;
  VF a0[MR], a1[MR];
  for (int r = 0; r < MR; ++r) a0[r] = a1[r] = hn::Zero(df);
  for (int64_t d = 0; d < hd; ++d) {
    const VF k0 = hn::LoadU(df, panel + d * kAttNR), k1 = hn::LoadU(df, panel + d * kAttNR + kL);
    for (int r = 0; r < MR; ++r) {
      const VF x = hn::Set(df, q[r * qs + d]);
      a0[r] = hn::MulAdd(k0, x, a0[r]);
      a1[r] = hn::MulAdd(k1, x, a1[r]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    hn::StoreU(a0[r], df, s + r * ss);
    hn::StoreU(a1[r], df, s + r * ss + kL);
  }
}

// out_r[d0 .. d0+NV·kL) = inv_r · Σ_{j in [j0, j1)} P[r][j]·V[j][d0 ..] for MR rows.
template <int MR, int NV>
HWY_INLINE void ValueMicro(const float* HWY_RESTRICT p, int64_t ps, const float* HWY_RESTRICT v, int64_t vs, int64_t j0, int64_t j1,
                           const float* inv, float* HWY_RESTRICT out, int64_t os) {
  const DF df;
  VF acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NV; ++c) acc[r][c] = hn::Zero(df);
  for (int64_t j = j0; j < j1; ++j) {
    VF vv[NV];
    for (int c = 0; c < NV; ++c) vv[c] = hn::LoadU(df, v + j * vs + c * kL);
    for (int r = 0; r < MR; ++r) {
      const VF x = hn::Set(df, p[r * ps + j]);
      for (int c = 0; c < NV; ++c) acc[r][c] = hn::MulAdd(vv[c], x, acc[r][c]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NV; ++c) hn::StoreU(hn::Mul(acc[r][c], hn::Set(df, inv[r])), df, out + r * os + c * kL);
}

// v rounded to bf16 (nearest even, NaN quieted: f32_to_bf16) and widened back to f32.
HWY_INLINE VF RoundBf16(VF v) {
  const DF df;
  const DU du;
  const VU u = hn::BitCast(du, v);
  const VU r = hn::Add(u, hn::Add(hn::Set(du, 0x7fffu), hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u))));
  const VU q = hn::Or(u, hn::Set(du, 0x400000u));  // quiet NaN, as f32_to_bf16's (u >> 16) | 0x40
  return hn::BitCast(df, hn::And(hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), q, r), hn::Set(du, 0xffff0000u)));
}

// Row softmax in place over s[lo, hi) (scores times scale), zeros over [z0, lo) and [hi, z1);
// returns 1 / Σ exp (the caller scales the P·V sums by it). kRound: each exp rounded to bf16
// before it is stored and summed (the bf16 contract).
template <bool kRound = false>
HWY_INLINE float SoftmaxRow(float* s, int64_t z0, int64_t lo, int64_t hi, int64_t z1, float scale) {
  const DF df;
  const VF vs = hn::Set(df, scale);
  float mx = -std::numeric_limits<float>::infinity();
  int64_t j = lo;
  if (hi - lo >= int64_t(kL)) {
    VF vm = hn::Set(df, mx);
    for (; j + int64_t(kL) <= hi; j += int64_t(kL)) {
      const VF x = hn::Mul(hn::LoadU(df, s + j), vs);
      hn::StoreU(x, df, s + j);
      vm = hn::Max(vm, x);
    }
    mx = hn::GetLane(hn::MaxOfLanes(df, vm));
  }
  for (; j < hi; ++j) mx = std::max(mx, s[j] *= scale);
  const VF vmx = hn::Set(df, mx);
  VF acc = hn::Zero(df);
  for (j = lo; j + int64_t(kL) <= hi; j += int64_t(kL)) {
    VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, s + j), vmx));
    if constexpr (kRound) e = RoundBf16(e);
    hn::StoreU(e, df, s + j);
    acc = hn::Add(acc, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, acc));
  for (; j < hi; ++j) {
    const float e = std::exp(s[j] - mx);
    sum += (s[j] = kRound ? bf16_to_f32(f32_to_bf16(e)) : e);
  }
  std::fill(s + z0, s + lo, 0.0f);
  std::fill(s + hi, s + z1, 0.0f);
  return 1.0f / sum;
}

template <int MR, bool kRound = false>
void QueryTile(const float* q, int64_t qs, const float* kp, int64_t hd, const float* v, int64_t vs, int64_t i0, int64_t window,
               float scale, float* s, int64_t ss, float* out, int64_t os) {
  const int64_t last = i0 + MR;  // keys < last are visible to some row
  const int64_t first = window > 0 ? std::max<int64_t>(0, i0 + 1 - window) : 0;
  const int64_t p0 = first / kAttNR, p1 = (last + kAttNR - 1) / kAttNR;
  for (int64_t p = p0; p < p1; ++p) ScoreMicro<MR>(q, qs, kp + p * hd * kAttNR, hd, s + p * kAttNR, ss);
  float inv[MR];
  for (int r = 0; r < MR; ++r) {
    const int64_t i = i0 + r, lo = window > 0 ? std::max<int64_t>(0, i + 1 - window) : 0;
    inv[r] = SoftmaxRow<kRound>(s + r * ss, first, lo, i + 1, last, scale);
  }
  int64_t d = 0;
  if constexpr (MR % 4 == 0)  // 4 rows × 4 vectors: half the broadcasts of 8 × 2, P read once per 4·kL dims
    for (; d + 4 * int64_t(kL) <= hd; d += 4 * int64_t(kL))
      for (int r = 0; r < MR; r += 4) ValueMicro<4, 4>(s + r * ss, ss, v + d, vs, first, last, inv + r, out + r * os + d, os);
  for (; d + 2 * int64_t(kL) <= hd; d += 2 * int64_t(kL)) ValueMicro<MR, 2>(s, ss, v + d, vs, first, last, inv, out + d, os);
  for (; d + int64_t(kL) <= hd; d += int64_t(kL)) ValueMicro<MR, 1>(s, ss, v + d, vs, first, last, inv, out + d, os);
  for (; d < hd; ++d)
    for (int r = 0; r < MR; ++r) {
      float acc = 0;
      for (int64_t j = first; j < last; ++j) acc += s[r * ss + j] * v[j * vs + d];
      out[r * os + d] = acc * inv[r];
    }
}

// kBf16: q, k and v rounded to bf16 first (qr: len × group·hd floats of scratch past the f32 layout).
template <bool kBf16>
void CausalAttentionImpl(const float* q, int64_t q_stride, int64_t group, int64_t hd, const float* k, const float* v, int64_t kv_stride,
                         int64_t len, int64_t window, float scale, float* out, int64_t out_stride, float* scratch) {
  const int64_t panels = (len + kAttNR - 1) / kAttNR, lp = panels * kAttNR;
  float* kp = scratch;             // [panel][d][NR], zero past len
  float* s = scratch + lp * hd;    // [MR][lp] scores, then probabilities
  float* vc = s + 8 * lp;          // [len][hd]: V rows contiguous (strided rows alias in L1)
  const auto in = [](float x) { return kBf16 ? bf16_to_f32(f32_to_bf16(x)) : x; };
  for (int64_t j = 0; j < len; ++j)
    for (int64_t d = 0; d < hd; ++d) vc[j * hd + d] = in(v[j * kv_stride + d]);
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t d = 0; d < hd; ++d)
      for (int64_t j = 0; j < kAttNR; ++j) {
        const int64_t key = p * kAttNR + j;
        kp[(p * hd + d) * kAttNR + j] = key < len ? in(k[key * kv_stride + d]) : 0.0f;
      }
  if constexpr (kBf16) {  // Q rounded into scratch, rows of group·hd
    float* qr = vc + lp * hd;
    for (int64_t i = 0; i < len; ++i)
      for (int64_t c = 0; c < group * hd; ++c) qr[i * group * hd + c] = in(q[i * q_stride + c]);
    q = qr;
    q_stride = group * hd;
  }
  for (int64_t g = 0; g < group; ++g) {
    const float* qg = q + g * hd;
    float* og = out + g * hd;
    int64_t i = 0;
    for (; i + kAttMR <= len; i += kAttMR)
      QueryTile<kAttMR, kBf16>(qg + i * q_stride, q_stride, kp, hd, vc, hd, i, window, scale, s, lp, og + i * out_stride, out_stride);
    for (; i < len; ++i)
      QueryTile<1, kBf16>(qg + i * q_stride, q_stride, kp, hd, vc, hd, i, window, scale, s, lp, og + i * out_stride, out_stride);
  }
}

void CausalAttentionT(const float* q, int64_t q_stride, int64_t group, int64_t hd, const float* k, const float* v, int64_t kv_stride,
                      int64_t len, int64_t window, float scale, float* out, int64_t out_stride, float* scratch) {
  CausalAttentionImpl<false>(q, q_stride, group, hd, k, v, kv_stride, len, window, scale, out, out_stride, scratch);
}

void CausalAttentionBf16T(const float* q, int64_t q_stride, int64_t group, int64_t hd, const float* k, const float* v, int64_t kv_stride,
                          int64_t len, int64_t window, float scale, float* out, int64_t out_stride, float* scratch) {
  CausalAttentionImpl<true>(q, q_stride, group, hd, k, v, kv_stride, len, window, scale, out, out_stride, scratch);
}

}  // namespace HWY_NAMESPACE
}  // namespace awq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace awq::kernels {
HWY_EXPORT(CausalAttentionT);
HWY_EXPORT(CausalAttentionBf16T);

size_t causal_attention_scratch(int64_t len, int64_t head_dim) {
  const int64_t lp = (len + 63) / 64 * 64;  // panels of at most 64 keys on every target
  return size_t(lp * (2 * head_dim + 8));
}

void causal_attention(const float* q, int64_t q_stride, int64_t group, int64_t head_dim, const float* k, const float* v,
                      int64_t kv_stride, int64_t len, int64_t window, float scale, float* out, int64_t out_stride, float* scratch) {
  HWY_DYNAMIC_DISPATCH(CausalAttentionT)(q, q_stride, group, head_dim, k, v, kv_stride, len, window, scale, out, out_stride, scratch);
}

size_t causal_attention_bf16_scratch(int64_t len, int64_t group, int64_t head_dim) {
  const size_t hwy = causal_attention_scratch(len, head_dim) + size_t(len * group * head_dim);
  return std::max(hwy, amx_attention_bf16_scratch(len, group, head_dim));
}

void causal_attention_bf16(const float* q, int64_t q_stride, int64_t group, int64_t head_dim, const float* k, const float* v,
                           int64_t kv_stride, int64_t len, int64_t window, float scale, float* out, int64_t out_stride, float* scratch) {
  if (amx_bf16_available())
    amx_causal_attention_bf16(q, q_stride, group, head_dim, k, v, kv_stride, len, window, scale, out, out_stride, scratch);
  else
    HWY_DYNAMIC_DISPATCH(CausalAttentionBf16T)(q, q_stride, group, head_dim, k, v, kv_stride, len, window, scale, out, out_stride, scratch);
}

}  // namespace awq::kernels
#endif  // HWY_ONCE
