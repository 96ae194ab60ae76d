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
#include "kernels/amx_tiles.h"
#include "kernels/avx512_params.h"
#include "kernels/cpuid.h"
#include "kernels/internal.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // g++ 12's AVX-512 intrinsics (GCC bug 105593)
#endif

#define AWQ_AMX_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq")))

namespace awq::kernels {

namespace {

TileConfig make_config(int ks) {
  TileConfig c;
  for (int i = 0; i < 4; ++i) c.rows[i] = 16, c.colsb[i] = 64;  // C: 16 × 16 int32
  for (int i = 4; i < 6; ++i) c.rows[i] = 16, c.colsb[i] = uint16_t(ks);  // A: 16 rows × Ks int8
  for (int i = 6; i < 8; ++i) c.rows[i] = uint8_t(ks / 4), c.colsb[i] = 64;  // B: Ks/4 rows × 16·4 u8
  return c;
}

AWQ_AMX_TARGET inline void load_config(const TileConfig& c) { load_tile_config(c); }

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
  const CpuidFacts f = read_cpuid();
  if (!f.leaf1) return "CPU lacks CPUID leaf 1";
  std::string miss;
  need_feature((f.d7 >> 24) & 1u, "amx_tile", &miss);
  need_feature((f.d7 >> 25) & 1u, "amx_int8", &miss);
  need_avx512_fdqbwvl(f, &miss);
  if (!miss.empty()) return "CPU lacks " + miss;
  if (!f.osxsave) return "OS lacks XSAVE support (OSXSAVE)";
  if ((f.xcr0 & 0xE6u) != 0xE6u) return "OS does not enable AVX-512 register state (XCR0)";
  if ((f.xcr0 & 0x60000u) != 0x60000u) return "OS does not enable AMX tile state (XCR0 bits 17, 18)";
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

// One group's C tiles (cb: [hi, lo] int32 16 × 16 each) into sums y rows [0, rows) of one tile:
// y = fma(s·d, fma(float(hi), 256, float(lo)), fma(o, ds, y)).
AWQ_AMX_TARGET inline void combine(const int32_t* cb, __m512 s, __m512 o, const float* d, const float* ds, int64_t gs,
                                   int64_t rows, float* y, int64_t ys) {
  const __m512 k256 = _mm512_set1_ps(256.f);
  for (int64_t r = 0; r < rows; ++r) {
    const __m512 hi = _mm512_cvtepi32_ps(_mm512_load_si512(cb + r * 16));
    const __m512 lo = _mm512_cvtepi32_ps(_mm512_load_si512(cb + 256 + r * 16));
    const __m512 dot = _mm512_fmadd_ps(hi, k256, lo);
    float* yr = y + r * ys;
    const __m512 t = _mm512_fmadd_ps(o, _mm512_set1_ps(ds[r * gs]), _mm512_load_ps(yr));
    _mm512_store_ps(yr, _mm512_fmadd_ps(_mm512_mul_ps(s, _mm512_set1_ps(d[r * gs])), dot, t));
  }
}

// Per-thread scratch: unpacked B rows of two tiles over one K block, the C tiles of a group and
// the f32 sums of the current 16-row block (contiguous: y's rows are n·4 bytes apart, often a
// multiple of 4 KiB, so 16 of them would share one L1 set).
struct AmxScratch {
  std::vector<uint8_t> b;  // over-allocated by 64 for alignment
  alignas(64) int32_t c[2 * 4 * 256];  // two groups' C tiles (software pipeline)
  alignas(64) float acc[2 * 256];
  uint8_t* b_aligned(size_t bytes) {
    if (b.size() < bytes + 64) b.resize(bytes + 64);
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(b.data()) + 63) & ~uintptr_t(63));
  }
};

// Group g's stored C tiles c ([tile j][hi, lo][16 × 16]) of NT tiles from t into the row block's
// sums acc ([tile j][16 rows][16]), rows [0, rows) of the block starting at activation row m0.
template <int NT>
AWQ_AMX_TARGET inline void combine_group(const PackedLinear& w, const AmxOperands& op, int64_t t, int64_t g, int64_t m0,
                                         int64_t rows, const int32_t* c, float* acc) {
  const float* d = op.d + m0 * w.n_groups + g;
  const float* ds = op.ds + m0 * w.n_groups + g;
  for (int j = 0; j < NT; ++j) {
    __m512 s, o;
    load_tile_params(w, t + j, g, s, o);
    combine(c + j * 512, s, o, d, ds, w.n_groups, rows, acc + j * 256, 16);
  }
}

