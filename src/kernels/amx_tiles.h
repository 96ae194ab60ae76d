// AMX tile configuration shared by the AMX kernels (amx_kernels.cc: int16 path on AMX-INT8;
// amx_bf16_gemm.cc: dense bf16 GEMM on AMX-BF16). Intel SDM: LDTILECFG, palette 1.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace awq::kernels {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row of tmm0..15
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

// g++ 12's _tile_loadconfig declares only 8 bytes of its operand read, and _tile_loadd no memory
// read at all: the compiler barrier keeps the config (and, at the call sites, data written for
// tile loads) written first.
__attribute__((target("amx-tile"))) inline void load_tile_config(const TileConfig& c) {
  asm volatile("" ::: "memory");
  _tile_loadconfig(&c);
}

}  // namespace awq::kernels
