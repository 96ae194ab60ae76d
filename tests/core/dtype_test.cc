#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "awq/dtype.h"

namespace awq {
namespace {

// Independent oracle: round a double to binary16 by scanning neighbours (slow, obviously right).
uint16_t f16_oracle(float f) {
  if (std::isnan(f)) return 0x7e00;
  const double x = f;
  uint16_t best = 0;
  double best_err = INFINITY;
  // candidates: all finite f16 of the same sign
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (std::fabs(x) >= 65520.0) return sign | 0x7c00;
  for (uint32_t m = 0; m < 0x7c00; ++m) {
    const double v = double(f16_to_f32(uint16_t(m)));
    const double err = std::fabs(std::fabs(x) - v);
    if (err < best_err || (err == best_err && (m & 1) == 0)) {
      best_err = err;
      best = uint16_t(m);
    }
  }
  return sign | best;
}

TEST(DType, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "h=" << h << " f=" << f;
  }
}

TEST(DType, F16KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);             // tie to even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);             // 1.5 ulp: tie to even (2)
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie to even down
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie to even up
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
}

TEST(DType, F16RoundingMatchesOracleOnRandomAndHalfwayValues) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 3000; ++i) {
    uint32_t u = bits(rng);
    // bias towards the f16 range and exact halfway points
    u = (u & 0x8fffffffu) | (uint32_t(100 + (i % 44)) << 23);
    if (i % 3 == 0) u = (u & ~0x1fffu) | 0x1000u;
    float f;
    std::memcpy(&f, &u, 4);
    ASSERT_EQ(f32_to_f16(f), f16_oracle(f)) << "f=" << f;
  }
}

TEST(DType, BF16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  float f;
  uint32_t u = 0x3f808000u;  // exactly halfway between 0x3f80 and 0x3f81 -> even 0x3f80
  std::memcpy(&f, &u, 4);
  EXPECT_EQ(f32_to_bf16(f), 0x3f80);
  u = 0x3f818000u;  // halfway between 0x3f81 and 0x3f82 -> 0x3f82
  std::memcpy(&f, &u, 4);
  EXPECT_EQ(f32_to_bf16(f), 0x3f82);
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float v = bf16_to_f32(uint16_t(h));
    if (!std::isnan(v)) ASSERT_EQ(f32_to_bf16(v), h);
  }
}

TEST(DType, ParseNames) {
  EXPECT_EQ(parse_dtype("BF16"), DType::BF16);
  EXPECT_EQ(parse_dtype("I32"), DType::I32);
  EXPECT_FALSE(parse_dtype("Q4_K").has_value());
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  EXPECT_EQ(parse_float_dtype_cli("bf16"), DType::BF16);
}

}  // namespace
}  // namespace awq