// NT (1 or 2) tiles from t over all of K, for the activation rows [r0, r1) (r0 a multiple of 16).
// The tiles' codes are unpacked to B rows once, then every 16-row block runs over them with its
// sums in S.acc, written to y once at the end.
template <int NT>
AWQ_AMX_TARGET void block(const PackedLinear& w, const AmxOperands& op, int64_t t, int64_t r0, int64_t r1, int ks,
                          int nsteps, AmxScratch& S, const AmxOutput& out) {
  const int64_t chunks = w.k_pad / kChunkCols, steps = w.n_groups * nsteps;
  const size_t tile_b = size_t(chunks) * 2 * 64;  // u8 B rows of one tile
  const size_t a_tile = size_t(16 * ks);           // one plane's A tile in the packed activations
  uint8_t* b = S.b_aligned(NT * tile_b);
  for (int j = 0; j < NT; ++j) unpack_b(w.codes.data() + size_t(t + j) * w.tile_code_bytes(), chunks, b + j * tile_b);
  asm volatile("" ::: "memory");
  for (int64_t m0 = r0; m0 < r1; m0 += 16) {
    const int64_t rows = std::min<int64_t>(16, r1 - m0);
    std::memset(S.acc, 0, sizeof S.acc);  // +0, as gemm_ref's sums start
    const int8_t* at = op.a + size_t(m0 / 16) * size_t(steps) * 2 * a_tile;  // this row block's tiles, in step order
    const uint8_t* bk = b;
    for (int64_t g = 0; g < w.n_groups; ++g) {
      _tile_zero(0);
      _tile_zero(1);
      if (NT == 2) {
        _tile_zero(2);
        _tile_zero(3);
      }
      for (int st = 0; st < nsteps; ++st, at += 2 * a_tile, bk += size_t(ks / 4) * 64) {
        _tile_loadd(4, at, ks);
        _tile_loadd(5, at + a_tile, ks);
        _tile_loadd(6, bk, 64);
        _tile_dpbsud(0, 4, 6);
        _tile_dpbsud(1, 5, 6);
        if (NT == 2) {
          _tile_loadd(7, bk + tile_b, 64);
          _tile_dpbsud(2, 4, 7);
          _tile_dpbsud(3, 5, 7);
        }
      }
      // Software pipeline: the previous group's sums are combined while this group's products
      // run on the tile unit (they were issued first), then this group's tiles are stored.
      if (g > 0) combine_group<NT>(w, op, t, g - 1, m0, rows, S.c + ((g - 1) & 1) * 1024, S.acc);
      int32_t* c = S.c + (g & 1) * 1024;
      _tile_stored(0, c, 64);
      _tile_stored(1, c + 256, 64);
      if (NT == 2) {
        _tile_stored(2, c + 512, 64);
        _tile_stored(3, c + 768, 64);
      }
    }
    combine_group<NT>(w, op, t, w.n_groups - 1, m0, rows, S.c + ((w.n_groups - 1) & 1) * 1024, S.acc);
    for (int j = 0; j < NT; ++j) {
      const int64_t c0 = (t + j) * kPackRows;
      // Output columns < n of this tile (all 16 into a padded buffer); + bias as gemm_ref adds it.
      const __mmask16 keep = out.final ? __mmask16((1u << std::min<int64_t>(16, w.n - c0)) - 1u) : __mmask16(0xFFFF);
      const bool bias = out.final && !w.bias.empty();
      const __m512 bv = bias ? _mm512_maskz_loadu_ps(keep, w.bias.data() + c0) : _mm512_setzero_ps();
      for (int64_t r = 0; r < rows; ++r) {
        __m512 v = _mm512_load_ps(S.acc + j * 256 + r * 16);
        if (bias) v = _mm512_add_ps(v, bv);
        _mm512_mask_storeu_ps(out.y + (m0 + r) * out.ys + c0, keep, v);
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

int64_t amx_packed_bytes(const PackedLinear& w, int64_t m) { return (m + 15) / 16 * 16 * w.k_pad * 2; }

void amx_pack_activations(const PackedLinear& w, const int8_t* hi, const int8_t* lo, int64_t m, int64_t mb0, int64_t mb1,
                          int8_t* dst) {
  const int nsteps = group_steps(w.group);
  const int64_t ks = w.group / nsteps, steps = w.n_groups * nsteps, kp = w.k_pad;
  for (int64_t mb = mb0; mb < mb1; ++mb) {
    int8_t* out = dst + size_t(mb) * size_t(steps) * 2 * size_t(16 * ks);
    for (int64_t st = 0; st < steps; ++st)
      for (int p = 0; p < 2; ++p)
        for (int64_t r = 0; r < 16; ++r, out += ks) {
          const int64_t row = mb * 16 + r;
          if (row < m) std::memcpy(out, (p == 0 ? hi : lo) + row * kp + st * ks, size_t(ks));
          else std::memset(out, 0, size_t(ks));
        }
  }
}

AWQ_AMX_TARGET void amx_int16_tiles(const PackedLinear& w, const AmxOperands& op, int64_t t0, int64_t t1,
                                    const AmxOutput& out) {
  amx_tile_calls().fetch_add(1, std::memory_order_relaxed);
  thread_local AmxScratch S;
  const int nsteps = group_steps(w.group);
  const int ks = int(w.group / nsteps);
  // Row chunks whose packed activations (2·k_pad bytes a row) fit ~1.25 MiB of L2, so they stay
  // there while every tile pair of the task passes over them (each pair's B rows, 32·k_pad bytes,
  // beside them); the sums of a row block go to y once, after all of K.
  const int64_t most = std::max<int64_t>(16, (int64_t(5) << 18) / (2 * w.k_pad) / 16 * 16);
  const int64_t n_chunks = (op.m + most - 1) / most;
  const int64_t chunk = ((op.m + n_chunks - 1) / n_chunks + 15) / 16 * 16;  // balanced, whole row blocks
  const TileConfig cfg = make_config(ks);
  load_config(cfg);
  for (int64_t r0 = 0; r0 < op.m; r0 += chunk) {
    const int64_t r1 = std::min(op.m, r0 + chunk);
    int64_t t = t0;
    for (; t + 2 <= t1; t += 2) block<2>(w, op, t, r0, r1, ks, nsteps, S, out);
    if (t < t1) block<1>(w, op, t, r0, r1, ks, nsteps, S, out);
  }
  _tile_release();
}

}  // namespace awq::kernels
