// Element types as safetensors names them, and exact conversions between f32 and the 16-bit floats.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace awq {

enum class DType : uint8_t {
  BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64,
  F8_E4M3, F8_E5M2, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, C64,
};

// Size of one element in bytes (all supported dtypes are whole bytes).
size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // "F16", "I32", ...
std::optional<DType> parse_dtype(std::string_view s);
// CLI names, any case: "f16"/"fp16"/"float16", "bf16"/"bfloat16", "f32"/"fp32"/"float32"
// (so "F16", the spelling dtype_name prints, is accepted too).
std::optional<DType> parse_float_dtype_cli(std::string_view s);
bool is_float(DType t);
// PyTorch's names as config.json's `torch_dtype` writes them: "float16" / "bfloat16" / "float32"
// (also "half", "float") <-> DType. Other dtypes print as dtype_name(); parsing them gives nullopt.
std::string torch_dtype_name(DType t);
std::optional<DType> parse_torch_dtype(std::string_view s);

// --- 16-bit float conversions. f16/bf16 -> f32 are exact. f32 -> f16/bf16 round to nearest even,
// NaN stays NaN (quiet), overflow goes to +-Inf, f16 subnormals are produced exactly.
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Loads element i of a little-endian buffer of dtype t as double (integers and floats).
double load_as_double(const uint8_t* data, DType t, size_t i);
// Loads element i of a float buffer (F16, BF16, F32) as float. Exact for all three.
float load_float(const uint8_t* data, DType t, size_t i);
// Stores f into element i of a float buffer (F16, BF16, F32) with one RNE rounding.
void store_float(uint8_t* data, DType t, size_t i, float f);

}  // namespace awq
