// CPU kernels for 4-bit weight-only quantized linear layers: repack, dequantize, GEMV and GEMM.
//
// A QuantLinear (any source format) is repacked once, at load, into a PackedLinear in the layout
// below; every kernel reads only that layout. Each kernel has a scalar reference (*_ref) that is
// kept forever; the SIMD versions are compiled for several x86 targets with Highway and chosen at
// run time once per call (coarse dispatch); the bf16 path (Path::kBF16) is AVX-512 BF16 intrinsics
// behind our own CPU check (path_available), and the int16 path's larger GEMMs run on AMX-INT8
// tiles behind another (amx_available). A future CUDA backend gets its own PackedLinear-like
// type and the same entry-point shapes (x[m][k] in, y[m][n] out, row-major, f32/bf16).
//
// ---- Layout (kPackRows = 16 output rows per tile, 8 input columns per chunk) ----
// N is padded to Np = ceil(N/16)·16 and every group to G = ceil(group_size/8)·8 input columns
// (padding codes are 0 and padded activations are 0, so they contribute nothing).
// Column order: natural order (g_idx empty or the trivial k / group_size) puts source column
// g·group_size + j at packed column g·G + j, and source_col is empty. GPTQ act-order (any other
// g_idx) orders the columns by group instead (a stable sort by g_idx): packed group g holds exactly
// the columns whose g_idx is the g-th non-empty QuantLinear group, in increasing column order, then
// padding; G = ceil(largest group's column count / 8)·8 and groups with no column are dropped.
// source_col[g·G + j] then names the source column of each packed column (−1 = padding): the
// activation pass gathers through it and dequantize scatters through it, so the GEMM/GEMV kernels,
// which read only packed activations, are the same for both orders. It costs 4 bytes per packed
// column, 4·k_pad bytes per layer (≈ 32/N bits per weight), read once per activation row.
//   codes:  [tile t][group g][chunk c < G/8][64 bytes]. Inside a 64-byte chunk, bytes 4r..4r+3
//           belong to row 16t+r; byte 4r+b holds column 8c+b of the group in its low nibble and
//           column 8c+b+4 in its high nibble. So one little-endian u32 lane per row holds 8 codes,
//           a vector of L u32 lanes covers L rows, and the low (high) nibbles of 4 bytes are the
//           4 consecutive columns that one VNNI/maddubs 32-bit lane reduces.
//   params: [tile t][group g] then, compact: 16 × f16 scale, 16 × u8 zero (48 B);
//                                wide:    16 × f32 scale, 16 × f32 offset (128 B).
//           Dequantized weight: compact w = s·(q − z); wide w = fma(q, s, o) with o = −s·z
//           (integer zeros) or o = sz (stored scaled zeros). Compact is used whenever every scale is
//           exactly an f16 and the zero mode is integer/symmetric with zeros in [0, 255]; both
//           forms reproduce dequantize_ref bit for bit for f16 scales.
//   Bytes per weight: 0.5 + 3/G (compact; 4.1875 bits at G = 128) or 0.5 + 8/G (wide).
// pre_quant_scale (ModelOpt) is fused into the activation pass: x'[k] = x[k]·pqs[k] (f32).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "awq/dtype.h"
#include "awq/quant_linear.h"

namespace awq {
class ThreadPool;
}

namespace awq::kernels {

inline constexpr int64_t kPackRows = 16;   // output rows per tile
inline constexpr int64_t kChunkCols = 8;   // input columns per 64-byte chunk
inline constexpr int64_t kChunkBytes = 64;

// Zero-initialized byte buffer, 64-byte aligned; from 2 MiB up 2 MiB aligned and advised as huge
// pages (madvise MADV_HUGEPAGE), so that streaming kernels cross no 4 KiB page boundaries.
class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(size_t n);
  uint8_t* data() { return p_.get(); }
  const uint8_t* data() const { return p_.get(); }
  size_t size() const { return n_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> p_;
  size_t n_ = 0;
};

struct PackedLinear {
  std::string name;
  int64_t n = 0, k = 0;        // logical out/in features
  int64_t n_tiles = 0;         // ceil(n / 16)
  int64_t group = 0;           // G: packed columns per group, a multiple of 8
  int64_t n_groups = 0;        // packed groups per row; k_pad = n_groups · G
  int64_t k_pad = 0;
  // Natural order: the QuantLinear's group size (== k when per-channel); packed group g holds source
  // columns [g·source_group, min(k, (g+1)·source_group)). 0 when source_col is used.
  int64_t source_group = 0;
  bool wide = false;           // params form (see the layout above)
  AlignedBytes codes;          // n_tiles · n_groups · (G/8) · 64 bytes
  AlignedBytes params;         // n_tiles · n_groups · param_bytes()
  // Act-order: [k_pad] source column of each packed column, −1 = padding; empty in natural order.
  std::vector<int32_t> source_col;
  std::vector<float> pre_quant_scale;  // [k] or empty
  std::vector<float> bias;             // [n] or empty

