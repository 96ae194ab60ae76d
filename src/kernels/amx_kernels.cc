// Path::kInt16 on Intel AMX-INT8 (TDPBSUD tile dot products), for GEMMs of kAmxMinRows rows or more
// where amx_available() (our own CPUID/XGETBV check, the kernel's permission for tile state, and a
// self-test). Hand-written intrinsics in functions compiled for AMX + AVX-512 alone (target
// attribute, not -m flags: the library still runs on CPUs without them), reached only through
// gemm_simd after that check; everywhere else the int16 VNNI/maddubs micro-kernels run.
//
// Why the layout fits (include/awq/kernels.h "Layout"): a 64-byte chunk holds, for 16 rows, columns
// 8c..8c+3 in its low nibbles and 8c+4..8c+7 in its high nibbles, byte 4r+b for row r. AMX's B tile
// wants 16 columns n × 4 consecutive k per 64-byte row: (chunk & 0x0F) is B row 2c and (chunk >> 4)
// B row 2c+1. So a tile's codes unpack to u8 B rows once per K block and serve every 16-row block
// of activations. The activations are the int16 path's two int8 planes (hi, lo), row-major: each
// is an A tile (16 rows × Ks bytes). Codes are unsigned and planes signed: TDPBSUD.
//
// Exactness: each group's Σq·hi and Σq·lo are int32 sums (exact in any order), stored after the
// group and combined with the group's scales by the same f32 operations as gemm_ref:
//   y = fma(s·d, fma(float(Σq·hi), 256, float(Σq·lo)), fma(o, d·Σr, y))
// so the result equals gemm_ref(..., Path::kInt16) bit for bit on all data.
//
// Tiles (8 registers): tmm0/1 = C (hi, lo) of tile t, tmm2/3 = C (hi, lo) of tile t+1, tmm4/5 = A
// (hi, lo), tmm6/7 = B of tiles t, t+1. A group of G columns is nsteps K steps of Ks = G/nsteps
// columns (Ks <= 64, a multiple of 4; G = 128: two steps of 64, G = 32: one of 32).
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "awq/kernels.h"
#include "kernels/internal.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // g++ 12's AVX-512 intrinsics (GCC bug 105593)
#endif

#define AWQ_AMX_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq")))

namespace awq::kernels {

namespace {

// ---- tile configuration (Intel SDM: LDTILECFG, palette 1) ----
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row of tmm0..15
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

TileConfig make_config(int ks) {
  TileConfig c;
  for (int i = 0; i < 4; ++i) c.rows[i] = 16, c.colsb[i] = 64;  // C: 16 × 16 int32
  for (int i = 4; i < 6; ++i) c.rows[i] = 16, c.colsb[i] = uint16_t(ks);  // A: 16 rows × Ks int8
  for (int i = 6; i < 8; ++i) c.rows[i] = uint8_t(ks / 4), c.colsb[i] = 64;  // B: Ks/4 rows × 16·4 u8
  return c;
}

// g++ 12's _tile_loadconfig declares only 8 bytes of its operand read, and _tile_loadd no memory
// read at all: the compiler barriers below keep the config and the unpacked B rows written first.
AWQ_AMX_TARGET inline void load_config(const TileConfig& c) {
  asm volatile("" ::: "memory");
  _tile_loadconfig(&c);
}

// Steps of one group: the fewest K steps of equal width Ks <= 64, Ks a multiple of 4 (G is a
// multiple of 8, so Ks = 4 always divides it).
int group_steps(int64_t G) {
  for (int64_t n = (G + 63) / 64;; ++n)
    if (G % n == 0 && (G / n) % 4 == 0) return int(n);
}

// ---- our own CPU and OS check ----
std::atomic<bool> g_amx_forced_off{false};

AWQ_AMX_TARGET bool self_test() {
  // One 16 × 64 × 16 TDPBSUD on values that exercise signs and every code, against plain integers.
  alignas(64) int8_t a[16 * 64];
  alignas(64) uint8_t b[16 * 64];
  alignas(64) int32_t c[16 * 16];
  for (int i = 0; i < 16 * 64; ++i) {
    a[i] = int8_t((i * 37 + 11) % 256 - 128);
    b[i] = uint8_t((i * 13 + 5) % 16);
  }
  TileConfig cfg = make_config(64);
  load_config(cfg);
  _tile_zero(0);
  asm volatile("" ::: "memory");
  _tile_loadd(4, a, 64);
  _tile_loadd(6, b, 64);
  _tile_dpbsud(0, 4, 6);
  _tile_stored(0, c, 64);
  _tile_release();
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      int32_t want = 0;
      for (int k = 0; k < 64; ++k) want += int32_t(a[m * 64 + k]) * int32_t(b[(k / 4) * 64 + n * 4 + k % 4]);
      if (want != c[m * 16 + n]) return false;
    }
  return true;
}

// CPUID leaf 7.0: EDX bit 24 (amx-tile), 25 (amx-int8); EBX bits 16, 17, 30, 31 (avx512 f, dq,
// bw, vl: the epilogue). XCR0 (XGETBV, needs OSXSAVE) bits 1, 2, 5-7 (SSE/AVX/AVX-512 state) and
// 17, 18 (XTILECFG, XTILEDATA). Linux then grants the 8 KiB tile data state per process on request
// (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 18; kernel 5.16+). Empty when all is there.
std::string missing_amx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return "CPU lacks CPUID leaf 1";
  const bool osxsave = (c >> 27) & 1u;
  unsigned b7 = 0, d7 = 0;
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    b7 = b;
    d7 = d;
  }
  std::string miss;
  auto need = [&](bool have, const char* f) {
    if (!have) miss += miss.empty() ? f : std::string(", ") + f;
  };
  need((d7 >> 24) & 1u, "amx_tile");
  need((d7 >> 25) & 1u, "amx_int8");
  need((b7 >> 16) & 1u, "avx512f");
  need((b7 >> 17) & 1u, "avx512dq");
  need((b7 >> 30) & 1u, "avx512bw");
  need((b7 >> 31) & 1u, "avx512vl");
  if (!miss.empty()) return "CPU lacks " + miss;
  if (!osxsave) return "OS lacks XSAVE support (OSXSAVE)";
  unsigned lo = 0, hi = 0;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0xE6u) != 0xE6u) return "OS does not enable AVX-512 register state (XCR0)";
  if ((lo & 0x60000u) != 0x60000u) return "OS does not enable AMX tile state (XCR0 bits 17, 18)";
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
    return std::string("OS refused AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM: ") + std::strerror(errno) + ")";
