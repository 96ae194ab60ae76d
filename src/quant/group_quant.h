// Group-wise integer quantization of one weight row-group (internal to quant/).
//   zero point: range [min(lo,0), max(hi,0)] (0 always representable, so a one-signed group never
//     saturates as AutoAWQ's clamped zero makes it), s = max(range, 1e-5) / (2^b − 1),
//     z = clamp(−round(lo/s), 0, 2^b − 1), q = clamp(round(w/s) + z, 0, 2^b − 1).
//   symmetric: s = max(max|w|, 1e-5) / (2^(b−1) − 1), z = 2^(b−1).
//   Each step is rounded to f16 as AutoAWQ's torch fp16 arithmetic rounds it, so a group that
//   straddles 0 gets AutoAWQ's codes, scale and zero bit for bit. A constant group c ≠ 0 is stored
//   exactly (up to c's f16 rounding): s = |c|, q − z = ±1 (AutoAWQ turns 0.013 into 1e-5). Rounding
//   is to nearest, ties to even (torch.round).
#pragma once
#include <cstdint>

namespace awq::quant_detail {

struct QParams {
  int bits = 4;
  bool zero_point = true;
};

struct GroupQ {
  float scale = 0;  // an f16 value
  int zero = 0;
};

// Quantizes w[0, len): the range is [min·r_lo, max·r_hi] (clip ratios, 1 = none); codes may be null.
GroupQ quantize_group(const float* w, int64_t len, const QParams& p, float r_lo, float r_hi, uint8_t* codes);

// The code of one value w under a group's (scale, zero): zero point: clamp(round(w/s) + z, 0,
// 2^b − 1); symmetric: clamp(round(w/s), −2^(b−1), 2^(b−1) − 1) + 2^(b−1) (w/s rounded to f16
// first, as quantize_group does: the same formula, so its codes equal quantize_group's for the
// values it was fitted on). A zero scale (a constant group below f16's range) gives the code z.
uint8_t quantize_code(float w, const GroupQ& g, const QParams& p);

// w_q = s·(q − z) of the same group (f32 product of the f16 scale and the integer), into out.
void fake_quant_group(const float* w, int64_t len, const QParams& p, float r_lo, float r_hi, float* out);

// Rounds to f16 and back.
float to_f16(float x);

}  // namespace awq::quant_detail
