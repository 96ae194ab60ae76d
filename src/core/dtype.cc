#include "awq/dtype.h"

#include <array>
#include <cctype>
#include <cmath>

namespace awq {
namespace {
struct DTypeInfo {
  DType t;
  std::string_view name;
  size_t size;
};
constexpr std::array<DTypeInfo, 19> kInfo{{
    {DType::BOOL, "BOOL", 1},   {DType::U8, "U8", 1},
    {DType::I8, "I8", 1},       {DType::I16, "I16", 2},
    {DType::U16, "U16", 2},     {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},   {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},     {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},     {DType::I64, "I64", 8},
    {DType::U64, "U64", 8},     {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1}, {DType::F8_E8M0, "F8_E8M0", 1},
    {DType::F8_E4M3FNUZ, "F8_E4M3FNUZ", 1}, {DType::F8_E5M2FNUZ, "F8_E5M2FNUZ", 1},
    {DType::C64, "C64", 8},
}};
}  // namespace

size_t dtype_size(DType t) { return kInfo[size_t(t)].size; }
std::string_view dtype_name(DType t) { return kInfo[size_t(t)].name; }

std::optional<DType> parse_dtype(std::string_view s) {
  for (const auto& i : kInfo)
    if (i.name == s) return i.t;
  return std::nullopt;
}

std::optional<DType> parse_float_dtype_cli(std::string_view name) {
  std::string s(name);
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (s == "f16" || s == "fp16" || s == "float16") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "f32" || s == "fp32" || s == "float32") return DType::F32;
  return std::nullopt;
}

bool is_float(DType t) {
  return t == DType::F16 || t == DType::BF16 || t == DType::F32 || t == DType::F64;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal: value = man * 2^-24, exact in f32
    float f = std::ldexp(float(man), -24);
    std::memcpy(&u, &f, 4);
    u |= sign;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00 | uint16_t((a >> 13) & 0x3ff);  // NaN, quiet
  if (a >= 0x477ff000u) return sign | 0x7c00;  // >= 65520 rounds to Inf (or is Inf)
  if (a < 0x38800000u) {  // below the smallest normal f16 (2^-14): subnormal or zero
    // value in units of 2^-24, rounded to nearest even. a < 2^-14 so the result fits 10 bits+carry.
    const uint32_t exp = a >> 23;
    if (exp < 102) return sign;  // < 2^-25: rounds to zero (2^-25 exactly handled below)
    const uint32_t man = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 24-bit mantissa -> units of 2^-24
    uint32_t q = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return sign | uint16_t(q);
  }
  // normal: rebias exponent, round mantissa from 23 to 10 bits, carry may bump the exponent
  uint32_t v = a - (112u << 23);
  v += 0xfffu + ((v >> 13) & 1u);
  return sign | uint16_t(v >> 13);
}

double load_as_double(const uint8_t* data, DType t, size_t i) {
  const uint8_t* p = data + i * dtype_size(t);
  switch (t) {
    case DType::BOOL: case DType::U8: return double(*p);
    case DType::I8: return double(int8_t(*p));
    case DType::I16: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case DType::U16: { uint16_t v; std::memcpy(&v, p, 2); return v; }
    case DType::I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case DType::U32: { uint32_t v; std::memcpy(&v, p, 4); return v; }
    case DType::I64: { int64_t v; std::memcpy(&v, p, 8); return double(v); }
    case DType::U64: { uint64_t v; std::memcpy(&v, p, 8); return double(v); }
    case DType::F64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::F16: case DType::BF16: case DType::F32: return load_float(data, t, i);
    default: return std::nan("");
  }
}

float load_float(const uint8_t* data, DType t, size_t i) {
  switch (t) {
    case DType::F16: { uint16_t h; std::memcpy(&h, data + 2 * i, 2); return f16_to_f32(h); }
    case DType::BF16: { uint16_t h; std::memcpy(&h, data + 2 * i, 2); return bf16_to_f32(h); }
    case DType::F32: { float f; std::memcpy(&f, data + 4 * i, 4); return f; }
    default: return float(load_as_double(data, t, i));
  }
}

void store_float(uint8_t* data, DType t, size_t i, float f) {
  switch (t) {
    case DType::F16: { uint16_t h = f32_to_f16(f); std::memcpy(data + 2 * i, &h, 2); break; }
    case DType::BF16: { uint16_t h = f32_to_bf16(f); std::memcpy(data + 2 * i, &h, 2); break; }
    case DType::F32: std::memcpy(data + 4 * i, &f, 4); break;
    default: break;
  }
}

std::string torch_dtype_name(DType t) {
  switch (t) {
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    case DType::F32: return "float32";
    default: return std::string(dtype_name(t));
  }
}

std::optional<DType> parse_torch_dtype(std::string_view s) {
  if (s == "float16" || s == "half") return DType::F16;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float32" || s == "float") return DType::F32;
  return std::nullopt;
}

}  // namespace awq