#else
  return "AMX needs Linux's arch_prctl permission request";
#endif
  if (!self_test()) return "AMX self-test gave a wrong TDPBSUD result";
  return {};
}

const std::string& amx_missing_cached() {
  static const std::string s = missing_amx();  // thread-safe, once per process
  return s;
}

// ---- the kernel ----

// u8 B rows of `chunks` chunks from one tile's code stream: row 2c = low nibbles, 2c+1 = high.
AWQ_AMX_TARGET inline void unpack_b(const uint8_t* codes, int64_t chunks, uint8_t* dst) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int64_t c = 0; c < chunks; ++c) {
    const __m512i v = _mm512_load_si512(codes + c * kChunkBytes);
    _mm512_store_si512(dst + (2 * c) * 64, _mm512_and_si512(v, m4));
    _mm512_store_si512(dst + (2 * c + 1) * 64, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
  }
}

// Scale and offset of the 16 rows of (tile t, group g), as group_params computes them.
AWQ_AMX_TARGET inline void load_params(const PackedLinear& w, int64_t t, int64_t g, __m512& s, __m512& o) {
  const uint8_t* pp = w.params.data() + size_t(t * w.n_groups + g) * w.param_bytes();
  if (w.wide) {
    s = _mm512_loadu_ps(pp);
    o = _mm512_loadu_ps(pp + 64);
  } else {
    s = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pp)));
    const __m512 z = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pp + 32))));
    o = _mm512_xor_ps(_mm512_mul_ps(s, z), _mm512_set1_ps(-0.f));  // o = −(s·z), exact negation
  }
}

// One group's C tiles (cb: [hi, lo] int32 16 × 16 each) into y rows [0, rows) of tile t:
// y = fma(s·d, fma(float(hi), 256, float(lo)), fma(o, ds, y)), y starting at +0 when first.
AWQ_AMX_TARGET inline void combine(const int32_t* cb, __m512 s, __m512 o, const float* d, const float* ds, int64_t gs,
                                   int64_t rows, float* y, int64_t ys, bool first) {
  const __m512 k256 = _mm512_set1_ps(256.f);
  for (int64_t r = 0; r < rows; ++r) {
    const __m512 hi = _mm512_cvtepi32_ps(_mm512_load_si512(cb + r * 16));
    const __m512 lo = _mm512_cvtepi32_ps(_mm512_load_si512(cb + 256 + r * 16));
    const __m512 dot = _mm512_fmadd_ps(hi, k256, lo);
    float* yr = y + r * ys;
    const __m512 yv = first ? _mm512_setzero_ps() : _mm512_loadu_ps(yr);
    const __m512 t = _mm512_fmadd_ps(o, _mm512_set1_ps(ds[r * gs]), yv);
    _mm512_storeu_ps(yr, _mm512_fmadd_ps(_mm512_mul_ps(s, _mm512_set1_ps(d[r * gs])), dot, t));
  }
}