  size_t param_bytes() const { return wide ? 128 : 48; }  // per (tile, group)
  size_t tile_code_bytes() const { return size_t(n_groups) * size_t(group / kChunkCols) * kChunkBytes; }
  // Bytes a kernel reads for the weights per call: codes + params (+ bias, pqs and source_col).
  size_t weight_bytes() const;
  // Source column of packed column j of packed group g, or −1 for padding (either order).
  int64_t source_column(int64_t g, int64_t j) const {
    if (!source_col.empty()) return source_col[size_t(g * group + j)];
    const int64_t col = g * source_group + j;
    return j < source_group && col < k ? col : -1;
  }
  double bits_per_weight() const { return 8.0 * double(weight_bytes()) / double(n * k); }
};

// Repacks a validated 4-bit QuantLinear, in natural or act-order column order (layout above).
// Throws awq::Error (naming the module) for bits != 4 or inconsistent sizes / g_idx.
PackedLinear repack(const QuantLinear& q);

// Which arithmetic a GEMV/GEMM uses.
//   kF32:  weights dequantized to f32 in registers, f32 FMAs; activations stay f32 (bf16 inputs are
//          widened exactly). Default wherever exactness matters.
//   kInt8: activations quantized per (row, group) to symmetric int8 (d = max|x|/127, round to
//          nearest even), integer dot products (VNNI vpdpbusd or maddubs), zero point and
//          activation sums factored out: y += s·d·Σq·a + o·d·Σa. Faster; error in BENCHMARKS.md.
//   kBF16: AVX-512 BF16 (VDPBF16PS) only, chosen by our own CPU check (path_available), not by
//          Highway. Activations (after pre_quant_scale, in f32) are rounded once to bf16; weights
//          are dequantized in registers to w = fma(q, s, o) in f32 and rounded once to bf16; both
//          roundings are VCVTNE(2)PS2BF16's: nearest even, NaN quieted, f32 denormals flushed to a
//          signed zero. Products are accumulated in f32 by VDPBF16PS over pairs of adjacent
//          columns (2j, 2j+1), in column order, one accumulator per output:
//            acc = FTZ(fma(x[2j+1], w[2j+1], acc)); acc = FTZ(fma(x[2j], w[2j], acc))
//          (nearest even, denormal inputs read as zero, denormal results flushed; the bf16 products
//          are exact in f32). gemm_ref(..., kBF16) does exactly this, so the two agree bit for bit
//          on all data (denormals included). Accuracy against the f32 path: relative RMS error
//          0.27 % (K = 4096, g128, f16 scales, N(0,1) activations; Bf16Path.AccuracyAgainstF32 prints
//          it), from the two bf16 roundings (8-bit significands); the int8 path's is 0.67 %.
//          gemm() with kBF16 on a CPU without AVX512_BF16 throws awq::Error (never SIGILL).
//   kInt16: activations quantized per (row, group) to 16 bits (d = max|x|/32639, nearest even),
//          held as two int8 planes r = 256·hi + lo, each dotted with the codes by the int8 path's
//          integer dot products (twice its work, no rounding in them), combined per group in f32:
//          y += s·d·(256·Σq·hi + Σq·lo) + o·d·Σr. The activation rounding is 2^-16 of the group's
//          max|x| (int8: 2^-8), so outlier channels cost it little: it meets the runtime's 1e-2 bar
//          against transformers where int8 does not, at the int8 path's memory traffic. The SIMD
//          kernels perform the same f32 operations as gemm_ref (bit for bit on FMA targets).
//          From kAmxMinRows rows on, where amx_available(), the integer sums come from AMX-INT8
//          tiles (TDPBSUD: the planes as signed A tiles, the codes unpacked to unsigned B tiles),
//          combined per group by the same f32 operations: bit for bit gemm_ref on all data.
enum class Path : uint8_t { kF32, kInt8, kBF16, kInt16 };
const char* path_name(Path p);  // "f32", "int8", "bf16", "int16"
// The path named name (as path_name spells it); false for any other string.
bool parse_path(const std::string& name, Path* out);

// Whether this CPU (and OS) can run path p; when not, *why_not names what is missing, e.g.
// "CPU lacks avx512_bf16". kF32 and kInt8 always can (Highway falls back to portable code); kBF16
// needs AVX512F/BW/VL/DQ + AVX512_BF16 (CPUID) and ZMM state enabled by the OS (XGETBV).
bool path_available(Path p, std::string* why_not = nullptr);
// For tests: makes path_available(p) report the CPU lacks it (unavailable = true) or restores the
// real answer. Not safe while kernels run on other threads.
void force_path_unavailable(Path p, bool unavailable);

// The int16 path's AMX-INT8 kernel (Intel AMX tiles, TDPBSUD), chosen at run time by gemm() for
// m >= kAmxMinRows rows where amx_available() returns true: CPUID amx_tile + amx_int8 + AVX-512
// F/BW/VL/DQ, XCR0 tile and ZMM state, the OS's per-process permission for tile data (Linux
// arch_prctl ARCH_REQ_XCOMP_PERM) and a one-product self-test; otherwise *why_not says what is
// missing and the int16 VNNI/maddubs kernels run (never SIGILL). Its results equal
// gemm_ref(..., kInt16) bit for bit (integer tile sums, then the reference's f32 operations per group).
// Measured (4096x4096 and 4096x11008, one thread): AMX 1.1-1.2x the VNNI kernels at 8 rows, 1.7x at
// 12, 2x from 16; 0.6x at 4 (a 16-row A tile is a quarter used).
inline constexpr int64_t kAmxMinRows = 8;
bool amx_available(std::string* why_not = nullptr);
// For tests and benchmarks: makes amx_available() false (unavailable = true), so the int16 path
// runs its VNNI/maddubs kernels, or restores the real answer. Not safe while kernels run.
void force_amx_unavailable(bool unavailable);

struct GemmOptions {
  Path path = Path::kF32;
  ThreadPool* pool = nullptr;  // nullptr: default_pool()
};

// y[m][n] = Σ_k (x[m][k]·pqs[k])·W[n][k] + bias[n]. x is row-major [m][k] in F32 or BF16 with row
// stride k; y is row-major [m][n] in F32 or BF16 (rounded to nearest even once). m >= 1 (m == 1 is
// the GEMV). Thread-safe for concurrent calls only with distinct pools.
void gemm(const PackedLinear& w, const void* x, DType x_dtype, int64_t m, void* y, DType y_dtype,
          const GemmOptions& opt = {});
// Scalar reference for gemm, in k order per output (any CPU, every path). The SIMD bf16 path
// equals this bit for bit (see kBF16). The SIMD int8 path performs the same f32
// operations (integer dot products are exact), so it equals this bit for bit on FMA targets; the
// SIMD f32 path keeps several partial sums per output, so it equals this exactly when every partial
// result is representable (small-integer activations, power-of-two scales: what the tests use) and
// within f32 rounding of the summation order otherwise.
// With a pool, tiles are split over its threads (for benchmarks); without, single-threaded.
void gemm_ref(const PackedLinear& w, const void* x, DType x_dtype, int64_t m, void* y, DType y_dtype,
              Path path = Path::kF32, ThreadPool* pool = nullptr);

// Dequantizes rows [row_begin, row_end) of W into dst (row-major, row stride k, dtype F32, BF16 or
// F16, rounded to nearest even once). Like QuantLinear's dequantize_ref, the effective weight
// includes pre_quant_scale (w·pqs[k]); equals it bit for bit on FMA targets when the scales are f16.
void dequantize(const PackedLinear& w, DType out, int64_t row_begin, int64_t row_end, void* dst,
                ThreadPool* pool = nullptr);
void dequantize_ref(const PackedLinear& w, DType out, int64_t row_begin, int64_t row_end, void* dst);

// Dense baseline: y[m][n] = Σ_k x[m][k]·W[n][k] with W bf16 row-major [n][k], x and y f32.
void dense_bf16_gemm(const uint16_t* w, int64_t n, int64_t k, const float* x, int64_t m, float* y,
                     ThreadPool* pool = nullptr);

// ---- Dense GEMM on bf16-rounded inputs (quantize's calibration forwards, XᵀX, Gram proxies) ----
// C[m][n] = Σ_k bf16(A[i][k])·bf16(B[j][k]), A [m][k] and B [n][k] f32 row-major, C [m][n] f32
// row-major. Each input is rounded once to bf16 (nearest even, NaN quieted: f32_to_bf16); the
// products of two bf16 values are exact in f32 and are summed in f32, one sum per output over k.
//   bf16_gemm_ref: that sum in k order, acc = acc + p (each add rounded to nearest even).
//   AMX-BF16 (TDPBF16PS tiles), where amx_bf16_available(): the same exact products summed in the
//     tile unit's order (pairs of k, 32 k per tile step). Equals the reference bit for bit whenever
//     every partial sum is exact (e.g. small integers); otherwise within the f32 summation bound
//     |C − C_ref| <= 2·k·2^-24·Σ_k |bf16(a)·bf16(b)| (both are sums of the same exact terms).
//     Denormal products and sums are flushed to zero by the tile unit.
//   Elsewhere (Highway, every compiled target): one f32 FMA chain per output in k order on the
//     rounded inputs, which is the reference's arithmetic: equal to bf16_gemm_ref bit for bit
//     (under the same MXCSR flush-to-zero mode).
// The result of a call does not depend on the thread count (each output is summed by one task).
// Why: AMX-BF16 runs ~5-10x the f32 FMA GEMM (BENCHMARKS.md "Dense bf16 GEMM"); the inputs' 8-bit
// significands cost a relative error of ~2^-9 per product (measured on quantize in docs/quantize.md).
//
// The B operand packed once (its layout depends on the kernel chosen when it was packed; a B packed
// for AMX is refused by a call after force_amx_unavailable, and the other way round).
struct Bf16Matrix {
  int64_t n = 0, k = 0;
  bool amx = false;    // AMX tile layout (else Highway panels)
  AlignedBytes data;   // bf16 bits
};
// Whether bf16_gemm runs on AMX-BF16 tiles: amx_available() (CPUID, XCR0, the OS's tile permission,
// the AMX-INT8 self-test; force_amx_unavailable turns both off), CPUID amx_bf16, and a TDPBF16PS
// self-test; otherwise *why_not says what is missing and the Highway kernels run.
bool amx_bf16_available(std::string* why_not = nullptr);
Bf16Matrix bf16_pack(const float* b, int64_t n, int64_t k, ThreadPool* pool = nullptr);
// C = A·Bᵀ with B packed; accumulate: C += A·Bᵀ (the sums start from C's values instead of +0).
// m >= 1; k == b.k. Throws awq::Error when b was packed for the other kernel.
void bf16_gemm(const float* a, int64_t m, const Bf16Matrix& b, float* c, ThreadPool* pool = nullptr, bool accumulate = false);
// The same, packing B on the way.
void bf16_gemm(const float* a, int64_t m, const float* b, int64_t n, int64_t k, float* c, ThreadPool* pool = nullptr);
void bf16_gemm_ref(const float* a, int64_t m, const float* b, int64_t n, int64_t k, float* c, bool accumulate = false);
// G[k][k] = XᵀX of x [t][k] on the bf16 GEMM: G[i][j] = Σ_t bf16(x[t][i])·bf16(x[t][j]), summed in
// f32 over tokens in chunks of 4096 (each chunk one bf16_gemm sum continuing the previous ones).
// Only the upper triangle is computed on AMX; G is exactly symmetric. Same bits for any thread count.
void bf16_gram(const float* x, int64_t t, int64_t k, float* g, ThreadPool* pool = nullptr);

// Streams `bytes` bytes of `data` (64-byte aligned, bytes a multiple of 64·threads) with vector
// loads split over the pool's threads; returns a value that depends on every byte (so the read is
// not optimized out). Used to measure read bandwidth.
uint64_t read_stream(const void* data, size_t bytes, ThreadPool* pool = nullptr);

// ---- SIMD targets ----
struct TargetInfo {
  int64_t bits = 0;   // Highway target bit
  std::string name;   // "AVX3_DL", "AVX3", "AVX2", "SSE4", "SCALAR", ...
  bool runnable = false;
  std::string why_not;  // when !runnable: what the CPU lacks
};
// Every target the kernels were compiled for, best first.
std::vector<TargetInfo> compiled_targets();
// Name of the target the next kernel call will use.
std::string active_target();
// Makes later kernel calls use `bits` (must be runnable), or the best one again for 0.
// For tests and benchmarks; not safe while kernels run on other threads.
void force_target(int64_t bits);

}  // namespace awq::kernels