// Per-thread scratch: unpacked B rows of two tiles over one K block, and the C tiles of a group.
struct AmxScratch {
  std::vector<uint8_t> b;  // over-allocated by 64 for alignment
  alignas(64) int32_t c[4 * 256];
  uint8_t* b_aligned(size_t bytes) {
    if (b.size() < bytes + 64) b.resize(bytes + 64);
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(b.data()) + 63) & ~uintptr_t(63));
  }
};

// NT (1 or 2) tiles from t, groups [g0, g0 + ng), every 16-row block of m rows.
template <int NT>
AWQ_AMX_TARGET void block(const PackedLinear& w, const AmxOperands& op, int64_t t, int64_t g0, int64_t ng, int ks,
                          int nsteps, AmxScratch& S, float* y, int64_t ys) {
  const int64_t G = w.group, kp = w.k_pad, chunks = ng * (G / kChunkCols);
  const size_t tile_b = size_t(chunks) * 2 * 64;  // u8 B rows of one tile for the block
  uint8_t* b = S.b_aligned(NT * tile_b);
  for (int j = 0; j < NT; ++j)
    unpack_b(w.codes.data() + size_t(t + j) * w.tile_code_bytes() + size_t(g0 * (G / kChunkCols)) * kChunkBytes, chunks,
             b + j * tile_b);
  asm volatile("" ::: "memory");
  for (int64_t m0 = 0; m0 < op.m; m0 += 16) {
    const int64_t rows = std::min<int64_t>(16, op.m - m0);
    const int8_t* ah = op.hi + m0 * kp;
    const int8_t* al = op.lo + m0 * kp;
    for (int64_t g = g0; g < g0 + ng; ++g) {
      _tile_zero(0);
      _tile_zero(1);
      if (NT == 2) {
        _tile_zero(2);
        _tile_zero(3);
      }
      for (int st = 0; st < nsteps; ++st) {
        const int64_t col = g * G + st * ks;  // packed column of this step
        const uint8_t* bk = b + size_t((col - g0 * G) / 4) * 64;
        _tile_loadd(4, ah + col, kp);
        _tile_loadd(5, al + col, kp);
        _tile_loadd(6, bk, 64);
        _tile_dpbsud(0, 4, 6);
        _tile_dpbsud(1, 5, 6);
        if (NT == 2) {
          _tile_loadd(7, bk + tile_b, 64);
          _tile_dpbsud(2, 4, 7);
          _tile_dpbsud(3, 5, 7);
        }
      }
      _tile_stored(0, S.c, 64);
      _tile_stored(1, S.c + 256, 64);
      if (NT == 2) {
        _tile_stored(2, S.c + 512, 64);
        _tile_stored(3, S.c + 768, 64);
      }
      const float* d = op.d + m0 * w.n_groups + g;
      const float* ds = op.ds + m0 * w.n_groups + g;
      for (int j = 0; j < NT; ++j) {
        __m512 s, o;
        load_params(w, t + j, g, s, o);
        combine(S.c + j * 512, s, o, d, ds, w.n_groups, rows, y + m0 * ys + (t + j) * kPackRows, ys, g == 0);
      }
    }
  }
}

}  // namespace

bool amx_available(std::string* why_not) {
  std::string why;
  if (g_amx_forced_off.load()) {
    why = "AMX-INT8 forced off (force_amx_unavailable)";
  } else {
    why = amx_missing_cached();
  }
  if (why.empty()) return true;
  if (why_not) *why_not = why;
  return false;
}

void force_amx_unavailable(bool unavailable) { g_amx_forced_off.store(unavailable); }

std::atomic<uint64_t>& amx_tile_calls() {
  static std::atomic<uint64_t> n{0};
  return n;
}

AWQ_AMX_TARGET void amx_int16_tiles(const PackedLinear& w, const AmxOperands& op, int64_t t0, int64_t t1, float* y,
                                    int64_t ys) {
  amx_tile_calls().fetch_add(1, std::memory_order_relaxed);
  thread_local AmxScratch S;
  const int nsteps = group_steps(w.group);
  const int ks = int(w.group / nsteps);
  // K blocks of whole groups whose two activation planes (all m rows) fit ~1 MiB of L2, so they
  // stay there while every tile pair of the task passes over them.
  const int64_t padded = (op.m + 15) / 16 * 16;
  const int64_t kb = std::clamp<int64_t>((int64_t(1) << 20) / (2 * padded * w.group), 1, w.n_groups);
  const TileConfig cfg = make_config(ks);
  load_config(cfg);
  for (int64_t g0 = 0; g0 < w.n_groups; g0 += kb) {
    const int64_t ng = std::min(kb, w.n_groups - g0);
    int64_t t = t0;
    for (; t + 2 <= t1; t += 2) block<2>(w, op, t, g0, ng, ks, nsteps, S, y, ys);
    if (t < t1) block<1>(w, op, t, g0, ng, ks, nsteps, S, y, ys);
  }
  _tile_release();
}

}  // namespace awq::kernels
